"""configs/froster: a valid recipe per published protocol row, with the official settings."""

import re
from pathlib import Path

import pytest

from clipvideo.engine.config import load_config, method_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "froster"
B2N = {"k400": (77.8, 64.3, 70.4, 32), "hmdb51": (74.1, 58.0, 65.1, 32), "ucf101": (95.3, 80.0, 87.0, 64),
       "ssv2": (18.3, 12.2, 14.6, 32)}
CROSS = {"ucf101": "UCF\\* 85.0", "hmdb51": "HMDB\\* 54.5", "k600": "K600 74.8"}


def comment(path: Path) -> str:
    return " ".join(line for line in path.read_text().splitlines() if line.startswith("#"))


def check_common(config) -> None:
    assert config.method == "froster"
    model = method_config("froster", config.model)
    assert model.backbone.arch == "ViT-B/16" and model.backbone.pretrained
    assert (model.distillation, model.distillation_ratio, model.residual_weight, model.num_frames) == (True, 2.0, 0.1, 8)
    data, test = config.data, config.test
    assert (data.num_frames, data.sampling, data.frame_stride, data.sampling_protocol) == (8, "dense", 16, "froster")
    assert (data.input_size, data.short_side, data.train_short_side, data.train_crop) == (224, 224, [224, 256], "random")
    assert (data.normalization, data.separator) == ("clip", None)  # the shipped '<path> <label>' lists
    assert data.class_names.startswith("clipvideo/protocols/") and data.class_descriptions  # names + FROSTER's descriptions
    assert (test.num_clips, test.num_crops, test.aggregate) == (3, 1, "logit")


def check_training(config, epochs: int, global_batch: int) -> None:
    train = config.train
    assert (train.epochs, train.lr, train.min_lr, train.warmup_epochs) == (epochs, 3.33e-6, 3.33e-8, 2)
    assert train.warmup_start_factor == pytest.approx(0.01)
    assert (train.optimizer, train.betas, train.weight_decay, train.grad_clip) == ("adamw", [0.9, 0.999], 0.01, 1.0)
    assert train.keep_epoch_checkpoints and 8 * train.batch_size * train.accumulation_steps == global_batch


@pytest.mark.parametrize("split", [1, 2, 3])
@pytest.mark.parametrize("dataset", sorted(B2N))
def test_base_to_novel_recipes(dataset, split):
    path = CONFIGS / f"b2n_{dataset}_s{split}.yaml"
    config = load_config(path)
    check_common(config)
    base, novel, hm, batch = B2N[dataset]
    check_training(config, 12, batch)
    assert re.search(rf"Base {base}\s+Novel {novel}\s+HM {hm}", comment(path))
    folder = f"clipvideo/protocols/b2n/{'kinetics400' if dataset == 'k400' else dataset}"
    assert (config.data.train_list, config.data.val_list) == (f"{folder}/train_s{split}.txt", f"{folder}/base_test.txt")
    assert config.data.class_names == f"{folder}/base_classes.csv"
    assert config.data.class_descriptions == f"b2n_{folder.rsplit('/', 1)[1]}_base"
    assert "clipvideo b2n configs/froster/" in comment(path)  # Base, Novel and HM in one command


def test_cross_dataset_training_recipe():
    path = CONFIGS / "cross_k400_train.yaml"
    config = load_config(path)
    check_common(config)
    check_training(config, 22, 64)
    assert "--epochs 2-22" in comment(path)
    for number in ("85.0", "84.8 \\+- 1.1", "54.5", "54.8 \\+- 1.3", "74.8 \\+- 0.9"):
        assert re.search(number, comment(path))


@pytest.mark.parametrize("dataset", sorted(CROSS))
def test_cross_dataset_test_recipes(dataset):
    path = CONFIGS / f"cross_test_{dataset}.yaml"
    config = load_config(path)
    check_common(config)
    assert re.search(CROSS[dataset], comment(path)) and config.data.val_list.startswith("clipvideo/protocols/")
    assert f"clipvideo zeroshot configs/froster/cross_test_{dataset}.yaml" in comment(path)  # the whole protocol


def test_every_recipe_builds_the_reference_model():
    """All recipes share one model section; built at ViT-B/16 (random weights) it has the
    parameter count of the official release (student + projectors = 150,669,313, reference §3)."""
    import torch

    from clipvideo.methods.froster import build

    sections = {path.name: load_config(path).model for path in sorted(CONFIGS.glob("*.yaml")) if path.stem != "tiny_synthetic"}
    assert len(sections) == 16 and all(section == sections["cross_k400_train.yaml"] for section in sections.values())
    model_config = method_config("froster", sections["cross_k400_train.yaml"])
    model_config.backbone.pretrained = None  # no weights here: random ViT-B/16
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = build(model_config, 0)
    saved = sum(v.numel() for k, v in model.state_dict().items() if not k.startswith(model.training_only_prefixes))
    assert saved == 150_669_313
    assert sum(p.numel() for p in model.teacher.parameters()) == 149_620_737
