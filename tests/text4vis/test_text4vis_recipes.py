"""configs/text4vis: one valid recipe per published row, with the official optimiser, data and views."""

import re
from pathlib import Path

import pytest

from clipvideo.engine.config import load_config, method_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "text4vis"
# (file stem, published number as written in the comment) for every row.
ROWS = {
    "k400_vitb32_f8": "80.0", "k400_vitb32_f16": "80.5", "k400_vitb16_f8": "82.9", "k400_vitb16_f16": "83.6",
    "k400_vitl14_f8": "86.4", "k400_vitl14_336_f8": "87.1", "k400_vitl14_336_f32": "87.8",
    "ucf101_vitl14_f16": "98.1", "hmdb51_vitl14_f16": "81.3", "anet_vitl14_f16": "96.5", "anet_vitl14_336_f16": "96.9",
    "zero_shot_ucf101": "85.8", "zero_shot_hmdb51": "58.1", "zero_shot_anet": "84.6", "zero_shot_k600": "68.9",
}
FEW_SHOT = ["few_shot_k400_2shot", "few_shot_ucf101_2shot", "few_shot_hmdb51_2shot", "few_shot_anet_2shot"]
ALL = sorted(CONFIGS.glob("*.yaml"))


def test_every_file_is_a_known_row():
    assert {p.stem for p in ALL} == set(ROWS) | set(FEW_SHOT) | {"tiny_synthetic", "tiny_synthetic_mean"}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_every_recipe_builds(path):
    config = load_config(path)
    assert config.method == "text4vis"
    model = method_config("text4vis", config.model)
    assert model.num_frames == config.data.num_frames
    if path.stem.startswith("tiny"):
        return
    data, test = config.data, config.test
    assert (data.sampling, data.sampling_protocol, data.normalization) == ("segment", "text4vis", "clip")
    assert data.short_side == (256 if data.input_size == 224 else 336) and test.aggregate == "feature"
    assert (model.classifier, model.template) == ("text", "a video of a person {}.")
    assert model.fusion == ("mean" if path.stem.startswith("few_shot") else "transf")


@pytest.mark.parametrize("stem, number", sorted(ROWS.items()))
def test_published_rows_cite_their_number_and_views(stem, number):
    path = CONFIGS / f"{stem}.yaml"
    comment = " ".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    assert re.search(rf"Published (top-1|mAP)[^0-9]*{re.escape(number)}", comment), comment
    config = load_config(path)
    views = (config.test.num_crops, config.test.num_clips)
    if stem == "k400_vitl14_336_f32":
        assert views == (3, 1)  # 32x3x1
    elif stem.startswith("k400"):
        assert views == (3, 4)  # 8x3x4 / 16x3x4
    else:
        assert views == (1, 1)


@pytest.mark.parametrize("path", [p for p in ALL if not p.stem.startswith(("tiny", "zero_shot"))], ids=lambda p: p.stem)
def test_training_recipes_follow_the_official_recipe(path):
    config = load_config(path)
    train, data = config.train, config.data
    assert (train.optimizer, train.lr, train.betas, train.weight_decay) == ("adamw", 5e-5, [0.9, 0.999], 0.2)
    assert (train.epochs, train.warmup_epochs, train.min_lr, train.label_smoothing) == (30, 5, 0.0, 0.0)
    assert (train.precision, train.seed) == ("fp16", 1024)
    assert data.train_short_side == [data.short_side] and data.train_crop == "random_resized"
    assert (data.scale, data.flip, data.grayscale) == ([0.08, 1.0], True, 0.2)
    model = method_config("text4vis", config.model)
    assert model.visual_lr_scale == 0.1 and model.backbone.pretrained
    gpus = int(re.search(r"Effective batch (\d+) processes", path.read_text()).group(1))
    effective = gpus * train.batch_size * train.accumulation_steps
    assert effective == (64 if path.stem.startswith("few_shot") else 256)
    if path.stem.startswith(("ucf", "hmdb", "anet")):
        assert model.init_checkpoint and train.eval_every == 5  # fine-tuned from a Kinetics-400 Text4Vis model


def test_few_shot_recipes_repeat_the_draw_to_a_full_epoch(tmp_path):
    """The official run repeats the K-shot draw floor(N / (K x C)) times; `clipvideo fewshot` does so
    for every few-shot recipe (data.few_shot_repeat), from the list named in its comment."""
    from clipvideo.data.splits import write_few_shot_lists

    for stem in FEW_SHOT:
        path = CONFIGS / f"{stem}.yaml"
        config = load_config(path)
        assert config.data.few_shot_repeat and config.data.format == "rawframes"
        source = re.search(r"--from (\S+)", path.read_text()).group(1)
        assert Path(config.data.train_list).name == f"{Path(source).stem}_2shot_seed0.txt"  # what fewshot-lists writes
    listing = tmp_path / "train.txt"
    listing.write_text("".join(f"class{i % 4}/v{i} 40 {i % 4}\n" for i in range(41)))
    out = write_few_shot_lists(listing, [2], [0], tmp_path, rawframes=True, repeat=True)[0]
    lines = out.read_text().splitlines()
    assert len(set(lines)) == 8 and len(lines) == 8 * (41 // 8)
    assert sorted({int(line.split()[-1]) for line in lines}) == [0, 1, 2, 3]

@pytest.mark.parametrize("stem", ["k400_vitb32_f8", "k400_vitl14_336_f32"])
def test_dense_test_override_from_the_recipe_comment_builds(stem):
    """Official `--dense` (T frames 128 // T apart): the override each recipe's comment gives."""
    path = CONFIGS / f"{stem}.yaml"
    config = load_config(path)
    stride = 128 // config.data.num_frames
    override = f"--set data.sampling=dense data.sampling_protocol=clipvideo data.frame_stride={stride}"
    assert override in path.read_text()
    dense = load_config(path, override.split()[1:])
    assert (dense.data.sampling, dense.data.frame_stride) == ("dense", stride)
