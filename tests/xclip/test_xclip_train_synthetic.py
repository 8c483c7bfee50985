"""`clipvideo train configs/xclip/tiny_synthetic.yaml` learns motion direction on synthetic videos.

The four classes (moving left / right / up / down) come in pairs that differ only in frame order:
"moving left" is "moving right" played backwards, so a frame mean can at best tell horizontal from
vertical (50%). In X-CLIP only the MIT, with its temporal positions, sees frame order, and it sees
each frame only through the class-token embedding; so X-CLIP needs a CLIP whose image embedding
says where things are, as a pretrained CLIP's does. A random tiny CLIP's does not (its class
token barely depends on the image, cosine 0.99 between videos) and X-CLIP then only memorises
the training textures. `make_position_clip` makes the stand-in: a tiny CLIP whose image tower was
trained for a few seconds to locate the moving disc in single frames (rendered apart from the
data set). X-CLIP then has to learn the direction itself, from frame order.

Make the stand-in and the data for a manual run (as the recipe's comment says):
    python tests/xclip/test_xclip_train_synthetic.py demo_runs
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import clipvideo
from clipvideo.clip import create_clip
from clipvideo.data.synthetic import make_motion_dataset, render_motion_clip
from clipvideo.engine.config import load_config
from clipvideo.engine.data import build_eval_dataset
from clipvideo.methods.xclip import XCLIP

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "xclip" / "tiny_synthetic.yaml"
CLASSES = ("moving left", "moving right", "moving up", "moving down")
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def make_position_clip(path, num_clips: int = 1500, steps: int = 1500, seed: int = 123) -> Path:
    """A tiny CLIP whose image tower locates the disc of single rendered frames (a pretrained stand-in)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    clips = [render_motion_clip(CLASSES[i % 4], 8, 64, 64, rng) for i in range(num_clips)]
    frames = torch.from_numpy(np.concatenate(clips)).permute(0, 3, 1, 2).float() / 255  # (N, 3, 64, 64)
    # The disc is the only region with every channel >= 200 (the background texture stays below 191).
    disc = (frames.min(dim=1).values > 0.77).float()  # (N, 64, 64)
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    area = disc.sum((1, 2)).clamp(min=1)
    centre = torch.stack([(disc * cols).sum((1, 2)) / area, (disc * rows).sum((1, 2)) / area], dim=1) / 32 - 1
    frames = (frames - IMAGENET_MEAN) / IMAGENET_STD  # X-CLIP's normalisation, as in the recipe
    clip = create_clip("tiny")
    head = torch.nn.Linear(clip.config.embed_dim, 2)
    optimizer = torch.optim.Adam([*clip.visual.parameters(), *head.parameters()], lr=1e-3)
    for _ in range(steps):
        batch = torch.randint(0, len(frames), (64,))
        loss = F.mse_loss(head(clip.visual(frames[batch])), centre[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(clip.state_dict(), path)
    return path


def make_data(root):
    return make_motion_dataset(Path(root) / "xclip_motion", num_videos_per_class=96, num_val_per_class=16,
                               num_frames=24, size=(64, 64), fps=12, seed=0, classes=CLASSES)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("xclip_motion")
    clip_file = make_position_clip(root / "position_clip.pt")
    data = make_data(root)
    overrides = [f"model.backbone.pretrained={clip_file}", f"data.root={data.root}",
                 f"data.train_list={data.train_list}", f"data.val_list={data.val_list}",
                 f"data.class_names={data.class_names_file}", f"output_dir={root / 'run'}"]
    command = [sys.executable, "-m", "clipvideo", "train", str(RECIPE), "--set", *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "run", overrides


def test_xclip_learns_the_frame_order_classes(trained, direction_scores):
    run_dir, overrides = trained
    model = clipvideo.load(run_dir / "model.pt")
    assert isinstance(model, XCLIP) and model.class_names == list(CLASSES)
    config = load_config(RECIPE, overrides)
    dataset = build_eval_dataset(config.data, config.test, model.class_names)
    accuracy, reversed_accuracy, changed = direction_scores(model, dataset, list(CLASSES))
    # Chance is 25%; anything blind to frame order stays at or below 50%.
    assert accuracy >= 0.8, accuracy
    assert reversed_accuracy >= 0.8, reversed_accuracy
    assert changed >= 0.8  # order alone changes the answer


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo_runs")
    print(make_position_clip(out / "position_clip.pt"), make_data(out).root)
