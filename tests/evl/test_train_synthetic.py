"""`clipvideo train configs/evl/tiny_synthetic.yaml` learns motion direction on synthetic videos.

The four classes (moving left / right / up / down) come in pairs that differ only in frame order:
"moving left" is "moving right" played backwards. A frame mean is blind to order, so it can at
best tell horizontal from vertical (50%). EVL, with its backbone frozen (here random: nothing is
downloaded), must learn direction in its decoder alone, and reversing a clip must flip its answer.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import clipvideo
from clipvideo.data.synthetic import make_motion_dataset
from clipvideo.engine.config import load_config
from clipvideo.engine.data import build_eval_dataset
from clipvideo.methods.evl import EVL

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("moving left", "moving right", "moving up", "moving down")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evl_motion")
    data = make_motion_dataset(root / "data", num_videos_per_class=96, num_val_per_class=16, num_frames=24,
                               size=(64, 64), fps=12, seed=0, classes=CLASSES)
    overrides = [f"data.root={data.root}", f"data.train_list={data.train_list}", f"data.val_list={data.val_list}",
                 f"data.class_names={data.class_names_file}", f"output_dir={root / 'run'}"]
    command = [sys.executable, "-m", "clipvideo", "train", "configs/evl/tiny_synthetic.yaml", "--set", *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return data, root / "run", overrides


def test_evl_learns_the_frame_order_classes(trained, direction_scores):
    data, run_dir, overrides = trained
    model = clipvideo.load(run_dir / "model.pt")
    assert isinstance(model, EVL) and model.class_names == list(CLASSES)
    assert all(not p.requires_grad for p in model.clip.parameters())

    config = load_config(REPO / "configs/evl/tiny_synthetic.yaml", overrides)
    dataset = build_eval_dataset(config.data, config.test, model.class_names)
    accuracy, reversed_accuracy, changed = direction_scores(model, dataset, list(CLASSES))
    # Chance is 25%; a frame mean cannot exceed 50% (the reversed clip has the same frames).
    assert accuracy >= 0.8, accuracy
    assert reversed_accuracy >= 0.8, reversed_accuracy
    assert changed >= 0.8  # order alone changes the answer
