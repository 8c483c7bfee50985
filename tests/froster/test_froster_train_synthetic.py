"""`clipvideo train` with FROSTER distillation on synthetic videos, then `clipvideo average`,
`predict` and `test` on the averaged model with no extra flags; the teacher is in no file."""

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
from clipvideo.methods.froster import FROSTER

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "froster" / "tiny_synthetic.yaml"
DESCRIPTIONS = {
    "moving left": "A bright disc slides across the frame from right to left",
    "moving right": "A bright disc slides across the frame from left to right",
    "moving up": "A bright disc rises from the bottom of the frame to the top",
    "moving down": "A bright disc falls from the top of the frame to the bottom",
}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2", "PYTHONPATH": str(REPO)}


def cli(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "clipvideo", *args], capture_output=True, text=True, cwd=REPO,
                          env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("froster_motion")
    data = make_motion_dataset(root, num_videos_per_class=8, num_val_per_class=2, num_frames=24, size=(64, 64),
                               fps=12, seed=0, classes=tuple(DESCRIPTIONS))
    classes = root / "classes.json"
    classes.write_text(json.dumps({str(i): f"{name}: {text}" for i, (name, text) in enumerate(DESCRIPTIONS.items())}))
    overrides = [f"data.root={data.root}", f"data.train_list={data.train_list}", f"data.val_list={data.val_list}",
                 f"data.class_names={classes}", f"output_dir={root / 'run'}"]
    cli("train", str(RECIPE), "--set", *overrides)
    return root / "run", overrides, data


def test_training_keeps_one_checkpoint_per_epoch_without_the_teacher(run):
    run_dir, _, _ = run
    epochs = sorted(p.name for p in run_dir.glob("checkpoint_epoch*.pt"))
    assert epochs == ["checkpoint_epoch001.pt", "checkpoint_epoch002.pt"]
    for name in [*epochs, "checkpoint_last.pt", "model.pt"]:
        payload = torch.load(run_dir / name, weights_only=True)
        keys = list(payload["model"])
        assert not any(k.startswith("teacher.") for k in keys), name
        assert "projector_v.2.weight" in keys and "clip.visual.conv1.weight" in keys
    # The descriptions travel with the model: its prompts are the "Name: description" entries.
    model = clipvideo.load(run_dir / "model.pt")
    assert model.config.class_texts[0] == "moving left: " + DESCRIPTIONS["moving left"]
    assert model.class_names == list(DESCRIPTIONS)
    # Training moved the student away from the teacher's (initial) weights, epoch to epoch.
    first = torch.load(run_dir / "checkpoint_epoch001.pt", weights_only=True)["model"]
    second = torch.load(run_dir / "checkpoint_epoch002.pt", weights_only=True)["model"]
    assert not torch.equal(first["clip.visual.proj"], second["clip.visual.proj"])
    assert not torch.equal(first["projector_v.2.weight"], second["projector_v.2.weight"])


def test_average_gives_a_model_that_predict_and_test_use_without_flags(run, tmp_path, capsys):
    run_dir, overrides, data = run
    averaged = tmp_path / "averaged.pt"
    assert main(["average", str(run_dir), "--epochs", "1-2", str(averaged)]) == 0
    payload = torch.load(averaged, weights_only=True)
    assert payload["averaged_epochs"] == [1, 2]
    assert not any(k.startswith("teacher.") for k in payload["model"])
    first = torch.load(run_dir / "checkpoint_epoch001.pt", weights_only=True)["model"]
    second = torch.load(run_dir / "checkpoint_epoch002.pt", weights_only=True)["model"]
    for key in ("clip.visual.proj", "clip.logit_scale", "projector_t.2.weight"):
        torch.testing.assert_close(payload["model"][key], (first[key] + second[key]) / 2)
    model = clipvideo.load(averaged)
    assert isinstance(model, FROSTER) and model.teacher is None and model.class_names == list(DESCRIPTIONS)
    first_video = Path(data.root) / Path(data.val_list).read_text().split()[0]
    capsys.readouterr()
    assert main(["predict", str(first_video), "--checkpoint", str(averaged), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert {t["label"] for t in top} == set(DESCRIPTIONS)
    assert main(["test", str(RECIPE), "--checkpoint", str(averaged), "--set", *overrides,
                 f"output_dir={tmp_path / 'test'}"]) == 0
    metrics = json.loads((tmp_path / "test" / "test_metrics.json").read_text())
    assert metrics["num_videos"] == 8 and metrics["failed_videos"] == 0
