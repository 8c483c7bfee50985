import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def motion_data(tmp_path_factory):
    """A small synthetic motion dataset: real H.264 files, 9 classes."""
    from clipvideo.data.synthetic import make_motion_dataset

    return make_motion_dataset(tmp_path_factory.mktemp("motion"), num_videos_per_class=4, num_val_per_class=2,
                               num_frames=16, size=(64, 64), fps=8, seed=1)


@pytest.fixture(scope="session")
def tiny_clip_file(tmp_path_factory):
    """A tiny random CLIP saved as an OpenAI-format state dict."""
    from clipvideo.clip import create_clip

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clip") / "tiny-clip.pt"
    torch.save(create_clip("tiny").state_dict(), path)
    return path


def run_cli(*args, env=None, check=True, timeout=600):
    """Run `python -m clipvideo ...` in a subprocess, as a user would."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    result = subprocess.run([sys.executable, "-m", "clipvideo", *map(str, args)], capture_output=True, text=True,
                            env=full_env, cwd=REPO, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"clipvideo {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
