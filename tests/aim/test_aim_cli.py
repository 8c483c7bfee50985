"""`clipvideo convert aim` then `clipvideo predict` / `clipvideo test` with AIM's preprocessing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from aim_helpers import FIXTURES

import clipvideo
from clipvideo.cli import main
from clipvideo.data.synthetic import write_video
from clipvideo.engine.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[2]
CLASSES = "a,b,c,d,e"
AIM_MEAN = torch.tensor([122.769, 116.74, 104.04])[:, None, None]  # official configs, 0..255 scale
AIM_STD = torch.tensor([68.493, 66.63, 70.321])[:, None, None]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    destination = tmp_path_factory.mktemp("converted") / "aim_k400_tiny.pt"
    args = ["convert", "aim", str(FIXTURES / "official_k400_tiny.pth"), str(destination), "--set", "heads=2",
            "--classes", CLASSES]
    assert main(args) == 0
    return destination


@pytest.fixture(scope="module")
def static_video(tmp_path_factory) -> Path:
    """A 32x32 video whose 20 frames are one image: the prediction cannot depend on which frames are
    sampled, nor on resizing (the short side is already the model's 32), only on model and normalisation."""
    rng = np.random.default_rng(0)
    image = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # (32, 32, 3) blocks
    path = tmp_path_factory.mktemp("video") / "static.mp4"
    write_video(path, [image] * 20, fps=10, crf=0)
    return path


def test_convert_stores_weights_classes_and_the_official_input(converted, official_io):
    payload = read_checkpoint(converted)
    assert payload["method"] == "aim" and payload["class_names"] == CLASSES.split(",")
    assert payload["config"]["data"] == {"num_frames": 8, "sampling": "dense", "sampling_protocol": "aim",
                                         "input_size": 32, "short_side": 32, "normalization": "aim",
                                         "frame_stride": 16, "out_of_bounds": "loop"}
    model = clipvideo.load(converted)
    with torch.no_grad():
        logits = model(official_io["k400.video"].transpose(1, 2))
    torch.testing.assert_close(logits, official_io["k400.logits"], atol=2e-6, rtol=0)


def test_predict_uses_aim_preprocessing(converted, static_video):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-m", "clipvideo", "predict", str(static_video), "--checkpoint",
                           str(converted), "--precision", "fp32", "--json"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert result["error"] is None and result["views"].startswith("8 frames x")
    with av.open(str(static_video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert all(np.array_equal(f, frames[0]) for f in frames)  # truly static after decoding
    image = (torch.from_numpy(frames[0]).permute(2, 0, 1).float() - AIM_MEAN) / AIM_STD  # (3, 32, 32)
    model = clipvideo.load(converted)
    with torch.no_grad():
        probs = model(image.expand(1, 8, 3, 32, 32)).softmax(-1)[0]
    expected = {name: probs[i].item() for i, name in enumerate(CLASSES.split(","))}
    assert {t["label"] for t in result["top"]} == set(expected)
    for t in result["top"]:
        assert abs(t["score"] - expected[t["label"]]) < 1e-5, (t, expected)
    # ImageNet statistics instead would give other scores: the check above can tell them apart.
    imagenet = (torch.from_numpy(frames[0]).permute(2, 0, 1).float() / 255 - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) \
        / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        other = model(imagenet.expand(1, 8, 3, 32, 32)).softmax(-1)[0]
    assert (other - probs).abs().max() > 1e-3


def test_convert_overrides_from_the_command_line(tmp_path):
    destination = tmp_path / "ssv2.pt"
    args = ["convert", "aim", str(FIXTURES / "official_ssv2_tiny.pth"), str(destination), "--set", "heads=4",
            "adapter_scale=0.75", "sampling=dense", "frame_stride=4"]
    assert main(args) == 0
    payload = read_checkpoint(destination)
    assert payload["model_config"]["adapter_scale"] == 0.75 and payload["model_config"]["second_temporal_adapter"]
    assert (payload["config"]["data"]["sampling"], payload["config"]["data"]["frame_stride"]) == ("dense", 4)


def test_convert_reports_bad_files_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}}, bad)
    assert main(["convert", "aim", str(bad), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not an official AIM checkpoint" in err and str(bad) in err


def test_clipvideo_test_evaluates_the_converted_model(converted, static_video, tmp_path, capsys):
    model = clipvideo.load(converted)
    with av.open(str(static_video)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    image = (torch.from_numpy(frame).permute(2, 0, 1).float() - AIM_MEAN) / AIM_STD
    with torch.no_grad():
        ranking = model(image.expand(1, 8, 3, 32, 32))[0].argsort(descending=True).tolist()
    results = {}
    for name, label in (("right", ranking[0]), ("wrong", ranking[-1])):
        (tmp_path / f"{name}.txt").write_text(f"{static_video.name} {label}\n")
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(
            "method: aim\n"
            f"data: {{root: {static_video.parent}, val_list: {tmp_path / f'{name}.txt'}, num_frames: 8, sampling: dense, "
            "frame_stride: 16, out_of_bounds: loop, sampling_protocol: aim, input_size: 32, short_side: 32, "
            "normalization: aim}\n"
            "test: {num_clips: 1, num_crops: 1, short_side: 32, precision: fp32, num_workers: 0, batch_size: 1}\n"
            f"output_dir: {tmp_path / name}\n")
        assert main(["test", str(recipe), "--checkpoint", str(converted)]) == 0
        results[name] = json.loads((tmp_path / name / "test_metrics.json").read_text())["top1"]
    capsys.readouterr()
    assert results == {"right": 100.0, "wrong": 0.0}
