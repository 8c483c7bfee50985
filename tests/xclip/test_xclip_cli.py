"""Zero-shot from the command line: `clipvideo convert xclip|hf-xclip` then `clipvideo predict --classes`.

The zero-shot prediction runs as a user would run it (a subprocess); the other commands call the
same CLI entry point in-process, which is quicker.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import clipvideo
from clipvideo.cli import main
from clipvideo.data.synthetic import make_motion_dataset
from clipvideo.engine.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[2]
NAMES = "moving left,rotating clockwise,a dog playing fetch"


def run_cli(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "clipvideo", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


def cli(capsys, *args) -> tuple[int, str, str]:
    """`clipvideo ARGS` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    data = make_motion_dataset(tmp_path_factory.mktemp("video"), num_videos_per_class=1, num_val_per_class=0,
                               num_frames=16, size=(64, 64), fps=8, classes=["moving left"])
    return Path(data.root) / "videos/moving_left/moving_left_0000.mp4"


@pytest.fixture(scope="module")
def converted(official_checkpoint, tmp_path_factory) -> Path:
    destination = tmp_path_factory.mktemp("converted") / "xclip_tiny.pt"
    assert main(["convert", "xclip", str(official_checkpoint), str(destination), "--set", "heads=2", "text_heads=2"]) == 0
    return destination


def test_convert_stores_weights_and_the_official_input(converted, official_checkpoint, fixture):
    payload = read_checkpoint(converted)
    assert payload["method"] == "xclip" and payload["class_names"] is None
    assert payload["config"]["data"] == {"num_frames": 4, "sampling": "segment", "sampling_protocol": "xclip",
                                         "input_size": 64, "short_side": 73, "normalization": "imagenet"}
    model = clipvideo.load(converted)
    model.set_class_names(NAMES.split(","))
    with torch.no_grad():
        torch.testing.assert_close(model(fixture["video"]), fixture["logits"], atol=1e-5, rtol=0)


def test_predict_zero_shot_from_the_command_line(converted, video):
    done = run_cli("predict", video, "--checkpoint", converted, "--classes", NAMES, "--top-k", "3", "--json", "--precision", "fp32")
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert result["error"] is None and result["views"] == "4 frames x 1 clip x 1 crop"
    assert sorted(t["label"] for t in result["top"]) == sorted(NAMES.split(","))
    assert abs(sum(t["score"] for t in result["top"]) - 1.0) < 1e-4
    # The same numbers as the Python API (same preprocessing, same model).
    api = clipvideo.predict(str(video), checkpoint=str(converted), classes=NAMES.split(","), top_k=3, precision="fp32")
    assert [t["label"] for t in api] == [t["label"] for t in result["top"]]
    assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(api, result["top"]))


def test_predict_table_output(converted, video, capsys):
    code, out, _ = cli(capsys, "predict", video, "--checkpoint", converted, "--classes", NAMES, "--precision", "fp32")
    assert code == 0 and "  1. " in out and "rotating clockwise" in out and "4 frames x 1 clip x 1 crop" in out


def test_convert_hugging_face_folder(tmp_path, video, capsys):
    transformers = pytest.importorskip("transformers")
    from test_xclip_hf import randomise, tiny_hf_config

    torch.manual_seed(0)
    randomise(transformers.XCLIPModel(tiny_hf_config())).save_pretrained(tmp_path / "hf")
    code, _, err = cli(capsys, "convert", "hf-xclip", tmp_path / "hf", tmp_path / "hf.pt", "--classes", NAMES)
    assert code == 0, err
    model = clipvideo.load(tmp_path / "hf.pt")
    assert model.class_names == NAMES.split(",")
    code, out, err = cli(capsys, "predict", video, "--checkpoint", tmp_path / "hf.pt", "--json")  # names from the file
    assert code == 0, err
    assert len(json.loads(out)[0]["top"]) == 3


def test_bad_official_file_is_a_one_line_cli_error(tmp_path, capsys):
    code, _, err = cli(capsys, "convert", "xclip", REPO / "tests/fixtures/xclip/official_ckpt_tiny.pth", tmp_path / "x.pt")
    assert code == 2
    assert "not an X-CLIP checkpoint" in err and len(err.strip().splitlines()) == 1
