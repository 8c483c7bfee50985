"""data.augment_on: device -- workers crop, the training device does the rest; training runs the same."""

import torch

from clipvideo.data.synthetic import make_motion_dataset
from clipvideo.engine.config import ConfigError, build_config
from clipvideo.engine.data import batch_augment, build_train_dataset
from clipvideo.engine.train import fit

import pytest


def recipe(data, out, augment_on):
    return {
        "method": "frozen",
        "model": {"backbone": {"arch": "tiny"}, "num_frames": 4, "temporal": "mean", "classifier": "linear"},
        "data": {"root": data.root, "train_list": data.train_list, "val_list": data.val_list,
                 "class_names": data.class_names_file, "num_frames": 4, "sampling": "segment", "input_size": 48,
                 "short_side": 48, "randaugment": True, "color_jitter": 0.5, "mixup": 0.8, "cutmix": 1.0,
                 "augment_on": augment_on, "num_workers": 1},
        "train": {"epochs": 1, "batch_size": 4, "lr": 1e-3, "eval_every": 0, "seed": 0},
        "test": {"batch_size": 4, "num_workers": 0, "precision": "fp32"},
        "output_dir": str(out),
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_motion_dataset(tmp_path_factory.mktemp("aug"), num_videos_per_class=3, num_val_per_class=1,
                               num_frames=8, classes=("moving left", "moving right", "still red square"))


def test_workers_return_uint8_crops_and_the_device_half_normalises(data, tmp_path):
    config = build_config(recipe(data, tmp_path, "device"), "test")
    dataset = build_train_dataset(config.data)
    clip = dataset[0][0]
    assert clip.dtype == torch.uint8 and clip.shape == (4, 3, 48, 48)  # 4x less to move than float32
    out = batch_augment(config.data)(torch.stack([clip, clip]))
    assert out.dtype == torch.float32 and out.shape == (2, 4, 3, 48, 48) and abs(out.mean().item()) < 3
    assert batch_augment(build_config(recipe(data, tmp_path, "worker"), "test").data) is None
    with pytest.raises(ConfigError, match="data.augment_on: expected one of worker, device"):
        build_train_dataset(build_config(recipe(data, tmp_path, "gpu"), "test").data)


def test_training_with_augmentation_on_the_device_runs_to_the_end(data, tmp_path):
    result = fit(build_config(recipe(data, tmp_path / "run", "device"), "test"))
    history = result["history"]
    assert len(history) == 1 and torch.isfinite(torch.tensor(history[0]["loss"]))
    assert result["final"] is not None and 0 <= result["final"]["top1"] <= 100
