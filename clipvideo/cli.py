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
    clipvideo fewshot-lists train.txt --shots 2 4 8 16 --seeds 0 1 2 --out lists/
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
    from .errors import plural

    if args.config is None:  # the checkpoint's own data and test settings
        from .engine.testing import config_from_checkpoint

        overrides = list(args.set or []) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
        config = config_from_checkpoint(args.checkpoint, overrides)
    else:
        config = _config(args)
    if args.compile:
        config.test.compile = True
    metrics = run_test(config, args.checkpoint, args.list)
    if "compile_seconds" in metrics:
        print(f"compiled: the first call took {metrics['compile_seconds']:.1f} s")
    print(f"views: {metrics['views']} ({metrics['precision']})")
    summary = f"mAP {metrics['mAP']:.2f}" if "mAP" in metrics else f"mean class {metrics['mean_class_accuracy']:.2f}"
    print(f"top-1 {metrics['top1']:.2f}  top-5 {metrics['top5']:.2f}  {summary}"
          f"  on {plural(metrics['num_videos'], 'video')} ({metrics['failed_videos']} unreadable, counted as wrong)")
    return 0


def _model_source(args, command: str) -> None:
    """--model NAME -> its native checkpoint; --backbone NAME -> its file; none of them: say which to give."""
    from .errors import CommandLineError
    from .zoo import backbone_path, native_checkpoint

    if not (args.checkpoint or args.model or args.backbone):
        raise CommandLineError(f"{command} needs a model: --checkpoint FILE (a clipvideo model file), --model NAME "
                               "(a released model, `clipvideo models` lists them) or --backbone CLIP --classes "
                               '"a,b,c" (zero-shot on your class names)')
    if args.model:  # a zoo name: downloaded, verified and converted once, then read from the cache
        if args.checkpoint:
            raise CommandLineError("give --model NAME or --checkpoint FILE, not both")
        args.checkpoint = native_checkpoint(args.model)
    args.backbone = backbone_path(args.backbone)


def cmd_predict(args) -> int:
    from .engine.predict import load_predictor, predict_video
    from .errors import plural

    _model_source(args, "predict")
    predictor = load_predictor(args.checkpoint, args.classes, args.backbone, args.device, args.precision,
                               **({"num_frames": args.num_frames} if args.num_frames else {}),
                               overrides=_with_compile(args))
    if predictor.compile_seconds is not None:
        print(f"compiled: the first call took {predictor.compile_seconds:.1f} s", file=sys.stderr)
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
                print(f"{r.video}: ERROR {r.error.removeprefix(f'{r.video}: ')}")  # the path once
                continue
            print(f"{r.video}  ({plural(r.num_frames_in_video, 'frame')}; {plural(r.num_views, 'view')}: {r.views}; "
                  f"{predictor.precision})")
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
        from .engine.predict import class_vocabulary

        vocabulary = class_vocabulary(args.classes)  # a class file keeps its descriptions (FROSTER)
        if model.uses_text:
            model.set_classes(vocabulary)
        else:
            model.class_names = list(vocabulary)
    # save_model stores the model's own input record (input_config(): X-CLIP's ImageNet statistics
    # and TSN segments, EVL's dense stride and views), so `clipvideo predict` feeds the converted model correctly.
    save_model(model, args.destination)
    print(f"wrote {args.destination} ({args.method} -> clipvideo)")
    return 0


def cmd_prepare(args) -> int:
    from .errors import plural
    from .data.prepare import (
        StoreError, StoreSettings, format_report, merge_after_every_rank, merge_store, prepare_store, resolve_shard,
    )

    try:
        if args.merge:
            report = merge_store(args.merge)
            print(json.dumps(report, indent=2) if args.json else format_report(report))
            if report["failed"]:
                print(f"{plural(report['failed'], 'video')} failed; each with its reason in "
                      f"{os.path.join(args.merge, 'failures.txt')}", file=sys.stderr)
            return 0
        if not args.list or not args.out:
            raise StoreError("give LIST and --out STORE (or --merge STORE after sharded runs)")
        k, n, launcher = resolve_shard(args.shard)
        settings = StoreSettings(short_side=args.short_side, upscale=args.upscale, gop=args.gop, crf=args.crf,
                                 preset=args.preset)
        summary = prepare_store(args.list, args.out, root=args.root, settings=settings, workers=args.workers,
                                shard=(k, n), separator=args.separator, progress=k == 0 or launcher != "torchrun",
                                on_record=_report_failed_video)
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
    if store["failed"]:
        where = os.path.join(args.out, "failures.txt")
        print(f"{plural(store['failed'], 'video')} failed; each with its reason in {where}"
              + ("" if "store" in summary else " (written by --merge)"), file=sys.stderr)
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


def _report_failed_video(record) -> None:
    """Each video that fails, named with its reason as it happens (above the progress bar)."""
    if record.status != "ok":
        from tqdm import tqdm

        tqdm.write(f"failed: {record.path}: {record.error}", file=sys.stderr)


def cmd_bench(args) -> int:
    import torch

    from .engine import bench

    config = _config(args)
    device = torch.device(args.device)  # resolved by main: auto -> cuda or cpu
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
    from .errors import plural

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
    print(f"{plural(len(entries), 'model')}; cache: {zoo.cache_dir()}")
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
    from .data.splits import write_few_shot_lists

    for path in write_few_shot_lists(args.list, args.shots, args.seeds, args.out, args.rawframes, args.separator,
                                     args.repeat):
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

    if not os.path.isdir(args.data):  # before any row starts (each row would fail with its own traceback)
        raise ConfigError(f"{args.data}: no such folder; expected a class-folder dataset FOLDER/<class>/<videos>")
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
    from .engine.lda import fit_lda_from_recipe

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


def _with_compile(args) -> list[str]:
    """--set overrides, plus test.compile=true for --compile."""
    return list(getattr(args, "set", None) or []) + (["test.compile=true"] if args.compile else [])


def cmd_serve(args) -> int:
    try:
        from .serve import ServeSettings, build_app, run_server
    except ImportError as error:
        print(f"clipvideo serve: error: {error.name or error} is not installed; "
              "pip install 'clipvideo[serve]' (FastAPI, uvicorn, python-multipart)", file=sys.stderr)
        return 2
    if args.max_upload_mb <= 0 or args.max_decoded_mb <= 0 or args.queue_size < 0:
        from .engine.config import ConfigError

        raise ConfigError("--max-upload-mb and --max-decoded-mb must be > 0 and --queue-size >= 0")
    _model_source(args, "serve")
    settings = ServeSettings(max_upload_bytes=int(args.max_upload_mb * 2**20), queue_size=args.queue_size,
                             max_decoded_bytes=int(args.max_decoded_mb * 2**20), samples=not args.no_samples)
    app = build_app(args.checkpoint, args.classes, args.backbone, args.device, args.precision, settings,
                    **({"num_frames": args.num_frames} if args.num_frames else {}), overrides=_with_compile(args))
    if args.index:  # a search box over an embedding index (clipvideo/serve/longvideo.py)
        from .serve.longvideo import load_index

        load_index(app, args.index)
    run_server(app, args.host, args.port)
    return 0


# Shared option texts: the same option means the same thing, with the same default, everywhere.
DEVICE_HELP = "auto (a CUDA GPU when PyTorch sees one, else the CPU; the default) | cpu | cuda | cuda:N (gpu = cuda)"
JSON_HELP = "print JSON instead of a table"
CLASSES_HELP = 'class names: "a,b,c" or a class-name file (one per line, "id name" lines or JSON)'
BACKBONE_HELP = "CLIP weights (a file, or a zoo name such as ViT-B/16) for zero-shot prediction with --classes"
CHECKPOINT_HELP = "native clipvideo model file (model.pt / checkpoint_last.pt / clipvideo convert output)"
MODEL_HELP = "a released model by zoo name (`clipvideo models`), downloaded and converted once"
NUM_FRAMES_HELP = "frames per clip for --backbone zero-shot (default 8; model files record their own)"
PRECISION_CHOICES = ["auto", "fp32", "bf16", "fp16", "fp16!"]
PRECISION_HELP = ("auto (the default): bf16 on CPUs with native bf16 and on GPUs, else fp32; fp16 runs as bf16 on "
                  "CPUs without native fp16 unless fp16!")
COMPILE_HELP = ("torch.compile the model first (same as --set test.compile=true): faster calls after a first "
                "call that compiles, tens of seconds on a CPU (docs/performance.md)")
SEEDS_HELP = "random seeds, one K-shot draw each (default: %(default)s; --seed is the same option)"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the usage itself is one `--help` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _command(sub, name: str, help: str, description: str, func):
    """A subcommand: `help` is its line in `clipvideo --help`, `description` its paragraph in `clipvideo NAME --help`."""
    p = sub.add_parser(name, help=help, description=description)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .official import IMPORTERS

    parser = _Parser(prog="clipvideo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="`clipvideo COMMAND --help` describes a command and its options. Exit status: 0 done, "
                            "1 some inputs failed, 2 bad input (one line on stderr), 3 non-finite loss, "
                            "130 interrupted, 141 output pipe closed.")
    parser.add_argument("--version", action="version", version=f"clipvideo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_config(p, optional: bool = False):
        p.add_argument("config", help="YAML recipe (configs/...)" + (" (optional)" if optional else ""),
                       **({"nargs": "?"} if optional else {}))
        p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override recipe values, e.g. train.lr=1e-4")
        p.add_argument("--output-dir", help="run directory (same as --set output_dir=...)")

    def add_model_source(p):
        p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
        p.add_argument("--model", help=MODEL_HELP)
        p.add_argument("--backbone", help=BACKBONE_HELP)
        p.add_argument("--classes", help=CLASSES_HELP)
        p.add_argument("--num-frames", type=_positive, help=NUM_FRAMES_HELP)
        p.add_argument("--precision", default="auto", choices=PRECISION_CHOICES, help=PRECISION_HELP)
        p.add_argument("--device", default="auto", help=DEVICE_HELP)
        p.add_argument("--compile", action="store_true", help=COMPILE_HELP)

    p = _command(sub, "train", "train a model from a recipe",
                 "Train the recipe's model on its data lists. Each epoch writes checkpoint_last.pt to the run "
                 "directory (resumable with --resume auto), the best weights as model.pt, metrics and plots. "
                 "Several GPUs or processes: torchrun --nproc_per_node=N -m clipvideo train RECIPE.", cmd_train)
    add_config(p)
    p.add_argument("--resume", help="checkpoint to resume from, or 'auto' for the run directory's last one")

    p = _command(sub, "test", "evaluate a checkpoint with the recipe's views (no recipe: the checkpoint's own)",
                 "Score a checkpoint on a list of videos with the multi-view test protocol (frames x clips x "
                 "crops) and print top-1, top-5 and mean-class accuracy. Without a recipe, the data settings and "
                 "views recorded in the model file are used. Unreadable videos count as wrong.", cmd_test)
    add_config(p, optional=True)
    p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    p.add_argument("--list", help="evaluate this list instead of data.val_list")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)

    p = _command(sub, "predict", "top-k labels for video files",
                 "Print the top-k labels with scores for each video. The model comes from --checkpoint (a "
                 "clipvideo model file), --model (a released model by name) or --backbone with --classes "
                 "(zero-shot CLIP on your class names). The video is sampled over its whole length; an "
                 "unreadable video is one error line and the others are still predicted (exit status 1).",
                 cmd_predict)
    p.add_argument("videos", nargs="+", help="video files")
    add_model_source(p)
    p.add_argument("--top-k", type=_positive, default=5, help="labels to print per video (default 5)")
    p.add_argument("--num-clips", type=_positive, help="clips per video (default: the model's test.num_clips)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
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

    methods = ", ".join(sorted(IMPORTERS))
    p = _command(sub, "convert", f"official checkpoint -> native clipvideo checkpoint ({methods})",
                 f"Read an officially released checkpoint of one of the supported methods ({methods}) without "
                 "running any code from it, check that every tensor is used, and write a native clipvideo model "
                 "file that predict, test, export and serve take with --checkpoint.", cmd_convert)
    p.add_argument("method", choices=sorted(IMPORTERS), metavar="METHOD", help=f"one of: {methods}")
    p.add_argument("source", help="the official checkpoint file (or Hugging Face folder for hf-xclip)")
    p.add_argument("destination", help="native model file to write (.pt)")
    p.add_argument("--backbone", help="OpenAI CLIP file, for methods whose checkpoints omit the frozen backbone (EVL)")
    p.add_argument("--classes", help="class names to store with the model: " + CLASSES_HELP)
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="importer overrides, e.g. heads=12 num_frames=8")

    p = _command(sub, "prepare", "validate and re-encode a list of videos into a fast-to-read store",
                 "Decode every listed video once, shrink it (the short side to --short-side; smaller videos "
                 "keep their size unless --upscale) and re-encode it with short keyframe intervals into a store "
                 "that training reads with data.store=STORE. Rerunning the command resumes; each video that "
                 "fails is named with its reason and listed in STORE/failures.txt (exit status 1).", cmd_prepare)
    p.add_argument("list", nargs="?", help="video list (<path> <label> lines, as training reads)")
    p.add_argument("--root", default="", help="folder the listed paths are relative to")
    p.add_argument("--out", help="store folder (created; rerun the same command to resume)")
    p.add_argument("--short-side", type=int, default=256,
                   help="shrink the short side to at most this many pixels (default 256; never enlarged, see --upscale)")
    p.add_argument("--upscale", action="store_true",
                   help="also enlarge smaller videos to --short-side (default: they keep their own size)")
    p.add_argument("--gop", type=int, default=16,
                   help="a keyframe every N frames (default 16: any frame is at most 3 packet decodes)")
    p.add_argument("--crf", type=int, default=26, help="x264 quality, lower is larger (default 26)")
    p.add_argument("--preset", default="medium",
                   help="x264 preset: encoding time vs size, not decoding speed (default medium)")
    p.add_argument("--workers", type=_positive, default=os.cpu_count() or 1, help="local processes (default: all cores)")
    p.add_argument("--shard", help="K/N: this machine prepares list lines i with i %% N == K; auto: from torchrun "
                   "(RANK/WORLD_SIZE; the first process merges at the end) or a Slurm job array")
    p.add_argument("--separator", help="list column separator (default: whitespace)")
    p.add_argument("--merge", metavar="STORE", help="join the shards' parts of STORE into its manifest and report")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = _command(sub, "embed", "one L2-normalised embedding per video (and per window) into an index folder",
                 "Embed every video of a folder or list with a model (the text-classifying methods embed in their "
                 "text space; EVL/AIM give their feature before the head) into an index folder that `clipvideo "
                 "search` and `serve --index` read. Rerun to resume; --shard K/N or torchrun splits the list "
                 "(docs/timeline.md).", cmd_embed)
    p.add_argument("source", metavar="LIST_OR_FOLDER", help="a folder of videos or a list file (a path per line)")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--out", required=True, metavar="EMB", help="index folder (created; an existing one is resumed)")
    p.add_argument("--root", help="folder that relative paths in the list are under")
    p.add_argument("--timeline", action="store_true", help="also embed sliding windows of each video")
    p.add_argument("--window", type=float, default=2.0, help="--timeline window length in seconds (default 2)")
    p.add_argument("--stride", type=float, default=1.0, help="--timeline seconds between window starts (default 1)")
    p.add_argument("--shard", help="K/N: this process embeds list lines i with i %% N == K; auto: from torchrun "
                   "(default under torchrun) or a Slurm job array")
    p.add_argument("--precision", default="auto", choices=PRECISION_CHOICES, help=PRECISION_HELP)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override the model file's data settings")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = _command(sub, "search", "exact cosine search of an embedding index by text or by a video",
                 "Rank every embedding of an index (`clipvideo embed`) by cosine with a phrase (models with a "
                 "text tower) or with a video (--like VIDEO), best first (docs/timeline.md).", cmd_search)
    p.add_argument("index", metavar="EMB", help="index folder written by `clipvideo embed`")
    p.add_argument("query", nargs="?", help='a phrase, e.g. "a person juggling" (models with a text tower)')
    p.add_argument("--like", metavar="VIDEO", help="search by a video instead of a phrase")
    p.add_argument("--top", type=_positive, default=10, help="results to print (default 10)")
    p.add_argument("--kind", choices=["video", "window"], help="only whole videos or only windows")
    p.add_argument("--checkpoint", help="the model file (default: the one the index was made with)")
    p.add_argument("--precision", default="auto", choices=PRECISION_CHOICES, help=PRECISION_HELP)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = _command(sub, "bench", "clips/s and peak memory of a recipe's data pipeline, model or training step",
                 "Measure a recipe on this machine: data (clips per second and per core from the loader), model "
                 "(forward clips/s and peak memory per precision) or train (optimizer steps/s), with the machine's "
                 "load beside the table, to size cores per GPU and batch sizes.", cmd_bench)
    p.add_argument("what", choices=["data", "model", "train"], help="data | model | train")
    add_config(p)
    p.add_argument("--clips", type=_positive, default=32, help="data: clips to time (default 32)")
    p.add_argument("--batch-size", type=_positive, default=1, help="model: clips per forward (default 1)")
    p.add_argument("--repeats", type=_positive, default=3, help="model: forwards / train: steps to time (default 3)")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16", "auto"],
                   help="model: precisions to time (default: fp32 bf16)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = _command(sub, "serve", "a local web page and JSON API for predictions (needs clipvideo[serve])",
                 "Load a model once and serve a web page (drop in a video, see the top labels, the sampled frames "
                 "beside the crop the model sees) and POST /api/predict on this machine. Uploads are bounded in "
                 "bytes and in decoded size; requests beyond the queue get 503. Needs pip install 'clipvideo[serve]'.",
                 cmd_serve)
    add_model_source(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, default=50, help="largest accepted upload in MiB (default 50; 413 beyond it)")
    p.add_argument("--max-decoded-mb", type=float, default=1024,
                   help="largest decoded size of the sampled frames in MiB (default 1024; 413 beyond it: a "
                        "high-resolution video under the upload limit can decode to gigabytes)")
    p.add_argument("--queue-size", type=int, default=2, help="uploads that may wait while one runs (default 2; 503 beyond it)")
    p.add_argument("--no-samples", action="store_true", help="do not offer the bundled synthetic samples")
    p.add_argument("--index", metavar="EMB", help="an index from `clipvideo embed` (same model) for the search box")

    p = _command(sub, "models", "the model zoo: released checkpoints by name, and which are cached",
                 "List the released checkpoints clipvideo knows by name (method, dataset, published top-1, size) "
                 "and which are already in the cache. Use a name with predict --model, export or "
                 "clipvideo.load_pretrained(NAME). Dataset names have aliases: k400 = kinetics400.", cmd_models)
    p.add_argument("--method", help="only this method: evl | xclip | hf-xclip | text4vis | froster | aim | clip")
    p.add_argument("--dataset", help="only models trained on this dataset: k400 (= kinetics400) | k600 | hmdb51 | ucf101 | ...")
    p.add_argument("--markdown", action="store_true", help="a Markdown table (the README's)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = _command(sub, "export", "a checkpoint -> ONNX / TorchScript / ExportedProgram for fixed-class inference",
                 "Write a model with its class names baked in as ONNX (needs clipvideo[export]), TorchScript or a "
                 "torch.export ExportedProgram, with a dynamic batch size; --check compares it with PyTorch.",
                 cmd_export)
    p.add_argument("checkpoint", help="native clipvideo checkpoint, or a zoo name")
    p.add_argument("output", help="file to write (.onnx, .ts, .pt2 for exported-program)")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript", "exported-program"],
                   help="onnx | torchscript | exported-program")
    p.add_argument("--classes", help="class names baked into a text-based model (default: the checkpoint's)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--check", action="store_true", help="run the export against PyTorch on a generated clip")

    p = _command(sub, "zeroshot", "zero-shot protocols: full classes, half classes, official splits (docs/protocols.md)",
                 "Score a text-based model (or frozen CLIP with --backbone) on classes it was not trained on, with "
                 "the published protocols: all classes, random halves, and the official splits where a dataset "
                 "has them. Datasets take their aliases (k400 = kinetics400).", cmd_zeroshot)
    add_config(p)
    p.add_argument("--checkpoint", help="native checkpoint of a text-based model (or --backbone for frozen CLIP)")
    p.add_argument("--backbone", help="CLIP weights for the recipe's model instead of a checkpoint")
    p.add_argument("--dataset", required=True,
                   help="ucf101 | hmdb51 | kinetics600 (k600) | kinetics400 (k400) | activitynet | custom")
    p.add_argument("--classes", help="class-name file (custom datasets; default: the shipped list)")
    p.add_argument("--list", help="videos for the full- and half-class protocols (default: data.val_list)")
    p.add_argument("--draws", type=_positive, default=10, help="half-class draws (default 10, as Text4Vis)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = _command(sub, "b2n", "base-to-novel: Base, Novel, harmonic mean per split and averaged",
                 "Base-to-novel generalisation: score each split's checkpoint on the base classes it was trained "
                 "on and on the novel classes it never saw, and report Base, Novel and their harmonic mean per "
                 "split and averaged. Shipped splits for kinetics400 (k400), hmdb51, ucf101 and ssv2.", cmd_b2n)
    add_config(p)
    p.add_argument("--checkpoint", nargs="+", help="one checkpoint per training split (s1 s2 s3)")
    p.add_argument("--backbone", help="CLIP weights for the recipe's model (frozen CLIP) instead of checkpoints")
    p.add_argument("--dataset", required=True, help="kinetics400 (k400) | hmdb51 | ucf101 | ssv2 | custom")
    p.add_argument("--base-classes", help="class-name file of the base classes (custom datasets)")
    p.add_argument("--novel-classes", help="class-name file of the novel classes (custom datasets)")
    p.add_argument("--base-list", help="test videos of the base classes")
    p.add_argument("--novel-list", help="test videos of the novel classes")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = _command(sub, "fewshot-lists", "seeded K-shot training lists, one file per K and seed",
                 "Draw K videos per class from a training list, once per seed, and write each draw as a list "
                 "file (<list>_<K>shot_seed<S>.txt) that train and fewshot read. The same seed gives the same "
                 "draw on any machine.", cmd_fewshot_lists)
    p.add_argument("list", help="the full training list")
    p.add_argument("--shots", type=_positive, nargs="+", default=[2, 4, 8, 16],
                   help="videos per class, K (default: 2 4 8 16)")
    p.add_argument("--seeds", "--seed", dest="seeds", type=int, nargs="+", default=[0, 1, 2], help=SEEDS_HELP)
    p.add_argument("--out", required=True, help="folder for <list>_<K>shot_seed<S>.txt")
    p.add_argument("--rawframes", action="store_true", help="'<dir> <num_frames> <label>' lines")
    p.add_argument("--separator", help="list column separator (default: whitespace)")
    p.add_argument("--repeat", action="store_true",
                   help="repeat each draw floor(N / (K x classes)) times, N the full list (Text4Vis' few-shot runs)")

    p = _command(sub, "lists", "train/val lists and a class file from a folder of class sub-folders",
                 "Scan FOLDER/<class>/<videos> (any depth, any video extension), probe each video, "
                 "and write a seeded, stratified train/val split (tab-separated lists), classes.csv "
                 "and data.yaml into --out. Unreadable and duplicate files are named and left out "
                 "(failures.txt). Training with data.root=FOLDER and no lists does the same "
                 "automatically in the run folder.", cmd_lists)
    p.add_argument("folder", help="dataset folder with one sub-folder per class")
    p.add_argument("--val", type=float, default=0.2, help="share of each class held out for validation (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument("--out", required=True, help="folder for train.txt, val.txt, classes.csv, data.yaml")

    p = _command(sub, "compare", "train and evaluate several methods on one folder dataset, one table",
                 "Train each method on a class-folder dataset (FOLDER/<class>/<videos>) under the "
                 "same budget, frames, input size, views, split and seed; test each on the same "
                 "validation videos; report top-1, mean-class accuracy, training seconds per clip, "
                 "inference clips/s, peak memory, parameters and GFLOPs per view as a table, JSON "
                 "and a plot. Without --backbone a random tiny CLIP is used (a try-out).",
                 cmd_compare)
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
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--precision", default="fp32", help="training and test precision: fp32, bf16 (default fp32)")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips (for left/right classes)")
    p.add_argument("--checkpoint", nargs="+", metavar="METHOD=FILE",
                   help="zero-shot rows from released text models, e.g. xclip=xclip_k400.pt (no training)")
    p.add_argument("--zero-shot", action="store_true", help="add a frozen-CLIP zero-shot row (needs --backbone)")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE",
                   help="recipe overrides for every row (train.lr=1e-4) or one (evl:train.lr=1e-4)")
    p.add_argument("--out", required=True, help="output folder (table, JSON, plot, one sub-folder per row)")
    p.add_argument("--resume", action="store_true", help="skip finished rows, continue an interrupted one")

    p = _command(sub, "fewshot", "train and test on seeded K-shot lists, mean ± std over seeds",
                 "For each seed, draw K videos per class from the training list, train the recipe on them, test "
                 "on data.val_list, and report the mean and standard deviation of the accuracy over seeds.",
                 cmd_fewshot)
    add_config(p)
    p.add_argument("--shots", type=_positive, required=True, help="videos per class, K")
    p.add_argument("--seeds", "--seed", dest="seeds", type=int, nargs="+", default=[0, 1, 2], help=SEEDS_HELP)
    p.add_argument("--from", help="full training list to draw from (default: data.train_list)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = _command(sub, "text4vis-lda", "Text4Vis LDA classifier from frozen-CLIP features of the training list",
                 "Fit Text4Vis's LDA classifier initialisation from frozen-CLIP features of up to --per-class "
                 "training videos per class, and write it for model.classifier=lda.", cmd_text4vis_lda)
    add_config(p)
    p.add_argument("--out", help="output file (default: <output_dir>/lda_classifier.pt)")
    p.add_argument("--per-class", type=_positive, default=60, help="videos per class (default 60, the paper's for Kinetics-400)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the video draw (default 0)")

    p = _command(sub, "average", "uniform weight average of a run's epoch checkpoints (FROSTER's release)",
                 "Average the weights of a run's epoch checkpoints A..B uniformly (as FROSTER's released models "
                 "are made) and write the result as a model file. The run must have been trained with "
                 "train.keep_epoch_checkpoints=true.", cmd_average)
    p.add_argument("run", help="run directory trained with train.keep_epoch_checkpoints=true")
    p.add_argument("--epochs", required=True, help="A-B: average checkpoint_epoch{A..B}.pt (FROSTER: 2-last)")
    p.add_argument("output", help="model file to write")

    p = _command(sub, "demo", "generate synthetic motion videos, train, compare with the frame-mean baseline",
                 "Write synthetic H.264 videos of shapes moving in four directions (pairs that differ only in "
                 "frame order) and still shapes, train EVL on a frozen tiny CLIP tower and a frame-mean baseline "
                 "on the CPU, and print both accuracies. Nothing is downloaded.", cmd_demo)
    p.add_argument("--output-dir", default="demo_runs", help="folder for the videos and runs (default demo_runs)")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run")
    return parser


def resolve_device(text: str, option: str = "--device") -> str:
    """`auto` -> cuda or cpu; `gpu` -> cuda; a GPU that PyTorch cannot see -> one-line CommandLineError."""
    import torch

    from .errors import CommandLineError

    name = text.strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "gpu" or name.startswith("gpu:"):
        name = "cuda" + name[3:]
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise CommandLineError(f"{option} {text}: PyTorch sees no CUDA GPU here (torch.cuda.is_available() is "
                                   f"False; torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
                                   "use --device cpu, or auto to take a GPU only when there is one")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise CommandLineError(f"{option} {text}: expected cuda:N with N from 0 to {torch.cuda.device_count() - 1}")
        return name
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise CommandLineError(f"{option} {text}: no Apple GPU (MPS) here; use --device cpu")
        return name
    raise CommandLineError(f"{option} {text!r}: expected auto, cpu, cuda, cuda:N or gpu")


def _close_stdout_quietly() -> None:
    # The reader is gone: point stdout at /dev/null, so that the interpreter's final flush of what
    # is still buffered does not raise again at exit (the Python docs' recipe for SIGPIPE).
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def expected_errors() -> tuple[type[BaseException], ...]:
    """The error classes that mean bad input: reported in one line with exit status 2."""
    from .clip import CheckpointError
    from .data import AnnotationError, VideoDecodeError
    from .data.prepare import StoreError
    from .engine.config import ConfigError
    from .errors import CommandLineError
    from .protocols import ProtocolError

    return (CommandLineError, ConfigError, CheckpointError, AnnotationError, VideoDecodeError, StoreError,
            ProtocolError)


def main(argv: list[str] | None = None) -> int:
    from .errors import one_line

    args = build_parser().parse_args(argv)
    known = expected_errors()
    try:
        if getattr(args, "device", None) is not None:
            args.device = resolve_device(args.device)
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, inside the boundary, not at interpreter exit
        return status
    except BrokenPipeError:
        _close_stdout_quietly()
        return 141
    except known as error:
        # Bad input: one clear line, no traceback.
        print(f"clipvideo {args.command}: error: {one_line(error, 2000)}", file=sys.stderr)
        return 2
    except OSError as error:
        # A path that cannot be written or read (not a folder, no permission, disk full): the path
        # and the system's reason, without Python's "[Errno N]".
        where = ": ".join(str(f) for f in (error.filename, error.filename2) if f is not None)
        reason = error.strerror or one_line(error)
        print(f"clipvideo {args.command}: error: {where + ': ' if where else ''}{reason}", file=sys.stderr)
        return 2
    except FloatingPointError as error:
        # A non-finite loss stops every process together; the first one says why, once.
        if os.environ.get("RANK", "0") == "0":
            print(f"clipvideo {args.command}: error: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
