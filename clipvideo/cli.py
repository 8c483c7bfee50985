"""clipvideo: train, test, predict, convert and demo from one command.

    clipvideo train configs/frozen/tiny_synthetic.yaml --set train.lr=1e-4 data.root=/data
    clipvideo test CONFIG --checkpoint runs/x/model.pt
    clipvideo predict video.mp4 --checkpoint runs/x/model.pt
    clipvideo predict video.mp4 --backbone ViT-B-16.pt --classes "dancing,cooking,surfing"
    clipvideo convert xclip k400_32_8.pth xclip_k400.pt
    clipvideo prepare train.txt --root /data/k400 --out /fast/k400_store   # then data.store=/fast/k400_store
    clipvideo bench data|model|train CONFIG                   # clips/s and memory, to size cores per GPU
    clipvideo models --method xclip                     # released checkpoints by name (the zoo)
    clipvideo predict video.mp4 --model evl-b16-8f-k400
    clipvideo export model.pt --format onnx model.onnx --check
    clipvideo zeroshot CONFIG --checkpoint model.pt --dataset ucf101       # protocols: docs/protocols.md
    clipvideo b2n CONFIG --checkpoint s1.pt s2.pt s3.pt --dataset kinetics400
    clipvideo fewshot-lists train.txt --shots 2 4 8 16 --seed 0 1 2 --out lists/
    torchrun --nproc_per_node=4 -m clipvideo train CONFIG      # DDP on 4 processes
    clipvideo serve --checkpoint runs/x/model.pt               # web page + JSON API on 127.0.0.1:8000
"""

import argparse
import json
import logging
import os
import sys

log = logging.getLogger("clipvideo")


def _config(args):
    from .engine.config import load_config

    overrides = list(args.set or [])
    if getattr(args, "output_dir", None):
        overrides.append(f"output_dir={args.output_dir}")
    return load_config(args.config, overrides)


def cmd_train(args) -> int:
    from .engine.train import fit

    result = fit(_config(args), resume=args.resume)
    if result["final"]:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result["final"].items()}))
    print(f"run directory: {result['run_dir']}")
    return 0


def cmd_test(args) -> int:
    from .engine.testing import run_test

    if args.config is None:  # the checkpoint's own data and test settings
        from .engine.testing import config_from_checkpoint

        overrides = list(args.set or []) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
        config = config_from_checkpoint(args.checkpoint, overrides)
    else:
        config = _config(args)
    metrics = run_test(config, args.checkpoint, args.list)
    print(f"views: {metrics['views']} ({metrics['precision']})")
    summary = f"mAP {metrics['mAP']:.2f}" if "mAP" in metrics else f"mean class {metrics['mean_class_accuracy']:.2f}"
    print(f"top-1 {metrics['top1']:.2f}  top-5 {metrics['top5']:.2f}  {summary}"
          f"  on {metrics['num_videos']} videos ({metrics['failed_videos']} unreadable, counted as wrong)")
    return 0


def cmd_predict(args) -> int:
    from .engine.predict import load_predictor, predict_video
    from .zoo import backbone_path, native_checkpoint

    if args.model:  # a zoo name: downloaded, verified and converted once, then read from the cache
        if args.checkpoint:
            from .engine.config import ConfigError

            raise ConfigError("give --model NAME or --checkpoint FILE, not both")
        args.checkpoint = native_checkpoint(args.model)
    args.backbone = backbone_path(args.backbone)
    predictor = load_predictor(args.checkpoint, args.classes, args.backbone, args.device, args.precision,
                               **({"num_frames": args.num_frames} if args.num_frames else {}), overrides=args.set)
    if args.timeline:  # sliding windows over long videos: clipvideo/engine/timeline.py
        from .engine.timeline import run_cli

        return run_cli(args, predictor)
    results = [predict_video(predictor, video, args.top_k, args.num_clips) for video in args.videos]
    failed = [r for r in results if r.error]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            if r.error:
                print(f"{r.video}: ERROR {r.error}")
                continue
            print(f"{r.video}  ({r.num_frames_in_video} frames; {r.num_views} views: {r.views}; {predictor.precision})")
            width = max(len(t["label"]) for t in r.top)
            for rank, t in enumerate(r.top, 1):
                print(f"  {rank}. {t['label']:<{width}}  {t['score']:.4f}")
    return 1 if failed else 0


def cmd_convert(args) -> int:
    from .engine.checkpoint import save_model
    from .official import load_official

    overrides = {}
    if args.backbone:
        overrides["backbone"] = args.backbone
    for item in args.set or []:
        key, _, value = item.partition("=")
        overrides[key] = int(value) if value.isdigit() else value
    model = load_official(args.method, args.source, **overrides)
    if args.classes:
        from .engine.predict import class_texts, parse_classes

        names = class_texts(args.classes, model) or parse_classes(args.classes)  # FROSTER keeps descriptions
        if getattr(model, "uses_text", False):
            model.set_class_names(names)
        else:
            model.class_names = names
    # save_model stores the model's own input settings (data_settings(): X-CLIP's ImageNet statistics
    # and TSN segments, EVL's dense stride), so that `clipvideo predict` feeds the converted model correctly.
    save_model(model, args.destination)
    print(f"wrote {args.destination} ({args.method} -> clipvideo)")
    return 0


def cmd_prepare(args) -> int:
    from .data.prepare import (
        StoreError, StoreSettings, format_report, merge_after_every_rank, merge_store, prepare_store, resolve_shard,
    )

    try:
        if args.merge:
            report = merge_store(args.merge)
            print(json.dumps(report, indent=2) if args.json else format_report(report))
            return 0
        if not args.list or not args.out:
            raise StoreError("give LIST and --out STORE (or --merge STORE after sharded runs)")
        k, n, launcher = resolve_shard(args.shard)
        settings = StoreSettings(short_side=args.short_side, gop=args.gop, crf=args.crf, preset=args.preset)
        summary = prepare_store(args.list, args.out, root=args.root, settings=settings, workers=args.workers,
                                shard=(k, n), separator=args.separator, progress=k == 0 or launcher != "torchrun")
    except (StoreError, ValueError) as error:
        raise StoreError(str(error)) from None
    if launcher == "torchrun" and n > 1:
        merged = merge_after_every_rank(args.out, k, n)  # one launch covers the list
        if k != 0:
            return 1 if summary["failed"] else 0
        summary["store"] = merged
    print(json.dumps(summary, indent=2) if args.json else format_report(summary))
    if n > 1 and launcher != "torchrun":
        print(f"shard {k}/{n} done; once every shard is done: clipvideo prepare --merge {args.out}")
    store = summary.get("store", summary)
    return 1 if store["failed"] else 0


def cmd_embed(args) -> int:
    from .data.prepare import resolve_shard
    from .engine.embed import embed_videos
    from .zoo import native_checkpoint

    if args.model:
        args.checkpoint = native_checkpoint(args.model)
    if not args.checkpoint:
        from .engine.config import ConfigError

        raise ConfigError("give --checkpoint FILE (or --model NAME) to embed with")
    k, n, launcher = resolve_shard(args.shard)
    device = args.device
    if launcher == "torchrun" and device.startswith("cuda") and ":" not in device:
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"  # one GPU per process
    summary = embed_videos(args.source, args.checkpoint, args.out, window=args.window if args.timeline else None,
                           stride=args.stride, shard=(k, n), root=args.root, device=device,
                           precision=args.precision, progress=k == 0 and sys.stderr.isatty(), overrides=args.set)
    print(json.dumps(summary, indent=2) if args.json else
          f"{args.out}: {summary['rows']} embeddings from {summary['this_shard'] - summary['failed']} videos "
          f"(shard {k}/{n}; {summary['skipped_already_done']} already done, {summary['failed']} failed)")
    for error in summary.get("errors", []):
        print(f"  failed: {error}", file=sys.stderr)
    return 1 if summary["failed"] else 0


def cmd_search(args) -> int:
    from .engine.embed import search_index

    results = search_index(args.index, args.query, args.like, args.top, args.kind, args.checkpoint, args.device,
                           args.precision)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for rank, r in enumerate(results, 1):
        where = "" if r["kind"] == "video" else f"  {r['start']:.1f}-{r['end']:.1f} s"
        print(f"{rank:>3}. {r['score']:.4f}  {r['video']}{where}")
    return 0


def cmd_bench(args) -> int:
    import torch

    from .engine import bench

    config = _config(args)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if args.what == "data":
        rows = bench.bench_data(config, clips=args.clips)
    elif args.what == "model":
        rows = bench.bench_model(config, device, batch_size=args.batch_size, repeats=args.repeats,
                                 precisions=tuple(args.precision))
    else:
        rows = bench.bench_train(config, device, steps=args.repeats)
    env = bench.environment()
    if args.json:
        print(json.dumps({"rows": rows, "environment": env}, indent=2))
    else:
        print(bench.format_rows(rows, env))
    return 0


def cmd_models(args) -> int:
    from . import zoo

    entries = zoo.list_models(args.method, args.dataset)
    if args.markdown:
        print(zoo.markdown_table(entries), end="")
        return 0
    if args.json:
        print(json.dumps([{"name": e.name, "method": e.method, "dataset": e.dataset, "top1": e.top1,
                           "cached": zoo.is_cached(e)} for e in entries], indent=2))
        return 0
    rows = [(*row, "yes" if zoo.is_cached(e) else "") for row, e in zip(zoo.table_rows(entries), entries)]
    header = ("name", "method", "dataset", "published top-1", "size", "cached")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"{len(entries)} models; cache: {zoo.cache_dir()}")
    return 0


def cmd_export(args) -> int:
    from .export import check_export, export_checkpoint

    try:
        result = export_checkpoint(args.checkpoint, args.output, args.format, classes=args.classes, opset=args.opset)
    except (ValueError, ImportError) as error:  # bad format / suffix / missing extra: one line
        print(f"clipvideo export: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {result.path} ({args.format}; input video (batch, {result.num_frames}, 3, {result.size}, {result.size}), "
          f"dynamic batch; {len(result.class_names)} classes)")
    if args.check:
        for batch, difference in check_export(result).items():
            print(f"check: batch {batch}: max |exported - PyTorch| = {difference:.3g}")
    return 0


def _print_report(report: dict, as_json: bool) -> None:
    from .engine.protocols import format_report

    print(json.dumps(report, indent=2) if as_json else format_report(report))


def cmd_zeroshot(args) -> int:
    from .engine.protocols import run_zeroshot

    report = run_zeroshot(_config(args), args.dataset, args.checkpoint, args.backbone, args.classes, args.list, args.draws)
    _print_report(report, args.json)
    return 0


def cmd_b2n(args) -> int:
    from .engine.protocols import run_b2n

    checkpoints = args.checkpoint or [None]
    report = run_b2n(_config(args), args.dataset, checkpoints, args.backbone, args.base_classes, args.novel_classes,
                     args.base_list, args.novel_list)
    _print_report(report, args.json)
    return 0


def cmd_fewshot_lists(args) -> int:
    from .engine.protocols import write_few_shot_lists

    for path in write_few_shot_lists(args.list, args.shots, args.seed, args.out, args.rawframes, args.separator):
        print(path)
    return 0


def cmd_lists(args) -> int:
    import shlex

    from .data import folders
    from .engine.config import ConfigError

    try:
        lists = folders.write_lists(args.folder, args.out, args.val, args.seed)
    except folders.FolderDatasetError as error:
        raise ConfigError(str(error)) from None
    for line in folders.report(lists):
        print(line)
    print(f"wrote {lists.train_list}, {lists.val_list}, {lists.class_names}")
    settings = {"root": lists.scan.root, "train_list": lists.train_list, "val_list": lists.val_list,
                "class_names": lists.class_names, "separator": '"\\t"'}  # YAML double quotes: a tab
    print("use them with: --set " + " ".join(shlex.quote(f"data.{k}={v}") for k, v in settings.items())
          + f" (or paste {lists.settings} into a recipe)")
    return 0


def cmd_compare(args) -> int:
    from .engine.compare import CompareSettings, compare, format_table
    from .engine.config import ConfigError

    checkpoints = {}
    for item in args.checkpoint or []:
        method, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--checkpoint {item!r}: expected METHOD=FILE, e.g. xclip=xclip_k400.pt")
        checkpoints[method] = path
    settings = CompareSettings(
        data=args.data, out=args.out, methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        backbone=args.backbone, epochs=args.epochs, minutes=args.minutes, num_frames=args.frames,
        input_size=args.input_size, val_fraction=args.val, seed=args.seed, num_clips=args.num_clips,
        num_crops=args.num_crops, batch_size=args.batch_size, device=args.device, precision=args.precision,
        overrides=args.set or [], checkpoints=checkpoints, zero_shot=args.zero_shot, resume=args.resume,
        flip=not args.no_flip)
    rows = compare(settings)
    print(format_table(rows))
    print(f"wrote {args.out}/compare.md, compare.json, compare.png; each row's recipe: {args.out}/<method>/recipe.yaml")
    return 1 if any("error" in row for row in rows) else 0


def cmd_fewshot(args) -> int:
    from .engine.protocols import run_fewshot

    _print_report(run_fewshot(_config(args), args.shots, args.seeds, getattr(args, "from")), args.json)
    return 0


def cmd_text4vis_lda(args) -> int:
    from .methods.text4vis import fit_lda_from_recipe

    config = _config(args)
    out = args.out or f"{config.output_dir}/lda_classifier.pt"
    path = fit_lda_from_recipe(config, out, per_class=args.per_class, seed=args.seed)
    print(f"wrote {path}; train with --set model.classifier=lda model.classifier_file={path}")
    return 0


def cmd_average(args) -> int:
    from .engine.average import average_run
    from .engine.config import ConfigError

    try:
        result = average_run(args.run, args.epochs, args.output)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    print(f"wrote {result['output']} ({result['method']}, mean of epochs {result['epochs'][0]}-{result['epochs'][-1]})")
    return 0


def cmd_demo(args) -> int:
    from .engine.demo import run_demo

    run_demo(args.output_dir, quick=args.quick)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def cmd_serve(args) -> int:
    try:
        from .serve import ServeSettings, build_app, run_server
    except ImportError as error:
        print(f"clipvideo serve: error: {error.name or error} is not installed; "
              "pip install 'clipvideo[serve]' (FastAPI, uvicorn, python-multipart)", file=sys.stderr)
        return 2
    if args.max_upload_mb <= 0 or args.queue_size < 0:
        from .engine.config import ConfigError

        raise ConfigError("--max-upload-mb must be > 0 and --queue-size >= 0")
    settings = ServeSettings(max_upload_bytes=int(args.max_upload_mb * 2**20), queue_size=args.queue_size,
                             samples=not args.no_samples)
    app = build_app(args.checkpoint, args.classes, args.backbone, args.device, args.precision, settings,
                    **({"num_frames": args.num_frames} if args.num_frames else {}))
    if args.index:  # a search box over an embedding index (clipvideo/serve/longvideo.py)
        from .serve.longvideo import load_index

        load_index(app, args.index)
    run_server(app, args.host, args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipvideo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_config(p, optional: bool = False):
        p.add_argument("config", help="YAML recipe (configs/...)", **({"nargs": "?"} if optional else {}))
        p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override config values, e.g. train.lr=1e-4")
        p.add_argument("--output-dir", help="run directory (same as --set output_dir=...)")

    p = sub.add_parser("train", help="train a model from a recipe")
    add_config(p)
    p.add_argument("--resume", help="checkpoint to resume from, or 'auto' for the run directory's last one")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("test", help="evaluate a checkpoint with the recipe's views (no recipe: the checkpoint's own)")
    add_config(p, optional=True)
    p.add_argument("--checkpoint", required=True, help="native clipvideo checkpoint (model.pt / checkpoint_last.pt)")
    p.add_argument("--list", help="evaluate this list instead of data.val_list")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("predict", help="top-k labels for video files")
    p.add_argument("videos", nargs="+")
    p.add_argument("--checkpoint", help="native clipvideo checkpoint")
    p.add_argument("--model", help="a released model by zoo name (`clipvideo models`), downloaded once")
    p.add_argument("--backbone", help="CLIP weights (file or zoo name, e.g. ViT-B/16) for zero-shot prediction with --classes")
    p.add_argument("--classes", help='class names: "a,b,c" or a class-name file')
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--num-clips", type=int, help="views per video (default: enough to cover the video)")
    p.add_argument("--num-frames", type=int, help="frames per clip for --backbone zero-shot (default 8)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16", "fp16!"],
                   help="auto: bf16 on CPUs with native bf16, else fp32; fp16 runs as bf16 on CPUs without native fp16 unless fp16!")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE",
                   help="override the checkpoint's data/test settings, e.g. data.short_side=256 test.num_clips=3")
    p.add_argument("--timeline", action="store_true",
                   help="long videos: top-k per sliding window and merged segments (docs/timeline.md)")
    p.add_argument("--window", type=float, default=2.0, help="--timeline window length in seconds (default 2)")
    p.add_argument("--stride", type=float, default=1.0, help="--timeline seconds between window starts (default 1)")
    p.add_argument("--smooth", type=int, default=1, help="--timeline: average probabilities over this many windows (odd)")
    p.add_argument("--min-segment", type=float, metavar="S",
                   help="--timeline: segments no longer than S seconds go to their neighbours (default: --window; 0: keep all)")
    p.add_argument("--csv", action="store_true", help="--timeline: print the segments as CSV")
    p.add_argument("--png", metavar="FILE", help="--timeline: draw the timeline (classes against time) to FILE")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("convert", help="official checkpoint -> native clipvideo checkpoint")
    p.add_argument("method", help="evl | xclip | hf-xclip | ...")
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--backbone", help="OpenAI CLIP file, for methods whose checkpoints omit the frozen backbone (EVL)")
    p.add_argument("--classes", help="class names to store with the model")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="importer overrides, e.g. heads=12 num_frames=8")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("prepare", help="validate and re-encode a list of videos into a fast-to-read store")
    p.add_argument("list", nargs="?", help="video list (<path> <label> lines, as training reads)")
    p.add_argument("--root", default="", help="folder the listed paths are relative to")
    p.add_argument("--out", help="store folder (created; rerun the same command to resume)")
    p.add_argument("--short-side", type=int, default=256, help="resize the short side to this (default 256)")
    p.add_argument("--gop", type=int, default=16,
                   help="a keyframe every N frames (default 16: any frame is at most 3 packet decodes)")
    p.add_argument("--crf", type=int, default=26, help="x264 quality, lower is larger (default 26)")
    p.add_argument("--preset", default="medium",
                   help="x264 preset: encoding time vs size, not decoding speed (default medium)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="local processes (default: all cores)")
    p.add_argument("--shard", help="K/N: this machine prepares list lines i with i %% N == K; auto: from torchrun "
                   "(RANK/WORLD_SIZE; the first process merges at the end) or a Slurm job array")
    p.add_argument("--separator", help="list column separator (default whitespace)")
    p.add_argument("--merge", metavar="STORE", help="join the shards' parts of STORE into its manifest and report")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("embed", help="one L2-normalised embedding per video (and per window) into an index folder")
    p.add_argument("source", metavar="LIST_OR_FOLDER", help="a folder of videos or a list file (a path per line)")
    p.add_argument("--checkpoint", help="native clipvideo model file")
    p.add_argument("--model", help="a released model by zoo name instead of --checkpoint")
    p.add_argument("--out", required=True, metavar="EMB", help="index folder (created; an existing one is resumed)")
    p.add_argument("--root", help="folder that relative paths in the list are under")
    p.add_argument("--timeline", action="store_true", help="also embed sliding windows of each video")
    p.add_argument("--window", type=float, default=2.0, help="--timeline window length in seconds (default 2)")
    p.add_argument("--stride", type=float, default=1.0, help="--timeline seconds between window starts (default 1)")
    p.add_argument("--shard", help="K/N: this process embeds list lines i with i %% N == K; auto: from torchrun "
                   "(default under torchrun) or a Slurm job array")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16", "fp16!"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override the model file's data settings")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("search", help="exact cosine search of an embedding index by text or by a video")
    p.add_argument("index", metavar="EMB", help="index folder written by `clipvideo embed`")
    p.add_argument("query", nargs="?", help='a phrase, e.g. "a person juggling" (models with a text tower)')
    p.add_argument("--like", metavar="VIDEO", help="search by a video instead of a phrase")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--kind", choices=["video", "window"], help="only whole videos or only windows")
    p.add_argument("--checkpoint", help="the model file (default: the one the index was made with)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16", "fp16!"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON instead of a list")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("bench", help="clips/s and peak memory of a recipe's data pipeline, model or training step")
    p.add_argument("what", choices=["data", "model", "train"])
    add_config(p)
    p.add_argument("--clips", type=_positive, default=32, help="data: clips to time")
    p.add_argument("--batch-size", type=_positive, default=1, help="model: clips per forward")
    p.add_argument("--repeats", type=_positive, default=3, help="model: forwards / train: steps to time")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16", "auto"])
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("serve", help="a local web page and JSON API for predictions (needs clipvideo[serve])")
    p.add_argument("--checkpoint", help="native clipvideo checkpoint")
    p.add_argument("--backbone", help="CLIP weights for zero-shot prediction with --classes")
    p.add_argument("--classes", help='class names: "a,b,c" or a class-name file (zero-shot; the page can change them)')
    p.add_argument("--num-frames", type=int, help="frames per clip for --backbone zero-shot (default 8)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=50, help="largest accepted upload (413 beyond it)")
    p.add_argument("--queue-size", type=int, default=2, help="uploads that may wait while one runs (503 beyond it)")
    p.add_argument("--no-samples", action="store_true", help="do not offer the bundled synthetic samples")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--index", metavar="EMB", help="an index from `clipvideo embed` (same model) for the search box")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("models", help="the model zoo: released checkpoints by name, and which are cached")
    p.add_argument("--method", help="evl | xclip | hf-xclip | text4vis | froster | aim | clip")
    p.add_argument("--dataset", help="k400 | k600 | hmdb51 | ucf101 | ...")
    p.add_argument("--markdown", action="store_true", help="a Markdown table (the README's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("export", help="a checkpoint -> ONNX / TorchScript / ExportedProgram for fixed-class inference")
    p.add_argument("checkpoint", help="native clipvideo checkpoint, or a zoo name")
    p.add_argument("output", help="file to write (.onnx, .ts, .pt2 for exported-program)")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript", "exported-program"])
    p.add_argument("--classes", help="class names baked into a text-based model (default: the checkpoint's)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset")
    p.add_argument("--check", action="store_true", help="run the export against PyTorch on a generated clip")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("zeroshot", help="zero-shot protocols: full classes, half classes, official splits (docs/protocols.md)")
    add_config(p)
    p.add_argument("--checkpoint", help="native checkpoint of a text-based model (or --backbone for frozen CLIP)")
    p.add_argument("--backbone", help="CLIP weights for the recipe's model instead of a checkpoint")
    p.add_argument("--dataset", required=True, help="ucf101 | hmdb51 | k600 | kinetics400 | activitynet | custom")
    p.add_argument("--classes", help="class-name file (custom datasets; default: the shipped list)")
    p.add_argument("--list", help="videos for the full- and half-class protocols (default: data.val_list)")
    p.add_argument("--draws", type=int, default=10, help="half-class draws (Text4Vis: 10)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_zeroshot)

    p = sub.add_parser("b2n", help="base-to-novel: Base, Novel, harmonic mean per split and averaged")
    add_config(p)
    p.add_argument("--checkpoint", nargs="+", help="one checkpoint per training split (s1 s2 s3)")
    p.add_argument("--backbone", help="CLIP weights for the recipe's model (frozen CLIP) instead of checkpoints")
    p.add_argument("--dataset", required=True, help="kinetics400 | hmdb51 | ucf101 | ssv2 | custom")
    p.add_argument("--base-classes")
    p.add_argument("--novel-classes")
    p.add_argument("--base-list", help="test videos of the base classes")
    p.add_argument("--novel-list", help="test videos of the novel classes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_b2n)

    p = sub.add_parser("fewshot-lists", help="seeded K-shot training lists, one file per K and seed")
    p.add_argument("list", help="the full training list")
    p.add_argument("--shots", type=int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--seed", type=int, nargs="+", default=[0])
    p.add_argument("--out", required=True, help="folder for <list>_<K>shot_seed<S>.txt")
    p.add_argument("--rawframes", action="store_true", help="'<dir> <num_frames> <label>' lines")
    p.add_argument("--separator", help="column separator (default: whitespace)")
    p.set_defaults(func=cmd_fewshot_lists)

    p = sub.add_parser("lists", help="train/val lists and a class file from a folder of class sub-folders",
                       description="Scan FOLDER/<class>/<videos> (any depth, any video extension), probe each video, "
                                   "and write a seeded, stratified train/val split (tab-separated lists), classes.csv "
                                   "and data.yaml into --out. Unreadable and duplicate files are named and left out "
                                   "(failures.txt). Training with data.root=FOLDER and no lists does the same "
                                   "automatically in the run folder.")
    p.add_argument("folder", help="dataset folder with one sub-folder per class")
    p.add_argument("--val", type=float, default=0.2, help="share of each class held out for validation (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument("--out", required=True, help="folder for train.txt, val.txt, classes.csv, data.yaml")
    p.set_defaults(func=cmd_lists)

    p = sub.add_parser("compare", help="train and evaluate several methods on one folder dataset, one table",
                       description="Train each method on a class-folder dataset (FOLDER/<class>/<videos>) under the "
                                   "same budget, frames, input size, views, split and seed; test each on the same "
                                   "validation videos; report top-1, mean-class accuracy, training seconds per clip, "
                                   "inference clips/s, peak memory, parameters and GFLOPs per view as a table, JSON "
                                   "and a plot. Without --backbone a random tiny CLIP is used (a try-out).")
    p.add_argument("data", help="class-folder dataset")
    p.add_argument("--methods", default="frozen,evl,aim,xclip,text4vis,froster",
                   help="comma-separated methods (default: all six; frozen = frame mean + linear probe)")
    p.add_argument("--backbone", help="CLIP weights (OpenAI .pt, open_clip, safetensors); default: random tiny CLIP")
    p.add_argument("--epochs", type=int, default=10, help="training epochs per method (default 10)")
    p.add_argument("--minutes", type=float, help="wall-time budget per method; stops after the epoch that passes it")
    p.add_argument("--frames", type=int, default=8, help="frames per clip, all methods (default 8)")
    p.add_argument("--input-size", type=int, help="crop size (default: the backbone's resolution)")
    p.add_argument("--val", type=float, default=0.2, help="share of each class held out for validation (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of training (default 0)")
    p.add_argument("--num-clips", type=int, default=1, help="test clips per video (default 1)")
    p.add_argument("--num-crops", type=int, default=1, choices=(1, 3), help="test crops per clip (default 1)")
    p.add_argument("--batch-size", type=int, default=8, help="training and test batch (default 8)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--precision", default="fp32", help="training and test precision: fp32, bf16 (default fp32)")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips (for left/right classes)")
    p.add_argument("--checkpoint", nargs="+", metavar="METHOD=FILE",
                   help="zero-shot rows from released text models, e.g. xclip=xclip_k400.pt (no training)")
    p.add_argument("--zero-shot", action="store_true", help="add a frozen-CLIP zero-shot row (needs --backbone)")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE",
                   help="recipe overrides for every row (train.lr=1e-4) or one (evl:train.lr=1e-4)")
    p.add_argument("--out", required=True, help="output folder (table, JSON, plot, one sub-folder per row)")
    p.add_argument("--resume", action="store_true", help="skip finished rows, continue an interrupted one")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("fewshot", help="train and test on seeded K-shot lists, mean ± std over seeds")
    add_config(p)
    p.add_argument("--shots", type=int, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--from", help="full training list to draw from (default: data.train_list)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fewshot)

    p = sub.add_parser("text4vis-lda", help="Text4Vis LDA classifier from frozen-CLIP features of the training list")
    add_config(p)
    p.add_argument("--out", help="output file (default: <output_dir>/lda_classifier.pt)")
    p.add_argument("--per-class", type=int, default=60, help="videos per class (paper: 60 for Kinetics-400)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_text4vis_lda)

    p = sub.add_parser("average", help="uniform weight average of a run's epoch checkpoints (FROSTER's release)")
    p.add_argument("run", help="run directory trained with train.keep_epoch_checkpoints=true")
    p.add_argument("--epochs", required=True, help="A-B: average checkpoint_epoch{A..B}.pt (FROSTER: 2-last)")
    p.add_argument("output", help="model file to write")
    p.set_defaults(func=cmd_average)

    p = sub.add_parser("demo", help="generate synthetic motion videos, train, compare with the frame-mean baseline")
    p.add_argument("--output-dir", default="demo_runs")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .clip import CheckpointError
    from .engine.config import ConfigError

    known = (ConfigError, CheckpointError, FileNotFoundError)  # SearchError is a ConfigError
    try:
        from .data import AnnotationError, VideoDecodeError
        from .data.prepare import StoreError
        from .protocols import ProtocolError

        known = known + (AnnotationError, VideoDecodeError, StoreError, ProtocolError)
    except ImportError:
        pass
    try:
        return args.func(args)
    except known as error:
        # Bad input: one clear line, no traceback.
        print(f"clipvideo {args.command}: error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:
        # A non-finite loss stops every process together; the first one says why, once.
        import os

        if os.environ.get("RANK", "0") == "0":
            print(f"clipvideo {args.command}: error: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
