"""clipvideo: train, test, predict, convert and demo from one command.

    clipvideo train configs/frozen/tiny_synthetic.yaml --set train.lr=1e-4 data.root=/data
    clipvideo test CONFIG --checkpoint runs/x/model.pt
    clipvideo predict video.mp4 --checkpoint runs/x/model.pt
    clipvideo predict video.mp4 --backbone ViT-B-16.pt --classes "dancing,cooking,surfing"
    clipvideo convert xclip k400_32_8.pth xclip_k400.pt
    clipvideo zeroshot CONFIG --checkpoint model.pt --dataset ucf101       # protocols: docs/protocols.md
    clipvideo b2n CONFIG --checkpoint s1.pt s2.pt s3.pt --dataset kinetics400
    clipvideo fewshot-lists train.txt --shots 2 4 8 16 --seed 0 1 2 --out lists/
    torchrun --nproc_per_node=4 -m clipvideo train CONFIG      # DDP on 4 processes
"""

import argparse
import json
import logging
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

    metrics = run_test(_config(args), args.checkpoint, args.list)
    print(f"views: {metrics['views']} ({metrics['precision']})")
    summary = f"mAP {metrics['mAP']:.2f}" if "mAP" in metrics else f"mean class {metrics['mean_class_accuracy']:.2f}"
    print(f"top-1 {metrics['top1']:.2f}  top-5 {metrics['top5']:.2f}  {summary}"
          f"  on {metrics['num_videos']} videos ({metrics['failed_videos']} unreadable, counted as wrong)")
    return 0


def cmd_predict(args) -> int:
    from .engine.predict import load_predictor, predict_video

    predictor = load_predictor(args.checkpoint, args.classes, args.backbone, args.device, args.precision,
                               **({"num_frames": args.num_frames} if args.num_frames else {}))
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
        from .engine.predict import parse_classes

        names = parse_classes(args.classes)
        if getattr(model, "uses_text", False):
            model.set_class_names(names)
        else:
            model.class_names = names
    # A method whose official input differs from the data defaults (X-CLIP: ImageNet statistics,
    # TSN segments) describes it, so that `clipvideo predict` feeds the converted model correctly.
    extra = {"config": {"data": model.data_settings()}} if hasattr(model, "data_settings") else {}
    save_model(model, args.destination, **extra)
    print(f"wrote {args.destination} ({args.method} -> clipvideo)")
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


def cmd_fewshot(args) -> int:
    from .engine.protocols import run_fewshot

    _print_report(run_fewshot(_config(args), args.shots, args.seeds, getattr(args, "from")), args.json)
    return 0


def cmd_demo(args) -> int:
    from .engine.demo import run_demo

    run_demo(args.output_dir, quick=args.quick)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipvideo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_config(p):
        p.add_argument("config", help="YAML recipe (configs/...)")
        p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override config values, e.g. train.lr=1e-4")
        p.add_argument("--output-dir", help="run directory (same as --set output_dir=...)")

    p = sub.add_parser("train", help="train a model from a recipe")
    add_config(p)
    p.add_argument("--resume", help="checkpoint to resume from, or 'auto' for the run directory's last one")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("test", help="evaluate a checkpoint with the recipe's views")
    add_config(p)
    p.add_argument("--checkpoint", required=True, help="native clipvideo checkpoint (model.pt / checkpoint_last.pt)")
    p.add_argument("--list", help="evaluate this list instead of data.val_list")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("predict", help="top-k labels for video files")
    p.add_argument("videos", nargs="+")
    p.add_argument("--checkpoint", help="native clipvideo checkpoint")
    p.add_argument("--backbone", help="CLIP weights for zero-shot prediction with --classes")
    p.add_argument("--classes", help='class names: "a,b,c" or a class-name file')
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--num-clips", type=int, help="views per video (default: enough to cover the video)")
    p.add_argument("--num-frames", type=int, help="frames per clip for --backbone zero-shot (default 8)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("convert", help="official checkpoint -> native clipvideo checkpoint")
    p.add_argument("method", help="evl | xclip | hf-xclip | ...")
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--backbone", help="OpenAI CLIP file, for methods whose checkpoints omit the frozen backbone (EVL)")
    p.add_argument("--classes", help="class names to store with the model")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="importer overrides, e.g. heads=12 num_frames=8")
    p.set_defaults(func=cmd_convert)

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

    p = sub.add_parser("fewshot", help="train and test on seeded K-shot lists, mean ± std over seeds")
    add_config(p)
    p.add_argument("--shots", type=int, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--from", help="full training list to draw from (default: data.train_list)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fewshot)

    p = sub.add_parser("demo", help="generate synthetic motion videos, train, compare with the frame-mean baseline")
    p.add_argument("--output-dir", default="demo_runs")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .clip import CheckpointError
    from .engine.config import ConfigError

    known = (ConfigError, CheckpointError, FileNotFoundError)
    try:
        from .data import AnnotationError, VideoDecodeError
        from .protocols import ProtocolError

        known = known + (AnnotationError, VideoDecodeError, ProtocolError)
    except ImportError:
        pass
    try:
        return args.func(args)
    except known as error:
        # Bad input: one clear line, no traceback.
        print(f"clipvideo {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
