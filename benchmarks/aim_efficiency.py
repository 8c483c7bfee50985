"""AIM's efficiency on CPU: adapters in a frozen CLIP vs full fine-tuning vs EVL's frozen backbone.

Training rows (the same input, random weights; nothing is downloaded), each in a fresh Python
process so that one row's memory cannot hide another's:
  - aim: AIM as published, only adapters, temporal embedding, ln_post and head train;
  - finetune: the same AIM network with every parameter trained (full fine-tuning);
  - evl: EVL (4-layer decoder on a frozen CLIP run under no_grad), for comparison.
Each row reports the fastest of `--steps` training steps (forward + backward + AdamW step) after a
warm-up step, as wall and CPU time, and the peak resident memory during those steps minus the
resident memory before them (VmHWM after /proc/self/clear_refs; ru_maxrss where unavailable).

Inference rows: AIM in eval mode, batch `--infer-batch` (1), fp32 and bf16 autocast, clips/s from
the fastest of `--steps` forward passes. With `--official DIR` (a checkout of the official repo,
imported as benchmarks/vs_official.py imports it: the parity fixture generator's stand-ins for
the mmcv/mmaction names, einops installed; never part of clipvideo), the official ViT_CLIP +
I3DHead runs in the same process with the same weights, taking turns with ours pass by pass; its logits are compared with ours and its clips/s printed in the same table.
The official code measured 0.65 clips/s fp32 and 2.02 bf16 on a 2-core CPU (B/16, 8 frames, 224 px).

    python benchmarks/aim_efficiency.py                        # ViT-B/16, 224 px, 8 frames
    python benchmarks/aim_efficiency.py --official /tmp/aim      # a checkout of taoyang1122/adapt-image-models
    python benchmarks/aim_efficiency.py --arch tiny --resolution 32 --frames 2 --steps 1
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

from clipvideo.clip import get_architecture  # noqa: E402
from clipvideo.engine.machine import load_average, load_report, peak_kib, reset_peak, resident_kib  # noqa: E402
from clipvideo.methods import aim, evl  # noqa: E402
from clipvideo.methods.base import BackboneConfig  # noqa: E402

TRAIN_ROWS = {"aim": "AIM: adapters in a frozen CLIP", "finetune": "full fine-tuning (same network, all trained)",
              "evl": "EVL: frozen CLIP + 4-layer decoder"}
NUM_CLASSES = 400


def backbone(args) -> BackboneConfig:
    return BackboneConfig(arch=args.arch, image_resolution=args.resolution)


def build_aim(args) -> aim.AIM:
    return aim.build(aim.Config(backbone=backbone(args), num_frames=args.frames), NUM_CLASSES)


def measure_training(row: str, args) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    if row == "evl":
        layers = get_architecture(args.arch).vision_layers
        config = evl.Config(backbone=backbone(args), num_frames=args.frames, decoder_layers=min(4, layers))
        model = evl.build(config, NUM_CLASSES)
    else:
        model = build_aim(args)
        if row == "finetune":
            for param in model.parameters():
                param.requires_grad_(True)
    model.train()
    optimizer = torch.optim.AdamW(model.param_groups(0.05), lr=3e-4)
    video = torch.randn(args.batch, args.frames, 3, args.resolution, args.resolution)
    target = torch.randint(0, NUM_CLASSES, (args.batch,))
    before = resident_kib()
    resettable = reset_peak()
    times, cpu_times = [], []
    for i in range(args.steps + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        model.loss(video, target)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:  # the first step allocates the AdamW state and warms the kernels up
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    peak = peak_kib(resettable)
    params = list(model.parameters())
    return {"row": row, "trainable_params": sum(p.numel() for p in params if p.requires_grad),
            "total_params": sum(p.numel() for p in params), "step_seconds": min(times),
            "step_cpu_seconds": min(cpu_times), "train_memory_mib": (peak - before) / 1024, "peak_rss_mib": peak / 1024,
            "memory_source": "VmHWM (clear_refs)" if resettable else "ru_maxrss"}


def clips_per_second(forwards: dict, video: torch.Tensor, steps: int, bf16: bool) -> dict[str, float]:
    """Clips/s of each forward function, from the fastest of `steps` passes; the functions take
    turns, so that a change in machine load affects them alike."""
    times = {name: [] for name in forwards}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for forward in forwards.values():
            forward(video)  # warm-up
        for _ in range(steps):
            for name, forward in forwards.items():
                start = time.perf_counter()
                forward(video)
                times[name].append(time.perf_counter() - start)
    return {name: video.shape[0] / min(t) for name, t in times.items()}


def official_model(model: aim.AIM, args):
    """The official ViT_CLIP + I3DHead with our model's weights (from the checkout `args.official`)."""
    from _shared import official_aim_classes

    from clipvideo.official.aim import official_state_dict

    ViT_CLIP, I3DHead = official_aim_classes(args.official, "--official")

    visual = model.clip.visual
    net = torch.nn.Module()
    net.backbone = ViT_CLIP(args.resolution, args.frames, visual.patch_size, visual.width,
                            len(visual.transformer.resblocks), visual.heads, 0.2, 1, 0.5)
    net.cls_head = I3DHead(num_classes=NUM_CLASSES, in_channels=visual.width)
    net.load_state_dict(official_state_dict(model), strict=True)
    net.eval()
    return lambda video: net.cls_head(net.backbone(video.transpose(1, 2)))  # official layout (B, 3, T, H, W)


def measure_inference(args) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = build_aim(args).eval()
    with torch.no_grad():  # non-zero adapters, so the comparison with the official code is not trivial
        for name, param in model.named_parameters():
            if name.endswith("up.weight") or name == "temporal_embedding":
                param.normal_(std=0.02)
    video = torch.randn(args.infer_batch, args.frames, 3, args.resolution, args.resolution)
    forwards = {"clipvideo": model}
    result = {}
    if args.official:
        forwards["official"] = official_model(model, args)
        with torch.no_grad():
            result["max_abs_logit_difference"] = (forwards["official"](video) - model(video)).abs().max().item()
    speeds = {precision: clips_per_second(forwards, video, args.steps, precision == "bf16") for precision in ("fp32", "bf16")}
    for name in forwards:
        result[name] = {precision: speeds[precision][name] for precision in speeds}
    return result


def run_worker(worker: str, argv: list[str]) -> dict:
    command = [sys.executable, __file__, *argv, "--worker", worker]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode:
        sys.exit(f"the {worker} measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(args, training: list[dict], inference: dict, load_at_start=None) -> str:
    lines = [f"AIM efficiency on CPU: {args.arch} at {args.resolution} px, {args.frames} frames; training batch {args.batch}, "
             f"inference batch {args.infer_batch}; {args.threads} threads (torch.get_num_threads), torch {torch.__version__}; "
             f"fastest of {args.steps}",
             load_report(args.threads, load_at_start)]
    lines += [f"memory: peak RSS during training minus RSS before it ({training[0]['memory_source']}), one process per row",
              "", "| training | trainable params | step (s) | step CPU (s) | train memory (MiB) | peak RSS (MiB) |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in training:
        lines.append(f"| {TRAIN_ROWS[r['row']]} | {r['trainable_params'] / 1e6:.2f} M of {r['total_params'] / 1e6:.2f} M | "
                     f"{r['step_seconds']:.2f} | {r['step_cpu_seconds']:.1f} | {r['train_memory_mib']:.0f} | {r['peak_rss_mib']:.0f} |")
    rows = {r["row"]: r for r in training}
    base = rows["aim"]
    for other in ("finetune", "evl"):
        r = rows[other]
        lines.append(f"{other} / AIM: {r['step_seconds'] / base['step_seconds']:.2f}x step time, "
                     f"{r['train_memory_mib'] / max(base['train_memory_mib'], 1):.2f}x training memory")
    lines += ["", "| inference (eval, no_grad) | fp32 clips/s | bf16 clips/s |", "|---|---:|---:|",
              f"| clipvideo AIM | {inference['clipvideo']['fp32']:.2f} | {inference['clipvideo']['bf16']:.2f} |"]
    if "official" in inference:
        lines.append(f"| official ViT_CLIP + I3DHead (same run) | {inference['official']['fp32']:.2f} | "
                     f"{inference['official']['bf16']:.2f} |")
        ours, theirs = inference["clipvideo"], inference["official"]
        lines.append(f"clipvideo / official: {ours['fp32'] / theirs['fp32']:.2f}x fp32, {ours['bf16'] / theirs['bf16']:.2f}x bf16; "
                     f"max |logit difference| (fp32) {inference['max_abs_logit_difference']:.1e}")
    lines.append("official code, reported (2-core CPU, B/16, 8 frames, 224 px, batch 1): 0.65 clips/s fp32, 2.02 bf16")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="ViT-B/16", help="CLIP architecture (clipvideo.clip.ARCHITECTURES)")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2, help="clips per training step")
    parser.add_argument("--infer-batch", type=int, default=1, help="clips per inference batch")
    parser.add_argument("--steps", type=int, default=3, help="measured steps (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--official", help="checkout of taoyang1122/adapt-image-models: the official ViT_CLIP + I3DHead "
                        "run beside ours (needs einops; benchmarks/vs_official.py has the fuller comparison)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--worker", choices=[*TRAIN_ROWS, "inference"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> str:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        result = measure_inference(args) if args.worker == "inference" else measure_training(args.worker, args)
        print(json.dumps(result))
        return ""
    torch.set_num_threads(args.threads)
    load_at_start = load_average()
    training = [run_worker(row, argv) for row in TRAIN_ROWS]
    inference = run_worker("inference", argv)
    table = report(args, training, inference, load_at_start)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"training": training, "inference": inference, "table": table}, indent=1))
    return table


if __name__ == "__main__":
    main()
