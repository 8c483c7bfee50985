"""Parameters and GFLOPs per view of AIM on timm ViTs, beside AIM on CLIP ViT-B/16 (the official table).

Models are built on the meta device (no memory, no weights, nothing downloaded): parameter counts
come from the shapes, FLOPs from torch's FlopCounterMode on one view (1 clip x 1 crop) with
batch 1. FlopCounterMode counts a multiply-add as 2 FLOPs; the official tables (fvcore, like most
video papers) count it as 1, so the printed GFLOPs are FlopCounterMode's total / 2. The CLIP row
checks the convention against the official README (606 GFLOPs for 3 views of B/16, 8 frames).

    python benchmarks/aim_timm_counts.py                 # K400 (400 classes) and SSv2 (174, 2 temporal adapters)
"""

import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipvideo.methods import aim, aim_timm  # noqa: E402
from clipvideo.methods.base import BackboneConfig  # noqa: E402

TIMM_MODELS = ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_small_patch32_224", "vit_base_patch16_224",
               "vit_base_patch32_224", "vit_large_patch16_224"]
SETTINGS = {"K400, 8 frames": dict(num_classes=400, second_temporal_adapter=False),
            "SSv2, 8 frames (2 temporal adapters)": dict(num_classes=174, second_temporal_adapter=True)}


def gflops_per_view(model, resolution: int, frames: int) -> float:
    video = torch.zeros(1, frames, 3, resolution, resolution, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(video)
    return counter.get_total_flops() / 2 / 1e9


def row(name: str, model, resolution: int, frames: int = 8) -> str:
    counts = model.parameter_counts()
    return (f"| {name} | {counts['total']:,} | {counts['tunable']:,} | "
            f"{gflops_per_view(model, resolution, frames):.1f} |")


def main() -> None:
    print("| model | total | tunable | GFLOPs / view |")
    print("| --- | ---: | ---: | ---: |")
    for setting, spec in SETTINGS.items():
        with torch.device("meta"):
            clip_config = aim.Config(backbone=BackboneConfig(arch="ViT-B/16"),
                                     second_temporal_adapter=spec["second_temporal_adapter"])
            model = aim.build(clip_config, spec["num_classes"])
        print(row(f"CLIP ViT-B/16 (AIM on CLIP), {setting}", model, 224))
        for name in TIMM_MODELS:
            with torch.device("meta"):
                config = aim_timm.Config(backbone=aim_timm.ViTBackboneConfig(arch=name),
                                         second_temporal_adapter=spec["second_temporal_adapter"])
                model = aim_timm.build(config, spec["num_classes"])
            print(row(f"{name}, {setting}", model, config.backbone.architecture["img_size"]))


if __name__ == "__main__":
    main()
