"""`clipvideo train configs/text4vis/tiny_synthetic.yaml` learns motion direction; its mean twin cannot.

The four classes (moving left / right / up / down) come in pairs that differ only in frame order, so a
frame mean can at best tell horizontal from vertical (50%). Text4Vis sees frame order only in its
Transf fusion, through the frame embeddings, so (as for X-CLIP) the CLIP must be a stand-in for a
pretrained one whose image embedding says where the disc is: `make_position_clip` from the X-CLIP
test (a random tiny CLIP's image embedding barely depends on the image). The classifier stays the
frozen text tower's embeddings of the class prompts; only the image tower, fusion and logit_scale
train. Both recipes train on the same data; `clipvideo predict` then runs on the model file alone.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import clipvideo
from clipvideo.engine.config import load_config
from clipvideo.engine.data import build_eval_dataset
from clipvideo.methods.text4vis import Text4Vis

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "xclip"))
from test_xclip_train_synthetic import CLASSES, make_data, make_position_clip  # noqa: E402

RECIPES = {"transf": REPO / "configs/text4vis/tiny_synthetic.yaml",
           "mean": REPO / "configs/text4vis/tiny_synthetic_mean.yaml"}
# One thread: these tiny models gain little from a second one, and on a shared machine two spinning
# threads per process slow everything down many times over.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("text4vis_motion")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        clip_file = make_position_clip(root / "position_clip.pt")
    finally:
        torch.set_num_threads(threads)
    data = make_data(root)
    runs = {}
    for fusion, recipe in RECIPES.items():
        overrides = [f"model.backbone.pretrained={clip_file}", f"data.root={data.root}",
                     f"data.train_list={data.train_list}", f"data.val_list={data.val_list}",
                     f"data.class_names={data.class_names_file}", f"output_dir={root / fusion}"]
        command = [sys.executable, "-m", "clipvideo", "train", str(recipe), "--set", *overrides]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=ENV, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[fusion] = (root / fusion, overrides)
    return runs, data


def scores(run, direction_scores):
    run_dir, overrides = run
    model = clipvideo.load(run_dir / "model.pt")
    assert isinstance(model, Text4Vis) and model.class_names == list(CLASSES)
    config = load_config(RECIPES[model.config.fusion], overrides)
    dataset = build_eval_dataset(config.data, config.test, model.class_names)
    return direction_scores(model, dataset, list(CLASSES))


def test_fusion_learns_frame_order_and_beats_mean_pooling(trained, direction_scores):
    runs, _ = trained
    accuracy, reversed_accuracy, changed = scores(runs["transf"], direction_scores)
    mean_accuracy, mean_reversed, mean_changed = scores(runs["mean"], direction_scores)
    # Chance is 25%; anything blind to frame order stays at or below 50% (and never changes its answer).
    assert accuracy >= 0.8 and reversed_accuracy >= 0.8 and changed >= 0.8, (accuracy, reversed_accuracy, changed)
    assert mean_changed == 0.0 and mean_accuracy <= 0.6, (mean_accuracy, mean_changed)
    assert reversed_accuracy - mean_reversed >= 0.3


def test_predict_uses_the_model_file_alone(trained):
    """No flags: frames, sampling, 64 px input and CLIP statistics come from the model file, so the
    validation videos (one per class) are recognised as in training."""
    runs, data = trained
    slugs = [name.replace(" ", "_") for name in CLASSES]
    videos = [Path(data.root) / f"videos/{slug}/{slug}_0096.mp4" for slug in slugs]  # first validation video
    command = [sys.executable, "-m", "clipvideo", "predict", *map(str, videos), "--checkpoint",
               str(runs["transf"][0] / "model.pt"), "--json", "--top-k", "1"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert all(r["error"] is None for r in results)
    correct = sum(r["top"][0]["label"] == name for r, name in zip(results, CLASSES))
    assert correct >= 3, [r["top"] for r in results]
