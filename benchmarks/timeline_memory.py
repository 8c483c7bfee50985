"""Peak memory of `clipvideo predict --timeline` against video length: it must stay flat.

Writes synthetic H.264 videos of 1 and 10 minutes (default 64x64 at 10 fps, motion clips one
after another), a tiny random frozen-CLIP model (64 px, 8 frames, text classifier), then runs the
timeline (2 s windows every 1 s) on each video in a fresh process and reports that process's peak
resident memory (ru_maxrss), and how much the run itself added to the resident memory the process
had once imports and the model were loaded (the peak is reset there through /proc/self/clear_refs,
Linux). The windows are decoded a batch at a time, so the 10-minute video should need about what
the 1-minute one needs (the issue asks for within 20% of the peak).

The process peak is mostly imports and the model; the growth column shows what the run adds.
For scale, a control decodes every frame of each video at once (what a non-streamed timeline would
hold), measured the same way.

    python benchmarks/timeline_memory.py                     # 1 and 10 minutes
    python benchmarks/timeline_memory.py --minutes 1 60      # any lengths
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

CLASSES = ["moving left", "moving right", "moving up", "moving down"]


def make_video(path: Path, minutes: float, size: int, fps: int) -> None:
    import numpy as np

    from clipvideo.data.synthetic import render_motion_clip, write_video

    rng = np.random.default_rng(0)
    clip_frames = 3 * fps  # a new 3 s motion clip after another
    total = round(minutes * 60 * fps)

    def frames():  # generated lazily: the writer never holds the whole video either
        for start in range(0, total, clip_frames):
            yield from render_motion_clip(CLASSES[(start // clip_frames) % 4], min(clip_frames, total - start),
                                          size, size, rng)

    write_video(path, frames(), fps=fps)


def make_model(path: Path, size: int) -> None:
    import torch

    from clipvideo.clip import create_clip
    from clipvideo.engine.checkpoint import save_model
    from clipvideo.methods import frozen
    from clipvideo.methods.base import BackboneConfig

    torch.manual_seed(0)
    clip_file = path.with_name("tiny-clip.pt")
    torch.save(create_clip("tiny").state_dict(), clip_file)
    model = frozen.build(frozen.Config(backbone=BackboneConfig(pretrained=str(clip_file)), num_frames=8), 4, CLASSES)
    save_model(model, path, data={"num_frames": 8, "sampling": "segment", "input_size": size, "short_side": size})


def _status_mb(field: str) -> float | None:
    """VmRSS / VmHWM of this process from /proc (Linux), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux: `echo 5 > /proc/self/clear_refs`)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(args) -> None:
    """One measurement in this (fresh) process; prints JSON. Everything up to the run (imports,
    the model) is loaded first, then the peak is reset, so `growth_mb` is what the run itself added."""
    import torch

    torch.set_num_threads(args.threads)
    from clipvideo.data import open_video
    from clipvideo.engine.predict import load_predictor
    from clipvideo.engine.timeline import video_timeline

    predictor = load_predictor(args.model, precision="fp32")
    before = _status_mb("VmRSS")
    reset = _reset_peak()
    start = time.perf_counter()
    if args.child == "timeline":
        result = video_timeline(predictor, args.video, window=2.0, stride=1.0)
        extra = {"windows": len(result.windows), "segments": len(result.segments)}
    else:
        reader = open_video(args.video)
        frames = reader.get_frames(range(reader.num_frames))
        extra = {"frames": len(frames), "frame_bytes_mb": round(frames.numel() / 2**20, 1)}
    seconds = round(time.perf_counter() - start, 1)
    process_peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
    run_peak = _status_mb("VmHWM") if reset else None
    print(json.dumps({"peak_rss_mb": process_peak, "rss_before_mb": before, "run_peak_mb": run_peak,
                      "growth_mb": round(run_peak - before, 1) if run_peak and before else None,
                      "seconds": seconds, **extra}))


def measure(kind: str, video: Path, model: Path, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--video", str(video), "--model", str(model),
               "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--size", type=int, default=64, help="frame width and height")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", choices=["timeline", "decode-all"], help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    from clipvideo.engine.machine import load_average, load_report

    before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "tiny-frozen.pt"
        make_model(model, args.size)
        rows = []
        for minutes in args.minutes:
            video = tmp / f"{minutes:g}min.mp4"
            make_video(video, minutes, args.size, args.fps)
            timeline = measure("timeline", video, model, args.threads)
            control = measure("decode-all", video, model, args.threads)
            rows.append((minutes, timeline, control))
            print(f"{minutes:g} min: timeline {timeline}; decode-all control {control}", flush=True)
        base = rows[0][1]["peak_rss_mb"]
        print(f"\n| video | timeline: process peak RSS | vs {rows[0][0]:g} min | timeline: growth during the run "
              "| decode-all control: growth during the run |")
        print("|---|---|---|---|---|")
        for minutes, timeline, control in rows:
            print(f"| {minutes:g} min, {args.size}x{args.size} @ {args.fps} fps ({timeline['windows']} windows) "
                  f"| {timeline['peak_rss_mb']} MB | {100 * (timeline['peak_rss_mb'] / base - 1):+.1f}% "
                  f"| {timeline['growth_mb']} MB | {control['growth_mb']} MB ({control['frame_bytes_mb']} MB of frames) |")

        print(load_report(args.threads, before=before))


if __name__ == "__main__":
    main()
