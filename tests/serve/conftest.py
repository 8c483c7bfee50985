"""Fixtures of the `clipvideo serve` tests: a fixed-head checkpoint and a generated video
(the tiny CLIP file comes from tests/conftest.py)."""

import numpy as np
import pytest
import torch
from serve_helpers import CLASSES

pytest.importorskip("fastapi", reason="the serve tests need the web extra: pip install -e '.[test]'")


@pytest.fixture(scope="session")
def head_checkpoint(tmp_path_factory):
    """A native checkpoint of a model with a trained linear head (fixed classes), 4 frames."""
    from clipvideo.engine.checkpoint import save_model
    from clipvideo.methods import frozen
    from clipvideo.methods.base import BackboneConfig

    torch.manual_seed(0)
    config = frozen.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4, temporal="transformer",
                           classifier="linear")
    model = frozen.build(config, len(CLASSES), CLASSES)
    path = tmp_path_factory.mktemp("head") / "model.pt"
    save_model(model, path, config={"data": {"num_frames": 4, "input_size": 64, "short_side": 72},
                                    "test": {"num_clips": 2, "num_crops": 1}})
    return path


@pytest.fixture(scope="session")
def video_file(tmp_path_factory):
    """A real H.264 mp4 of 20 frames, 96x64."""
    from clipvideo.data.synthetic import render_motion_clip, write_video

    path = tmp_path_factory.mktemp("video") / "moving.mp4"
    write_video(path, render_motion_clip("moving right", 20, 96, 64, np.random.default_rng(3)), fps=10)
    return path
