"""configs/xclip: one valid recipe per row of the X-CLIP tables, with the official settings."""

import re
from pathlib import Path

import pytest

from clipvideo.engine.config import load_config, method_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "xclip"
TRAINED = sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith(("zero_shot_hmdb", "zero_shot_ucf",
                                                                             "zero_shot_k600", "tiny")))
# (file stem, published top-1) for every row of the paper's tables.
ROWS = {
    "k400_b32_8f": 80.4, "k400_b32_16f": 81.1, "k400_b16_8f": 83.8, "k400_b16_16f": 84.7, "k400_l14_8f": 87.1,
    "k400_l14_16f_336": 87.7, "k600_b16_8f": 85.3, "k600_b16_16f": 85.8, "k600_l14_8f": 88.3,
    "fewshot_hmdb51_2shot": 53.0, "fewshot_hmdb51_4shot": 57.3, "fewshot_hmdb51_8shot": 62.8,
    "fewshot_hmdb51_16shot": 64.0, "fewshot_ucf101_2shot": 76.4, "fewshot_ucf101_4shot": 83.4,
    "fewshot_ucf101_8shot": 88.3, "fewshot_ucf101_16shot": 91.4, "zero_shot_hmdb51": 44.6, "zero_shot_ucf101": 72.0,
    "zero_shot_k600": 65.2,
}


@pytest.mark.parametrize("stem, top1", sorted(ROWS.items()))
def test_every_table_row_has_a_valid_recipe_citing_its_number(stem, top1):
    path = CONFIGS / f"{stem}.yaml"
    config = load_config(path)
    assert config.method == "xclip"
    model = method_config("xclip", config.model)
    assert model.num_frames == config.data.num_frames
    comment = "".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    assert re.search(rf"Published top-1[^0-9]*{top1}", comment), comment
    data, test = config.data, config.test
    assert (data.sampling, data.normalization, data.input_size) == ("segment", "imagenet", data.short_side)
    assert data.sampling_protocol == "xclip"  # the official frame positions
    assert (test.num_clips, test.num_crops, test.aggregate) == (4, 3, "prob")


@pytest.mark.parametrize("path", TRAINED, ids=lambda p: p.stem)
def test_training_recipes_follow_the_official_optimiser_and_augmentation(path):
    config = load_config(path)
    train, data = config.train, config.data
    assert (train.optimizer, train.betas, train.weight_decay, train.warmup_epochs) == ("adamw", [0.9, 0.98], 0.001, 5)
    assert train.min_lr == pytest.approx(train.lr / 100) and train.label_smoothing == 0.1
    assert (data.train_crop, data.flip, data.color_jitter, data.grayscale) == ("multiscale", True, 0.8, 0.2)
    assert data.train_short_side == [int(256 / 224 * data.input_size)]  # 256 at 224, 384 at 336
    assert (data.mixup, data.cutmix, data.mix_prob) == (0.8, 1.0, 1.0)
    model = method_config("xclip", config.model)
    assert (model.train_text, model.new_lr_scale, model.mit_layers, model.prompt_layers) == (False, 10.0, 1, 2)
    assert model.backbone.pretrained  # trained from OpenAI CLIP weights
    # Effective batch of the official 8-GPU runs: 256 (few-shot: 64).
    effective = 8 * train.batch_size * train.accumulation_steps
    assert effective == (64 if path.stem.startswith("fewshot") else 256)
    if path.stem.startswith("fewshot"):
        expected = (50, 2e-6)  # official configs/{hmdb51,ucf101}/16_32.yaml
    elif path.stem.startswith("zero_shot"):
        expected = (10, 8e-6)  # VideoX#68
    else:
        expected = (30, 8e-6)
    assert (train.epochs, train.lr) == expected
