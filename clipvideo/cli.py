"""clipvideo: train, test, predict, convert and demo from one command.

    clipvideo train configs/frozen/tiny_synthetic.yaml --set train.lr=1e-4 data.root=/data
    clipvideo test CONFIG --checkpoint runs/x/model.pt
    clipvideo predict video.mp4 --checkpoint runs/x/model.pt
    clipvideo predict video.mp4 --backbone ViT-B-16.pt --classes "dancing,cooking,surfing"
    clipvideo convert xclip k400_32_8.pth xclip_k400.pt
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
    print(f"top-1 {metrics['top1']:.2f}  top-5 {metrics['top5']:.2f}  mean class {metrics['mean_class_accuracy']:.2f}"
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
        from .engine.predict import class_texts, parse_classes

        names = class_texts(args.classes, model) or parse_classes(args.classes)  # FROSTER keeps descriptions
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

    known = (ConfigError, CheckpointError, FileNotFoundError)
    try:
        from .data import AnnotationError, VideoDecodeError

        known = known + (AnnotationError, VideoDecodeError)
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
