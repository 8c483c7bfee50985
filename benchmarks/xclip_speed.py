"""X-CLIP speed on CPU: clipvideo's X-CLIP vs transformers' XCLIPModel, same size, same weights.

One process builds a transformers `XCLIPModel` with random weights, saves it, and loads the same
folder through `clipvideo.load_official("hf-xclip", ...)`, so both models compute the same
function (the script checks that the logits agree). Then, interleaving the rows so that load from
other processes hits them alike, it measures:
  - inference: clips per second in eval mode under no_grad, for a batch of `--batch` videos and
    `--classes` class names. clipvideo encodes the class names once (`set_class_names`) and reuses
    them; transformers' forward takes `input_ids` and re-encodes the text every call. The row
    "text re-encoded every call" clears clipvideo's cache before each call: same work as HF.
  - training step: forward + soft-target cross-entropy + backward + AdamW step, with the text
    tower and logit_scale frozen in both (X-CLIP's default, official FIX_TEXT) and the same
    trainable parameters.
Median over `--repeats` timed calls after one warm-up call per row, as wall-clock time and as CPU
time of this process (all threads; less sensitive to other processes sharing the machine).

The default size is ViT-B/32-like (width 768, patch 32, 224 px, text width 512, embed 512, heads
width // 64) with fewer layers (4 + 4) so that it runs in a minute or two on 2 cores:

    python benchmarks/xclip_speed.py
    python benchmarks/xclip_speed.py --vision-layers 12 --text-layers 12   # full B/32 depth
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import CLASS_WORDS, model_size_parser  # noqa: E402

from clipvideo.clip import tokenize  # noqa: E402
from clipvideo.engine.machine import load_average, load_report  # noqa: E402
from clipvideo.official.xclip import load_official_hf_xclip  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = model_size_parser(__doc__.splitlines()[0], text_layers=4)
    return parser.parse_args(argv)


def class_names(count: int) -> list[str]:
    return [f"{CLASS_WORDS[i % len(CLASS_WORDS)]} {i // len(CLASS_WORDS) or ''}".strip() for i in range(count)]


def processor_text(names: list[str]) -> dict[str, torch.Tensor]:
    """What XCLIPProcessor(text=names, padding=True) passes on: ids up to the longest prompt,
    padded with the end-of-text id, and the matching attention mask."""
    tokens = tokenize(names)
    tokens = tokens[:, : int(tokens.argmax(dim=-1).max()) + 1]
    mask = (tokens != 0).long()
    return {"input_ids": tokens.masked_fill(mask == 0, 49407), "attention_mask": mask}


def build_pair(args, folder: Path):
    """A random transformers XCLIPModel and clipvideo's model loaded from its saved folder."""
    from transformers import XCLIPConfig, XCLIPModel

    config = XCLIPConfig(
        text_config=dict(hidden_size=args.text_width, intermediate_size=4 * args.text_width,
                         num_hidden_layers=args.text_layers, num_attention_heads=max(1, args.text_width // 64)),
        vision_config=dict(hidden_size=args.vision_width, intermediate_size=4 * args.vision_width,
                           num_hidden_layers=args.vision_layers, num_attention_heads=max(1, args.vision_width // 64),
                           image_size=args.resolution, patch_size=args.patch, num_frames=args.frames,
                           mit_hidden_size=args.embed, mit_intermediate_size=4 * args.embed,
                           mit_num_attention_heads=max(1, args.embed // 64)),
        projection_dim=args.embed,
        prompt_num_attention_heads=max(1, args.embed // 64),
    )
    torch.manual_seed(0)
    hf = XCLIPModel(config).eval()
    hf.save_pretrained(folder)
    ours = load_official_hf_xclip(folder)
    return hf, ours


def freeze_hf_text(hf) -> None:
    for name, param in hf.named_parameters():
        if name.startswith(("text_model.", "text_projection.")) or name == "logit_scale":
            param.requires_grad_(False)


def train_step(forward: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer, target: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss = torch.sum(-target * F.log_softmax(forward(), dim=-1), dim=-1).mean()
    loss.backward()
    optimizer.step()


def adamw(model) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-7, betas=(0.9, 0.98), eps=1e-8)


def measure(rows: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per call of each row; rows interleaved, each warmed up once.

    CPU time (all threads of this process) is less sensitive to other processes on the machine."""
    for call in rows.values():
        call()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    for _ in range(repeats):
        for name, call in rows.items():
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
            for name, values in times.items()}


def benchmark(args, extra_inference=None, extra_training=None) -> tuple[dict, dict, float]:
    """Seconds per batch for inference and training rows. `extra_inference(ours, video, names)` and
    `extra_training(ours, video, names, target)` may add rows (the local run of the official code does)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    names = class_names(args.classes)
    text = processor_text(names)
    torch.manual_seed(1)
    video = torch.randn(args.batch, args.frames, 3, args.resolution, args.resolution)
    target = F.one_hot(torch.arange(args.batch) % args.classes, args.classes).float()
    with tempfile.TemporaryDirectory() as folder:
        hf, ours = build_pair(args, Path(folder))
    ours.set_class_names(names)

    with torch.no_grad():
        difference = (ours(video) - hf(pixel_values=video, **text).logits_per_video).abs().max().item()

    def ours_uncached():
        ours.class_cache.clear()
        return ours(video)

    inference = {
        "clipvideo X-CLIP (class-name text cached)": lambda: ours(video),
        "clipvideo X-CLIP (text re-encoded every call)": ours_uncached,
        "transformers XCLIPModel": lambda: hf(pixel_values=video, **text),
    }
    inference.update(extra_inference(ours, video, names) if extra_inference else {})
    with torch.no_grad():
        inference_times = measure(inference, args.repeats)

    ours.train()
    hf.train()
    freeze_hf_text(hf)
    ours_optimizer, hf_optimizer = adamw(ours), adamw(hf)
    training = {
        "clipvideo X-CLIP (class-name text cached)": lambda: train_step(lambda: ours(video), ours_optimizer, target),
        "transformers XCLIPModel": lambda: train_step(
            lambda: hf(pixel_values=video, **text).logits_per_video, hf_optimizer, target),
    }
    training.update(extra_training(ours, video, names, target) if extra_training else {})
    training_times = measure(training, args.repeats)
    return inference_times, training_times, difference


def report(args, inference: dict, training: dict, difference: float) -> str:
    size = (f"vision width {args.vision_width} x {args.vision_layers} layers, patch {args.patch}, {args.resolution} px; "
            f"text width {args.text_width} x {args.text_layers} layers; embed {args.embed}; {args.frames} frames; "
            f"batch {args.batch}; {args.classes} classes; {torch.get_num_threads()} threads; median of {args.repeats}")
    lines = [f"X-CLIP on CPU ({size}); max |logit difference| clipvideo vs transformers: {difference:.2e}", "",
             "| inference | clips/s | ms per batch | CPU ms per batch |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {name} | {args.batch / wall:.2f} | {1000 * wall:.0f} | {1000 * cpu:.0f} |"
              for name, (wall, cpu) in inference.items()]
    lines += ["", "| training step (forward + backward + AdamW) | ms per step | CPU ms per step |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {1000 * wall:.0f} | {1000 * cpu:.0f} |" for name, (wall, cpu) in training.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    # Re-encoding rows must encode, not read stored class embeddings (benchmarks/text_cache.py times those).
    os.environ["CLIPVIDEO_TEXT_CACHE"] = "0"
    load_at_start = load_average()
    print(report(args, *benchmark(args)))
    print(load_report(torch.get_num_threads(), load_at_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
