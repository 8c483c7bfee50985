"""Frame-order table of docs/frame_order.md: each method trained through `clipvideo train` from its
tiny recipe on a synthetic frame-order set, scored on its validation clips and on the same clips
played backwards (labels swapped to the pair's other class).

    PYTHONPATH=. python benchmarks/frame_order.py --set independent --out fo_runs
    PYTHONPATH=. python benchmarks/frame_order.py --set independent --methods xclip --extra train.epochs=30

The class-token methods (xclip, text4vis, froster) and the frame-mean baseline start from the shared
position-aware stand-in CLIP (tests/frame_order_helpers.py), made once under --out; evl and aim
keep their recipes' random frozen towers. One thread per process: the machine this ran on is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import clipvideo  # noqa: E402
from clipvideo.data.synthetic import INDEPENDENT_CLASSES, MOTION_CLASSES, make_motion_dataset  # noqa: E402
from clipvideo.engine.config import load_config  # noqa: E402
from clipvideo.engine.data import build_eval_dataset  # noqa: E402
from clipvideo.engine.machine import load_average, load_report  # noqa: E402
from frame_order_helpers import make_position_clip, reversal_scores  # noqa: E402

SETS = {"independent": INDEPENDENT_CLASSES, "motion": MOTION_CLASSES[:4]}
# recipe, and whether the method starts from the stand-in (else the recipe's random tower)
METHODS = {
    "frame-mean": ("configs/frozen/tiny_synthetic.yaml", True, ["model.temporal=mean"]),
    "evl": ("configs/evl/tiny_synthetic.yaml", False, []),
    "aim": ("configs/aim/tiny_synthetic.yaml", False, []),
    "xclip": ("configs/xclip/tiny_synthetic.yaml", True, []),
    "text4vis": ("configs/text4vis/tiny_synthetic.yaml", True, []),
    "text4vis-mean": ("configs/text4vis/tiny_synthetic_mean.yaml", True, []),
    "froster": ("configs/froster/tiny_synthetic.yaml", True, []),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=SETS, default="independent")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", type=Path, default=Path("fo_runs"))
    parser.add_argument("--videos", type=int, default=64, help="training videos per class (16 for validation)")
    parser.add_argument("--extra", nargs="*", default=[], help="more --set overrides for every method")
    args = parser.parse_args()
    before = load_average()
    torch.set_num_threads(1)
    data = make_motion_dataset(args.out / f"data_{args.set}", num_videos_per_class=args.videos, num_val_per_class=16,
                               num_frames=24, size=(64, 64), fps=12, seed=7, classes=SETS[args.set])
    stand_in = args.out / "position_clip.pt"
    if not stand_in.exists():
        make_position_clip(stand_in)
    for method in args.methods:
        recipe, uses_stand_in, own = METHODS[method]
        overrides = [f"data.root={data.root}", f"data.train_list={data.train_list}", f"data.val_list={data.val_list}",
                     f"data.class_names={data.class_names_file}", f"output_dir={args.out / args.set / method}", *own]
        if uses_stand_in:  # the stand-in has 2 heads per tower and learned CLIP's normalisation
            overrides += [f"model.backbone.pretrained={stand_in}", "model.backbone.heads=2",
                          "model.backbone.text_heads=2", "data.normalization=clip"]
        overrides += args.extra
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "clipvideo", "train", recipe, "--set", *overrides],
                              capture_output=True, text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode:
            sys.exit(f"{method}: training failed\n{done.stderr[-2000:]}")
        seconds = time.perf_counter() - start
        model = clipvideo.load(args.out / args.set / method / "model.pt")
        config = load_config(REPO / recipe, overrides)
        scores = reversal_scores(model, build_eval_dataset(config.data, config.test, model.class_names),
                                 list(model.class_names))
        print(json.dumps({"method": method, "set": args.set, "train_seconds": round(seconds, 1),
                          **{k: round(v, 3) for k, v in scores.items()}}), flush=True)

    print(load_report(1, before=before))

if __name__ == "__main__":
    main()
