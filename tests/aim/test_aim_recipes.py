"""configs/aim: one valid recipe per published row, with the official optimiser, schedule and views."""

import re
from pathlib import Path

import pytest
import torch

from clipvideo.engine.config import load_config, method_config
from clipvideo.methods.aim import build

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "aim"
# (file stem, published top-1) for every row of the README tables and the paper's SSv2 rows.
ROWS = {
    "k400_b16_8f": 83.9, "k400_b16_16f": 84.5, "k400_b16_32f": 84.7, "k400_l14_8f": 86.8, "k400_l14_16f": 87.3,
    "k400_l14_32f": 87.5, "k700_b16_32f": 76.9, "k700_l14_32f": 80.4, "ssv2_b16_8f": 66.4, "ssv2_b16_16f": 68.1,
    "ssv2_b16_32f": 69.1, "ssv2_l14_32f": 70.6, "diving48_b16_32f": 88.9, "diving48_l14_32f": 90.6,
}
VIEWS = {"k400": (3, 1), "k700": (3, 3), "ssv2": (1, 3), "diving48": (1, 1)}  # README: clips x crops


def test_every_recipe_is_a_row():
    # Also the ImageNet-ViT recipes (aim_timm; tests/aim/test_aim_timm.py checks them).
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(ROWS) | {"tiny_synthetic", "imagenet_tiny_synthetic",
                                                                     "imagenet_k400_b16_8f", "imagenet_ssv2_b16_8f"}


@pytest.mark.parametrize("stem, top1", sorted(ROWS.items()))
def test_recipe_follows_the_official_settings(stem, top1):
    path = CONFIGS / f"{stem}.yaml"
    config = load_config(path)
    dataset = stem.split("_")[0]
    comment = "".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    assert re.search(rf"Published top-1( / top-5)?: {re.escape(str(top1))}\b", comment), comment
    model = method_config("aim", config.model)
    data, train, test = config.data, config.train, config.test
    frames = int(re.search(r"_(\d+)f$", stem).group(1))
    assert model.num_frames == data.num_frames == frames
    assert (model.backbone.arch, model.backbone.pretrained) == (
        ("ViT-B/16", "ViT-B-16.pt") if "_b16_" in stem else ("ViT-L/14", "ViT-L-14.pt"))
    # Optimiser and schedule (reference aim.md §a.3): batch 64 on 8 GPUs.
    assert (train.optimizer, train.lr, train.betas, train.weight_decay, train.min_lr) == ("adamw", 3e-4, [0.9, 0.999], 0.05, 0.0)
    assert (train.warmup_epochs, train.warmup_start_factor, train.warmup_interval, train.cosine_interval) == (2.5, 0.1, "step", "epoch")
    assert 8 * train.batch_size * train.accumulation_steps == 64
    assert train.epochs == (30 if dataset in ("k400", "k700") else 50)
    assert (model.drop_path_rate, model.head_dropout) == (0.2, 0.5)
    assert model.backbone_lr_scale == (0.1 if stem in ("k400_l14_8f", "k400_l14_16f", "k400_l14_32f", "ssv2_l14_32f") else None)
    # SSv2: two temporal adapters (also L/14, following the paper's counts over the config), scale 1.0.
    ssv2 = dataset == "ssv2"
    assert (model.second_temporal_adapter, model.adapter_scale) == ((True, 1.0) if ssv2 else (False, 0.5))
    assert (train.label_smoothing, data.flip) == ((0.1, False) if ssv2 else (0.0, True))
    # Data: dense 8x16 / 16x8 / 32x4 on Kinetics, uniform elsewhere; train 256 + random-resized 224; test 224.
    if dataset in ("k400", "k700"):
        assert (data.sampling, data.frame_stride, data.out_of_bounds) == ("dense", 128 // frames, "loop")
        assert model.sampling == "dense" and model.frame_stride == data.frame_stride
    else:
        assert data.sampling == model.sampling == "segment"
    assert (data.sampling_protocol, data.input_size, data.short_side, data.train_short_side) == ("aim", 224, 256, [256])
    assert (data.train_crop, data.scale, data.normalization) == ("random_resized", [0.08, 1.0], "aim")
    assert (test.num_clips, test.num_crops) == VIEWS[dataset]
    assert (test.short_side, test.aggregate, test.views_per_batch) == (224, "prob", 2 if ssv2 else 4)


@pytest.mark.parametrize("stem", ["k400_b16_8f", "ssv2_l14_32f", "diving48_b16_32f"])
def test_recipes_build_with_the_published_parameter_counts(stem):
    config = load_config(CONFIGS / f"{stem}.yaml")
    model_config = method_config("aim", config.model)
    model_config.backbone.pretrained = None  # random weights, same shapes ('meta': no memory)
    classes = {"k400": 400, "ssv2": 174, "diving48": 48}[stem.split("_")[0]]
    with torch.device("meta"):
        counts = build(model_config, classes).parameter_counts()
    # README / paper: B/16 97M / 11M, SSv2 L/14 354M / 50M (reference aim.md §a.4 has the exact official counts).
    expected = {"k400_b16_8f": (96_764_560, 10_966_672), "ssv2_l14_32f": (353_845_422, 50_667_694),
                "diving48_b16_32f": (96_512_304, 10_714_416)}[stem]
    assert (counts["total"], counts["tunable"]) == expected
