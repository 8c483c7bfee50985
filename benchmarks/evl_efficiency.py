"""EVL's efficiency claim on CPU: a decoder on a frozen CLIP vs fine-tuning the whole backbone.

Both rows train the same model (same CLIP size, same EVL decoder, same input) and differ only
in what is trained. Frozen (EVL): the backbone runs under no_grad, so none of its activations are
kept for backward, it gets no gradients and no AdamW state. Fine-tuned: everything is trained
(the official code crashes in this mode; clipvideo's `freeze_backbone: false` works).

Measured, each row in a fresh Python process so that one row's memory cannot hide another's:
  - training step time: forward + backward + AdamW step, the fastest of `--steps` steps after
    one warm-up step (on a shared machine the fastest is the least disturbed), as wall time and
    as the process's CPU time over all threads (less sensitive to other processes);
  - peak memory: peak resident set size of the process during those steps (VmHWM from
    /proc/self/status, reset through /proc/self/clear_refs right before the first step), minus
    the resident size just before it (weights, input and the process itself); the total peak is
    printed too. Where clear_refs is unavailable, `resource.getrusage().ru_maxrss` is used;
  - inference: clips per second in eval mode under no_grad, from the fastest of `--steps`
    batches (the architecture is the same, so this should agree between rows up to noise).
Weights are random: speed and memory do not depend on their values, and nothing is downloaded.

    python benchmarks/evl_efficiency.py                       # ViT-B/16, 224 px, 8 frames, batch 2
    python benchmarks/evl_efficiency.py --arch tiny --resolution 64 --frames 4 --decoder-layers 2
    python benchmarks/evl_efficiency.py --precision bf16      # bf16 autocast (+ bf16 frozen backbone)
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipvideo.engine.machine import load_average, load_report, peak_kib, reset_peak, resident_kib  # noqa: E402
from clipvideo.methods.base import BackboneConfig  # noqa: E402
from clipvideo.methods.evl import Config, build  # noqa: E402

ROWS = {"frozen": "EVL: frozen backbone + decoder", "finetune": "fine-tune backbone + same decoder"}


def measure(row: str, args) -> dict:
    """One row, in this process: build, train `args.steps` steps, then time inference."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    bf16 = args.precision == "bf16"
    frozen = row == "frozen"
    config = Config(
        backbone=BackboneConfig(arch=args.arch, image_resolution=args.resolution),
        num_frames=args.frames,
        decoder_layers=args.decoder_layers,
        freeze_backbone=frozen,
        backbone_precision="bf16" if (bf16 and frozen) else "fp32",
    )
    model = build(config, num_classes=400).train()
    # The official optimiser: AdamW, lr 4e-4, weight decay 0.05 on every trainable parameter.
    optimizer = torch.optim.AdamW(model.param_groups(0.05), lr=4e-4)
    video = torch.randn(args.batch, args.frames, 3, args.resolution, args.resolution)
    target = torch.randint(0, 400, (args.batch,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(video, target)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    before = resident_kib()
    resettable = reset_peak()
    times, cpu_times = [], []
    for i in range(args.steps + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        if i:  # the first step allocates the AdamW state and warms the kernels up
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    peak = peak_kib(resettable)

    model.eval()
    batch_times = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(video)  # warm-up
        for _ in range(args.steps):
            start = time.perf_counter()
            model(video)
            batch_times.append(time.perf_counter() - start)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "row": row,
        "trainable_params": trainable,
        "total_params": sum(p.numel() for p in model.parameters()),
        "step_seconds": min(times),
        "step_cpu_seconds": min(cpu_times),
        "train_memory_mib": (peak - before) / 1024,
        "peak_rss_mib": peak / 1024,
        "inference_clips_per_s": args.batch / min(batch_times),
        "memory_source": "VmHWM (clear_refs)" if resettable else "ru_maxrss",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="ViT-B/16", help="CLIP architecture (clipvideo.clip.ARCHITECTURES)")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--decoder-layers", type=int, default=4, help="K; the official recipes use 4")
    parser.add_argument("--batch", type=int, default=2, help="clips per training step")
    parser.add_argument("--steps", type=int, default=3, help="measured steps (after one warm-up step)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--worker", choices=list(ROWS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(measure(args.worker, args)))
        return

    load_at_start = load_average()
    results = []
    for row in ROWS:
        command = [sys.executable, __file__, *sys.argv[1:], "--worker", row]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if done.returncode:
            sys.exit(f"the {row} measurement failed:\n{done.stderr}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    print(f"EVL efficiency on CPU: {args.arch} at {args.resolution} px, {args.frames} frames, K={args.decoder_layers}, batch {args.batch}, "
          f"{args.precision}, {args.threads} threads, torch {torch.__version__}; fastest of {args.steps} steps")
    print(f"memory: peak RSS during training minus RSS before it ({results[0]['memory_source']}), one process per row")
    print()
    print("| setting | trainable params | train step (s) | train step CPU (s) | train memory (MiB) | peak RSS (MiB) "
          "| inference (clips/s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {ROWS[r['row']]} | {r['trainable_params'] / 1e6:.1f} M of {r['total_params'] / 1e6:.1f} M | "
              f"{r['step_seconds']:.2f} | {r['step_cpu_seconds']:.1f} | {r['train_memory_mib']:.0f} | {r['peak_rss_mib']:.0f} | "
              f"{r['inference_clips_per_s']:.2f} |")
    print(load_report(args.threads, load_at_start))
    frozen, finetune = results
    print()
    print(f"fine-tuning / EVL: {finetune['step_seconds'] / frozen['step_seconds']:.1f}x step time "
          f"({finetune['step_cpu_seconds'] / frozen['step_cpu_seconds']:.1f}x CPU time), "
          f"{finetune['train_memory_mib'] / max(frozen['train_memory_mib'], 1):.1f}x training memory")


if __name__ == "__main__":
    main()
