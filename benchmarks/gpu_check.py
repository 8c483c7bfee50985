"""The GPU checks, in one command: run it whenever a CUDA machine is at hand, put the table in the docs.

On one CUDA GPU it measures, with random weights at published size (ViT-B/16, 8 frames, 224 px):
  1. each method's inference (batch 1 and --batch) in bf16 and fp16 autocast: clips/s, peak memory,
     and the share of the GPU's bf16 peak (forward FLOPs x clips/s against a bf16 matmul measured
     in the same run);
  2. each method's training step (forward, backward, AdamW) in bf16 and fp16 (with a gradient scaler);
  3. the prepared store with the augmentation on the device (data.augment_on: device, the EVL K400
     recipe's RandAugment): clips/s delivered to the GPU by --workers DataLoader workers;
  4. one-process NCCL DDP: a training step of EVL wrapped in DistributedDataParallel.
It writes OUT.md (the table) and OUT.json.

    python benchmarks/gpu_check.py --out gpu_check              # on a CUDA machine
    python benchmarks/gpu_check.py --smoke --out /tmp/smoke     # tiny models on the CPU: the script runs (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from clipvideo.engine.bench import bench_model, bench_train  # noqa: E402
from clipvideo.engine.compare import METHODS, CompareSettings, count_parameters, gflops_per_view, recipe  # noqa: E402
from clipvideo.engine.config import build_config  # noqa: E402
from clipvideo.engine.machine import load_average, load_report  # noqa: E402


def matmul_ceiling(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """TFLOP/s of an n x n x n matmul, best of 5 (the ceiling the models are measured against)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b
    best = 0.0
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = max(best, 10 * 2 * n**3 / (time.perf_counter() - start) / 1e12)
    return best


def method_config(method: str, smoke: bool, frames: int, batch: int, precision: str):
    settings = CompareSettings(data="unused", out=tempfile.mkdtemp(), num_frames=frames, batch_size=batch,
                               precision=precision)
    values = recipe(settings, method)
    if not smoke:  # published size, random weights
        values["model"]["backbone"] = {"arch": "ViT-B/16"}
        for key in ("decoder_heads", "mit_heads", "prompt_heads", "fusion_heads"):
            values["model"].pop(key, None)
        values["data"].update(input_size=224, short_side=224)
        values["train"]["lr"] = 1e-5
    values["data"]["num_classes"] = 400
    return build_config(values, f"gpu_check {method}")


def check_methods(device, smoke, frames, batch, ceiling, rows):
    precisions = ("bf16",) if device.type == "cpu" else ("bf16", "fp16")
    for method in METHODS:
        try:
            config = method_config(method, smoke, frames, batch, "bf16")
            timing = dict(precisions=precisions, repeats=3, min_seconds=0.0 if smoke else 2.0)
            model_rows = bench_model(config, device, batch_size=1, **timing)
            model_rows += bench_model(config, device, batch_size=batch, **timing)
            from clipvideo.engine.train import build_model

            model = build_model(config, 400, [f"class {i}" for i in range(400)])
            total, tunable = count_parameters(model)
            # multiply-adds per clip (the papers' GFLOPs); x2 FLOPs against the matmul ceiling, x3 for a training step
            gflops = gflops_per_view(model, (frames, 3, config.data.input_size, config.data.input_size))
            for row in model_rows:
                row.update(method=method, gflops_per_clip=gflops, params_m=total, tunable_m=tunable,
                           share_of_bf16_peak=2 * gflops * row["clips_per_s"] / 1e3 / ceiling)
                rows.append(row)
            for precision in precisions:
                config = method_config(method, smoke, frames, batch, precision)
                for row in bench_train(config, device, steps=3):
                    row.update(method=method, share_of_bf16_peak=3 * 2 * gflops * row["clips_per_s"] / 1e3 / ceiling)
                    rows.append(row)
        except Exception as error:  # noqa: BLE001 -- one failure must not hide the other rows
            traceback.print_exc()
            rows.append({"method": method, "row": "failed", "error": str(error).splitlines()[0]})


def check_store(device, smoke, workers, batch, rows):
    """The store with device-side augmentation: clips/s reaching the device."""
    from torch.utils.data import DataLoader

    from clipvideo.data.prepare import StoreSettings, prepare_store
    from clipvideo.data.synthetic import write_benchmark_video
    from clipvideo.engine.data import batch_augment, build_train_dataset

    folder = Path(tempfile.mkdtemp())
    count, seconds, size = (2, 2.0, (96, 64)) if smoke else (16, 10.0, (340, 256))
    for i in range(count):
        write_benchmark_video(folder / f"v{i}.mp4", seconds=seconds, size=size, seed=i)
    (folder / "list.txt").write_text("".join(f"v{i}.mp4 {i % 2}\n" for i in range(count)))
    prepare_store(folder / "list.txt", folder / "store", root=folder, settings=StoreSettings(short_side=size[1]),
                  progress=False)
    crop = 48 if smoke else 224
    config = build_config({"data": {"store": str(folder / "store"), "train_list": str(folder / "list.txt"),
                                    "num_frames": 8, "sampling": "dense", "frame_stride": 4 if smoke else 16,
                                    "input_size": crop, "scale": [0.08, 1.0], "flip": False, "randaugment": True,
                                    "augment_on": "device", "num_classes": 2}}, "gpu_check store")
    dataset = build_train_dataset(config.data)
    augment = batch_augment(config.data)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=False,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    clips, start = 0, None
    for epoch in range(2 if smoke else 4):
        for video, _, _ in loader:
            if start is None:  # the first batch includes worker start-up
                start = time.perf_counter()
                continue
            out = augment(video.to(device, non_blocking=True))
            clips += len(out)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    rate = clips / (time.perf_counter() - start) if clips else 0.0
    rows.append({"method": "data", "row": f"store + device augmentation ({workers} workers, batch {batch})",
                 "clips_per_s": rate, "clips_per_s_per_worker": rate / max(1, workers)})


def check_ddp(device, smoke, frames, batch, rows):
    """One-process DDP (NCCL on a GPU, gloo on the CPU): an EVL training step."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from clipvideo.engine.train import build_model, build_optimizer

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=0, world_size=1)
    try:
        config = method_config("evl", smoke, frames, batch, "bf16")
        model = build_model(config, 400, None).to(device)
        ddp = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        optimizer = build_optimizer(model, config.train)
        video = torch.randn(batch, frames, 3, config.data.input_size, config.data.input_size, device=device)
        target = torch.randint(400, (batch,), device=device)
        times = []
        for _ in range(4):
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(ddp(video).float(), target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        rows.append({"method": "evl", "row": f"DDP train step ({backend}, 1 process, bf16, batch {batch})",
                     "s_per_step": min(times[1:]), "clips_per_s": batch / min(times[1:])})
    finally:
        dist.destroy_process_group()


def format_table(rows: list[dict]) -> str:
    keys = ("clips_per_s", "ms_per_batch", "s_per_step", "peak_memory_mib", "share_of_bf16_peak", "gflops_per_clip")
    lines = ["| method | what | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for row in rows:
        cells = [f"{row[k]:.3g}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in keys]
        lines.append(f"| {row.get('method', '')} | {row['row']}{' ' + row['error'] if 'error' in row else ''} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="OUT.md and OUT.json are written")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers for the store check")
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU (checks that the script runs)")
    args = parser.parse_args()
    before = load_average()
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); use --smoke for the CPU run")
    device = torch.device("cpu" if args.smoke else "cuda")
    batch = 2 if args.smoke else args.batch
    frames = 4 if args.smoke else args.frames
    ceiling = matmul_ceiling(device, torch.bfloat16, 512 if args.smoke else 8192)
    rows: list[dict] = []
    check_methods(device, args.smoke, frames, batch, ceiling, rows)
    check_store(device, args.smoke, 0 if args.smoke else args.workers, batch, rows)
    check_ddp(device, args.smoke, frames, batch, rows)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke run)"
    header = (f"GPU check on {name}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}; "
              f"bf16 matmul ceiling measured {ceiling:.1f} TFLOP/s")
    table = header + "\n\n" + format_table(rows) + "\n\n" + load_report(before=before) + "\n"
    Path(args.out + ".md").write_text(table)
    Path(args.out + ".json").write_text(json.dumps({"device": name, "bf16_ceiling_tflops": ceiling, "rows": rows},
                                                   indent=2))
    print(table)
    if any("error" in row for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
