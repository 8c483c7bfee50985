"""The worked example of docs/compare.md: `clipvideo compare` on a synthetic class-folder dataset.

Five classes (moving left / right / up / down: two pairs that differ only in frame order; a still
square), 48 videos each (36 to train, 12 to validate), 24 frames at 64 px, as FOLDER/<class>/<video>.mp4. Every method starts
from one tiny position-aware stand-in CLIP (tests/frame_order_helpers.py: trained on single frames,
a stand-in for a pretrained CLIP) and gets the same budget, frames, views, split and seed; the
learning rates are the tiny recipes' (a tiny tower is not the fine-tuning regime of the defaults)
and Text4Vis uses its orthogonal classifier (docs/frame_order.md: the stand-in's random text
tower embeds "moving up" and "moving down" almost alike). Then, for each row: top-1 on the
frame-order pair classes (a frame mean can tell the pairs apart but not their direction: 50% at
best), and `clipvideo bench model`'s inference clips/s on the row's recipe beside the table's.

    PYTHONPATH=. python benchmarks/compare_example.py --out compare_example --epochs 30
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from clipvideo.data.synthetic import make_motion_dataset  # noqa: E402
from clipvideo.engine.bench import bench_model  # noqa: E402
from clipvideo.engine.compare import METHODS, CompareSettings, compare, format_table  # noqa: E402
from clipvideo.engine.config import load_config  # noqa: E402
from clipvideo.engine.machine import load_average, load_report  # noqa: E402
from frame_order_helpers import make_position_clip  # noqa: E402

CLASSES = ("moving left", "moving right", "moving up", "moving down", "still red square")
PAIRS = {"moving_left", "moving_right", "moving_up", "moving_down"}  # class names are the folder names
TINY = ["model.backbone.heads=2", "model.backbone.text_heads=2", "frozen:train.lr=1e-2", "evl:train.lr=3e-3",
        "evl:model.decoder_layers=2", "evl:model.mlp_dropout=0", "evl:model.head_dropout=0", "aim:train.lr=1e-2",
        "aim:model.drop_path_rate=0", "aim:model.head_dropout=0", "xclip:train.lr=3e-4", "xclip:model.mit_heads=2",
        "xclip:model.prompt_heads=2", "text4vis:train.lr=2e-3", "text4vis:model.classifier=orthogonal",
        "text4vis:model.fusion_layers=2", "text4vis:model.fusion_heads=2", "froster:train.lr=1e-4"]


def pair_accuracy(predictions: Path, names: list[str]) -> float:
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    on_pairs = [r for r in rows if names[r["label"]] in PAIRS]
    return 100.0 * sum(r["top"][0]["name"] == names[r["label"]] for r in on_pairs) / len(on_pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    before = load_average()
    torch.set_num_threads(1)
    out = Path(args.out)
    data = make_motion_dataset(out / "data", num_videos_per_class=48, num_val_per_class=0, num_frames=24,
                               size=(64, 64), fps=12, seed=0, classes=CLASSES)
    stand_in = out / "position_clip.pt"
    if not stand_in.is_file():
        make_position_clip(stand_in)
    settings = CompareSettings(data=str(Path(data.root) / "videos"), out=str(out / "cmp"),
                               methods=args.methods.split(","), backbone=str(stand_in), epochs=args.epochs,
                               num_frames=8, input_size=64, val_fraction=0.25, batch_size=16, flip=False,
                               overrides=TINY, resume=True)
    rows = compare(settings)
    print(format_table(rows))
    print("\n| method | top-1 on the frame-order pairs | inference clips/s: compare / bench model |")
    print("|---|---|---|")
    for row in rows:
        if "error" in row:
            continue
        folder = out / "cmp" / row["method"]
        names = [line.split(",", 1)[1] for line in (folder / "folder_lists" / "classes.csv").read_text().splitlines()[1:]]
        config = load_config(str(folder / "config.yaml"))  # the run's own: its folder lists and classes
        bench = bench_model(config, torch.device("cpu"), batch_size=1, precisions=("fp32",))[0]["clips_per_s"]
        print(f"| {row['method']} | {pair_accuracy(folder / 'predictions.jsonl', names):.1f} | "
              f"{row['infer_clips_per_s']:.1f} / {bench:.1f} ({row['infer_clips_per_s'] / bench:.2f}x) |")
    print(load_report(1, before=before))


if __name__ == "__main__":
    main()
