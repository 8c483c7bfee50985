"""`clipvideo compare`: every method on one class-folder dataset, one table, resumable."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clipvideo.data.synthetic import make_motion_dataset
from clipvideo.engine.compare import METHODS, CompareSettings, recipe
from clipvideo.engine.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def run(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "clipvideo", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=900)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    data = make_motion_dataset(tmp_path_factory.mktemp("compare"), num_videos_per_class=8, num_val_per_class=0,
                               num_frames=12, classes=("moving left", "moving right", "still red square"))
    return Path(data.root) / "videos"


@pytest.fixture(scope="module")
def compared(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "cmp"
    done = run("compare", folder, "--out", out, "--epochs", "1", "--frames", "4", "--no-flip", "--batch-size", "4",
               "--set", "evl:train.lr=1e-3")
    return out, done


def test_every_method_gets_a_row_with_accuracy_and_costs(compared):
    out, done = compared
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((out / "compare.json").read_text())
    assert [row["method"] for row in rows] == list(METHODS)
    for row in rows:
        assert 0 <= row["top1"] <= 100 and 0 <= row["mean_class"] <= 100
        assert row["train_s_per_clip"] > 0 and row["infer_clips_per_s"] > 0 and row["gflops_per_view"] > 0
        assert 0 < row["tunable_params_m"] <= row["params_m"]
        assert row["views"].startswith("4 frames")
    by_method = {row["method"]: row for row in rows}
    # FROSTER fine-tunes its whole student; EVL and AIM train only their additions to a frozen tower.
    assert by_method["froster"]["tunable_params_m"] == pytest.approx(by_method["froster"]["params_m"])
    assert by_method["aim"]["tunable_params_m"] < 0.5 * by_method["aim"]["params_m"]
    table = (out / "compare.md").read_text()
    assert all(f"| {m} |" in table for m in METHODS) and (out / "compare.png").stat().st_size > 1000
    # Same validation videos for every row: the split is written once per row, identically.
    vals = {(out / m / "folder_lists" / "val.txt").read_text() for m in METHODS}
    assert len(vals) == 1


def test_each_row_reruns_alone_from_its_recipe(compared):
    out, _ = compared
    config = load_config(str(out / "evl" / "recipe.yaml"))
    assert config.method == "evl" and config.train.lr == 1e-3  # the per-method --set reached only EVL
    assert load_config(str(out / "aim" / "recipe.yaml")).train.lr != 1e-3
    assert {config.data.num_frames for config in (load_config(str(out / m / "recipe.yaml")) for m in METHODS)} == {4}


def test_resume_skips_finished_rows(compared, folder):
    out, _ = compared
    before = {m: (out / m / "model.pt").stat().st_mtime_ns for m in METHODS}
    done = run("compare", folder, "--out", out, "--epochs", "1", "--frames", "4", "--no-flip", "--batch-size", "4",
               "--resume", "--methods", "evl,aim")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "already done" in done.stderr
    assert all((out / m / "model.pt").stat().st_mtime_ns == before[m] for m in ("evl", "aim"))


def test_bad_options_are_one_line_errors(folder, tmp_path):
    done = run("compare", folder, "--out", tmp_path, "--methods", "evl,nosuch")
    assert done.returncode == 2 and "unknown nosuch" in done.stderr and "Traceback" not in done.stderr
    done = run("compare", folder, "--out", tmp_path, "--zero-shot")
    assert done.returncode == 2 and "--zero-shot needs --backbone" in done.stderr
    done = run("compare", folder, "--out", tmp_path, "--checkpoint", "xclip")
    assert done.returncode == 2 and "METHOD=FILE" in done.stderr
    with pytest.raises(ConfigError, match="'nosuch' is not a method"):
        recipe(CompareSettings(data=str(folder), out=str(tmp_path), overrides=["nosuch:train.lr=1"]), "evl")


def test_a_pretrained_backbone_gets_the_gentle_defaults(folder, tmp_path):
    settings = CompareSettings(data=str(folder), out=str(tmp_path), backbone="ViT-B-16.pt")
    values = {m: recipe(settings, m) for m in METHODS}
    assert all(v["model"]["backbone"] == {"pretrained": "ViT-B-16.pt"} for v in values.values())
    assert values["xclip"]["train"]["lr"] < values["evl"]["train"]["lr"]  # fine-tuning a whole tower: small steps
    assert "input_size" not in values["evl"]["data"]  # the backbone's own resolution
    assert yaml.safe_dump(values)  # plain data, writable as recipes
