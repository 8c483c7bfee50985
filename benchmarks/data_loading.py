"""How fast one data-loading worker turns videos into training clips.

Writes synthetic H.264 videos (default 10 s, 340x256, 30 fps, x264 defaults: B-frames, keyframe
every 250 frames or at scene cuts), then times, for 8x16 dense and 8-segment (TSN) sampling:

  (a) decode every frame, convert all, then index (what EVL does)      backend "pyav_all"
  (b) our PyAV keyframe-index decoder                                  backend "pyav"
      - "index cached": the per-video keyframe index is already in the worker's cache (every
        epoch after the first with persistent workers, or with index_cache_dir)
      - "index per clip": the index is rebuilt for every clip (cold cache, worst case)
  (c) decord and torchcodec, where installed
  (d) the prepared store of `clipvideo prepare` (B-frame GOPs with packet tables, fastdecode H.264
      at the same size), read by the "store" backend; one row per ``--stores GOP:CRF`` setting, with
      its disk size (videos + packet tables) against the source videos and its codec error (mean
      absolute difference to the source frames, in 0-255 levels)

Each clip = open the video, pick indices from its frame count, decode, RandomResizedCrop to 224 +
flip + normalise, in one process with one decode thread and one torch thread (what a DataLoader
worker does). Reports clips per wall second and clips per CPU-second (process time, so extra
decoder threads count), the best of ``--repeats`` repetitions; methods are interleaved so that
load from other processes hits them alike.

    python benchmarks/data_loading.py                 # 8 videos, 40 clips, 3 repetitions
    python benchmarks/data_loading.py --videos 4 --clips 16 --repeats 2   # quick look
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from clipvideo.data import KeyframeIndexCache, available_backends, build_train_transform, open_video  # noqa: E402
from clipvideo.data.sampling import FrameSampler  # noqa: E402
from clipvideo.data.synthetic import write_benchmark_video  # noqa: E402
from clipvideo.engine.machine import load_average, load_report  # noqa: E402


def make_videos(directory: str, count: int, seconds: float, size: tuple[int, int], fps: int,
                gop: int | None) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    tag = f"{seconds:g}s_{size[0]}x{size[1]}_{fps}fps_{'g' + str(gop) if gop else 'gdefault'}"
    paths = [os.path.join(directory, f"bench_{tag}_{i:02d}.mp4") for i in range(count)]
    for i, path in enumerate(paths):
        if not os.path.exists(path):
            write_benchmark_video(path + ".tmp.mp4", seconds=seconds, size=size, fps=fps, gop=gop, seed=i)
            os.replace(path + ".tmp.mp4", path)
    return paths


def make_stores(paths: list[str], directory: str, settings: list[tuple[int, int]]) -> dict[str, dict]:
    """Prepare the videos once per (gop, crf); returns method name -> {"paths", "disk_ratio", "error"}."""
    from clipvideo.data import decode_frames, video_num_frames
    from clipvideo.data.packets import table_path
    from clipvideo.data.prepare import StoreSettings, prepare_store

    list_file = os.path.join(directory, "bench_list.txt")
    with open(list_file, "w") as f:
        f.writelines(f"{os.path.basename(p)} 0\n" for p in paths)
    source_bytes = sum(os.path.getsize(p) for p in paths)
    stores = {}
    for gop, crf in settings:
        out = os.path.join(directory, f"store_g{gop}_crf{crf}")
        shutil.rmtree(out, ignore_errors=True)  # always this version's store, prepared in this run
        height = min(decode_frames(paths[0], [0]).shape[1:3])
        prepare_store(list_file, out, root=directory, settings=StoreSettings(short_side=height, gop=gop, crf=crf),
                      progress=False)
        stored = [os.path.join(out, "videos", os.path.basename(p)) for p in paths]
        errors = []
        for original, copy in zip(paths[:2], stored[:2]):
            frames = list(range(0, video_num_frames(original), 7))
            stored_frames = decode_frames(copy, frames, backend="store").float()
            errors.append((decode_frames(original, frames).float() - stored_frames).abs().mean())
        stored_bytes = sum(os.path.getsize(p) + os.path.getsize(table_path(p)) for p in stored)
        stores[f"store g{gop} crf{crf}"] = {"paths": stored, "disk_ratio": stored_bytes / source_bytes,
                                             "error": float(sum(errors) / len(errors))}
    return stores


def run(method: str, jobs: list[tuple[str, torch.Tensor]], sampler: FrameSampler, transform) -> tuple[float, float]:
    """Time one pass over ``jobs`` (path, seed); returns (wall seconds, CPU seconds)."""
    backend = "pyav" if method.startswith("ours") else "store" if method.startswith("store") else method
    cache = KeyframeIndexCache()
    if method == "ours, index cached":
        for path, _ in jobs:
            cache.get(path)
    wall, cpu = time.perf_counter(), time.process_time()
    for path, seed in jobs:
        if method == "ours, index per clip":
            cache.clear()
        reader = open_video(path, backend, num_threads=1, index_cache=cache)
        generator = torch.Generator().manual_seed(seed)
        indices = sampler.train(reader.num_frames, generator)
        clip = reader.get_frames(indices.tolist()).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
        out = transform(clip)
        assert out.shape == (sampler.num_frames, 3, 224, 224)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8, help="number of generated videos")
    parser.add_argument("--clips", type=int, default=40, help="clips per method, sampler and repetition")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions; the best is reported")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="340x256", help="WxH")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--gop", type=int, default=None, help="fixed keyframe interval (default: x264's)")
    parser.add_argument("--video-dir", default=os.path.join(tempfile.gettempdir(), "clipvideo_bench_videos"),
                        help="where videos are written (reused between runs)")
    parser.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    parser.add_argument("--stores", default="16:26,8:26,32:26,16:23",
                        help="prepared-store settings GOP:CRF to compare (default: clipvideo prepare's 16:26 first)")
    args = parser.parse_args()

    torch.set_num_threads(1)  # as in a DataLoader worker
    load_at_start = load_average()
    width, height = (int(v) for v in args.size.split("x"))
    start = time.perf_counter()
    paths = make_videos(args.video_dir, args.videos, args.seconds, (width, height), args.fps, args.gop)
    print(f"{len(paths)} videos ({args.seconds:g} s, {width}x{height}, {args.fps} fps, "
          f"GOP {args.gop or 'x264 default'}) in {args.video_dir} ({time.perf_counter() - start:.1f} s)")

    settings = [tuple(int(v) for v in item.split(":")) for item in args.stores.split(",") if item]
    stores = make_stores(paths, args.video_dir, settings)
    methods = ["pyav_all", "ours, index cached", "ours, index per clip"]
    methods += [name for name in ("decord", "torchcodec") if name in available_backends()]
    methods += list(stores)
    if args.methods:
        methods = [m for m in methods if m in args.methods.split(",")]
    samplers = {"8x16 dense": FrameSampler(8, "dense", frame_stride=16), "8 segments": FrameSampler(8, "segment")}
    transform = build_train_transform(224)
    best: dict[tuple[str, str], tuple[float, float]] = {}
    for repeat in range(args.repeats):
        for sampler_name, sampler in samplers.items():
            jobs = [((repeat * args.clips + i) % len(paths), repeat * 100_003 + i) for i in range(args.clips)]
            for method in methods:
                files = stores[method]["paths"] if method in stores else paths
                wall, cpu = run(method, [(files[v], seed) for v, seed in jobs], sampler, transform)
                key = (method, sampler_name)
                previous = best.get(key, (float("inf"), float("inf")))
                best[key] = (min(previous[0], wall), min(previous[1], cpu))

    names = {
        "pyav_all": "(a) PyAV decode all, then index",
        "ours, index cached": "(b) ours, keyframe index cached",
        "ours, index per clip": "(b) ours, index built per clip",
        "decord": "(c) decord",
        "torchcodec": "(c) torchcodec",
        **{name: f"(d) {name}" for name in stores},
    }
    rate = {key: (args.clips / wall, args.clips / cpu) for key, (wall, cpu) in best.items()}
    header = f"{'method':34s}" + "".join(f"| {s:>10s} clips/s  per CPU-s " for s in samplers)
    print(f"\n{args.clips} clips x best of {args.repeats}, 224 crops, 1 decode thread, 1 torch thread\n")
    print(header)
    print("-" * len(header))
    for method in methods:
        cells = "".join(f"| {rate[(method, s)][0]:18.1f} {rate[(method, s)][1]:11.1f} " for s in samplers)
        print(f"{names[method]:34s}{cells}")
    print(load_report(torch.get_num_threads(), load_at_start))
    print()
    for name, store in stores.items():
        print(f"(d) {name}: disk {store['disk_ratio']:.2f}x the source videos, "
              f"codec error {store['error']:.2f} levels (mean |difference| to the source frames)")
    print()
    others = [m for m in methods if m in ("decord", "torchcodec")]
    for name in stores:
        if name not in methods:
            continue
        for sampler_name in samplers:
            cpu = rate[(name, sampler_name)][1]
            line = f"{name:30s} {sampler_name:10s}: {cpu:.1f} clips per CPU-s"
            if "ours, index cached" in methods:
                line += f", {cpu / rate[('ours, index cached', sampler_name)][1]:.2f}x (b) on the source videos"
            if others:
                line += f", {cpu / max(rate[(m, sampler_name)][1] for m in others):.2f}x best (c)"
            print(line)
    for ours in ("ours, index cached", "ours, index per clip"):
        if ours not in methods:
            continue
        for sampler_name in samplers:
            wall, cpu = rate[(ours, sampler_name)]
            line = f"{names[ours][4:]:30s} {sampler_name:10s}:"
            if "pyav_all" in methods:
                base = rate[("pyav_all", sampler_name)]
                line += f" {wall / base[0]:.2f}x (a) wall, {cpu / base[1]:.2f}x (a) per CPU-s"
            if others:
                best_wall = max(rate[(m, sampler_name)][0] for m in others)
                best_cpu = max(rate[(m, sampler_name)][1] for m in others)
                line += f"; {wall / best_wall:.2f}x best (c) wall, {cpu / best_cpu:.2f}x best (c) per CPU-s"
            print(line)


if __name__ == "__main__":
    main()
