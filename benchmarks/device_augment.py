"""Augmentation off the workers: clips per worker CPU-second with the EVL K400 recipe's augmentation.

`data.augment_on: worker` runs the whole train transform in each DataLoader worker: decode, random
resized crop to 224, RandAugment(4, 7), normalisation. `data.augment_on: device` leaves the worker
only decode and crop (uint8) and runs RandAugment and normalisation batched where the model runs.
Both read the prepared store (`clipvideo prepare`, the default GOP 16 / CRF 26) of synthetic
videos (see benchmarks/data_loading.py), with 8 frames every 16 (EVL's 8x16), one thread, as one
worker does. Printed side by side, same run:

  worker path (whole transform)   clips per CPU-second of one worker
  device path, worker half        clips per CPU-second of one worker (the goal: >= 100)
  device half on this CPU         clips per second of BatchAugment on batches of 32, 1 thread
                                  (what the main process would spend without a GPU)

    python benchmarks/device_augment.py               # 8 videos, 40 clips, best of 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from data_loading import make_stores, make_videos, run  # noqa: E402

from clipvideo.data import CLIP_MEAN, CLIP_STD, build_train_transform  # noqa: E402
from clipvideo.data.sampling import FrameSampler  # noqa: E402
from clipvideo.engine.machine import load_average, load_report  # noqa: E402

# configs/evl/k400_vitb16_8x16.yaml: random resized crop (0.08-1), no flip, RandAugment(4, 7), CLIP statistics
EVL_K400 = dict(size=224, scale=(0.08, 1.0), flip=False, randaugment=True, mean=CLIP_MEAN, std=CLIP_STD)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="batch of the device half")
    parser.add_argument("--video-dir", default=os.path.join(tempfile.gettempdir(), "clipvideo_bench_videos"))
    args = parser.parse_args()
    before = load_average()
    torch.set_num_threads(1)
    paths = make_videos(args.video_dir, args.videos, 10.0, (340, 256), 30, None)
    store = make_stores(paths, args.video_dir, [(16, 26)])["store g16 crf26"]["paths"]
    sampler = FrameSampler(8, "dense", frame_stride=16)
    jobs = [(store[i % len(store)], i) for i in range(args.clips)]
    worker = build_train_transform(**EVL_K400)
    geometry, device = build_train_transform(**EVL_K400, on_device=True)
    best = {"worker": 0.0, "device": 0.0}
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
        for name, transform in (("worker", worker), ("device", geometry)):
            _, cpu = run("store", jobs, sampler, transform)
            best[name] = max(best[name], args.clips / cpu)
    torch.manual_seed(0)
    crops = torch.stack([geometry(torch.randint(0, 256, (8, 3, 256, 340), dtype=torch.uint8))
                         for _ in range(args.batch)])
    device_rate = 0.0
    for _ in range(args.repeats):
        start = time.perf_counter()
        device(crops)
        device_rate = max(device_rate, args.batch / (time.perf_counter() - start))
    print("| EVL K400 augmentation, store (GOP 16, CRF 26), 8x16 | clips per worker CPU-second |")
    print("|---|---|")
    print(f"| worker path: decode + crop + RandAugment + normalise | {best['worker']:.1f} |")
    print(f"| device path, worker half: decode + crop (uint8) | {best['device']:.1f} ({best['device'] / best['worker']:.2f}x) |")
    print(f"| device half on this CPU (batch {args.batch}, 1 thread): RandAugment + normalise | {device_rate:.1f} clips/s |")
    print(load_report(1, before=before))


if __name__ == "__main__":
    main()
