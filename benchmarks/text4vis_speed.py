"""Text4Vis speed on CPU against the frame-mean baseline, same run, same CLIP size.

Rows (all at the same CLIP size, same input):
  - frame mean: Text4Vis with `fusion: mean` (official sim_header None) - per-frame CLIP
    embeddings averaged over time, cosine with the constant text classifier. Its training step
    trains the image tower (0.1x LR) and logit_scale, as the official mean-pooling runs do.
  - Text4Vis Transf: the official 6-layer temporal fusion on top (the default).
Measured, interleaving the rows so that load from other processes hits them alike:
  - inference: clips per second in eval mode under no_grad (the classifier is a constant made once,
    so no text tower runs per call);
  - training step: forward + cross-entropy + backward + AdamW step over the trainable parameters.
Median over `--repeats` timed calls after one warm-up call per row, wall-clock and CPU time of this
process (CPU time is less sensitive to other processes sharing the machine).

The default size is ViT-B/32 (width 768, patch 32, 224 px, embed 512, text width 512) with fewer
vision layers (4) so that it runs in a few minutes on 2 cores:

    python benchmarks/text4vis_speed.py
    python benchmarks/text4vis_speed.py --vision-layers 12      # full B/32 depth
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import CLASS_WORDS, model_size_parser  # noqa: E402

from clipvideo.clip import CLIPConfig  # noqa: E402
from clipvideo.engine.machine import load_average, load_report  # noqa: E402
from clipvideo.methods import text4vis  # noqa: E402
from clipvideo.methods.base import BackboneConfig  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = model_size_parser(__doc__.splitlines()[0], text_layers=2)
    parser.add_argument("--fusion-layers", type=int, default=6)
    return parser.parse_args(argv)


def build(args, fusion: str) -> text4vis.Text4Vis:
    arch = CLIPConfig(embed_dim=args.embed, image_resolution=args.resolution, vision_width=args.vision_width,
                      vision_layers=args.vision_layers, vision_heads=max(1, args.vision_width // 64),
                      vision_patch_size=args.patch, text_width=args.text_width, text_layers=args.text_layers,
                      text_heads=max(1, args.text_width // 64))
    config = text4vis.Config(backbone=BackboneConfig(architecture=arch.to_dict()), num_frames=args.frames,
                             fusion=fusion, fusion_layers=args.fusion_layers)
    names = [CLASS_WORDS[i % len(CLASS_WORDS)] + f" {i}" for i in range(args.classes)]
    return text4vis.build(config, len(names), names)


def timed(call: Callable[[], None]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def benchmark(args) -> tuple[dict, dict]:
    """{row: (median wall s, median CPU s)} per inference call and per training step."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {"frame mean": build(args, "mean"), "Text4Vis Transf": build(args, "transf")}
    video = torch.randn(args.batch, args.frames, 3, args.resolution, args.resolution)
    target = torch.randint(0, args.classes, (args.batch,))
    optimizers = {name: torch.optim.AdamW([{"params": g["params"], "lr": 1e-5 * g["lr_scale"],
                                            "weight_decay": g["weight_decay"]} for g in m.param_groups(0.2)])
                  for name, m in models.items()}

    def infer(model):
        model.eval()
        with torch.no_grad():
            model(video)

    def step(name):
        model, optimizer = models[name], optimizers[name]
        model.train()
        model.loss(video, target)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    inference = {name: [] for name in models}
    training = {name: [] for name in models}
    for name, model in models.items():  # warm-up
        infer(model)
        step(name)
    for _ in range(args.repeats):
        for name, model in models.items():
            inference[name].append(timed(lambda: infer(model)))
            training[name].append(timed(lambda: step(name)))

    def median(rows):
        return {n: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for n, r in rows.items()}

    return median(inference), median(training)


def report(args, inference: dict, training: dict, load_at_start=None) -> str:
    lines = [f"Text4Vis vs frame mean: vision {args.vision_width}x{args.vision_layers} patch {args.patch} at "
             f"{args.resolution} px, embed {args.embed}, fusion {args.fusion_layers} layers, T={args.frames}, "
             f"batch {args.batch}, {args.classes} classes, median of {args.repeats}",
             load_report(torch.get_num_threads(), load_at_start)]
    base_inf, base_train = inference["frame mean"], training["frame mean"]
    lines += ["", "| model | inference clips/s (wall) | CPU s per call | vs frame mean (CPU) | train step s (wall) "
              "| CPU s per step | vs frame mean (CPU) |", "|---|---|---|---|---|---|---|"]
    for name in inference:
        (iw, ic), (tw, tc) = inference[name], training[name]
        lines.append(f"| {name} | {args.batch / iw:.2f} | {ic:.3f} | {ic / base_inf[1]:.2f}x | {tw:.3f} | {tc:.3f} "
                     f"| {tc / base_train[1]:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    load_at_start = load_average()
    inference, training = benchmark(args)
    print(report(args, inference, training, load_at_start))


if __name__ == "__main__":
    main()
