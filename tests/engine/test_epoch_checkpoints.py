"""train.keep_epoch_checkpoints: each epoch file is a model file (weights, run config, class names)
without optimiser, scheduler or RNG state; `clipvideo average` reads them; checkpoint_last.pt
alone resumes a run."""

import pytest
import torch

import clipvideo
from clipvideo.cli import main
from clipvideo.clip import CheckpointError
from clipvideo.engine import train as train_module
from clipvideo.engine.config import build_config
from clipvideo.engine.train import fit

RESUME_ONLY = {"optimizer", "scheduler", "scaler", "ema", "rng", "rng_per_rank", "step_in_epoch"}


def recipe(output_dir) -> dict:
    """A tiny temporal model (tower trained too, so AdamW holds moments for every weight) on
    dummy clips: 4 steps per epoch, 2 epochs, one kept file per epoch."""
    return {
        "method": "frozen",
        "model": {"backbone": {"arch": "tiny", "image_resolution": 64}, "num_frames": 4, "temporal": "transformer",
                  "classifier": "linear", "train_backbone": True},
        "data": {"dummy": True, "dummy_length": 16, "num_frames": 4, "input_size": 64, "short_side": 64,
                 "num_workers": 0},
        "train": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "seed": 5, "eval_every": 0, "precision": "fp32",
                  "keep_epoch_checkpoints": True},
        "test": {"batch_size": 4, "num_workers": 0, "precision": "fp32"},
        "output_dir": str(output_dir),
    }


def load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5, msg=key)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("epochs") / "run"
    fit(build_config(recipe(run)))
    return run


def test_epoch_files_hold_weights_and_settings_but_no_optimiser_state(run_dir, tmp_path):
    last = load(run_dir / "checkpoint_last.pt")
    assert RESUME_ONLY - {"ema"} <= last.keys()  # the resume file keeps everything
    for epoch in (1, 2):
        payload = load(run_dir / f"checkpoint_epoch{epoch:03d}.pt")
        assert not RESUME_ONLY & payload.keys(), sorted(RESUME_ONLY & payload.keys())
        assert {"method", "model_config", "model", "class_names", "config", "epoch", "step"} <= payload.keys()
        assert payload["epoch"] == epoch and payload["step"] == 4 * epoch
        assert payload["config"]["data"]["num_frames"] == 4 and payload["config"]["train"]["keep_epoch_checkpoints"]
    assert_same_weights(load(run_dir / "checkpoint_epoch002.pt")["model"], last["model"])
    # Each epoch file is a model file: it loads as one, fed as the run was.
    model = clipvideo.load(run_dir / "checkpoint_epoch001.pt")
    assert model.data_config.num_frames == 4 and model.data_config.input_size == 64
    with torch.no_grad():
        assert model(torch.randn(1, 4, 3, 64, 64)).shape == (1, 2)

    assert main(["average", str(run_dir), "--epochs", "1-2", str(tmp_path / "averaged.pt")]) == 0
    first, second = (load(run_dir / f"checkpoint_epoch{n:03d}.pt")["model"] for n in (1, 2))
    averaged = load(tmp_path / "averaged.pt")
    assert averaged["averaged_epochs"] == [1, 2] and not RESUME_ONLY & averaged.keys()
    for key, value in first.items():
        expected = (value + second[key]) / 2 if value.is_floating_point() else value
        torch.testing.assert_close(averaged["model"][key], expected, msg=key)
    assert any(not torch.equal(first[k], second[k]) for k in first)  # the epochs differ: a real mean
    clipvideo.load(tmp_path / "averaged.pt")


def test_a_run_resumes_from_checkpoint_last_and_not_from_an_epoch_file(run_dir, tmp_path, monkeypatch):
    """The same run stopped after its first epoch and resumed ends with the uninterrupted weights."""
    config = recipe(tmp_path / "stopped")
    one_epoch = train_module.train_one_epoch

    def stop_in_second_epoch(model, loader, optimizer, scheduler, scaler, ema, state, *args):
        if state["epoch"] == 1:
            raise KeyboardInterrupt
        return one_epoch(model, loader, optimizer, scheduler, scaler, ema, state, *args)

    monkeypatch.setattr(train_module, "train_one_epoch", stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(build_config(config))
    monkeypatch.undo()
    stopped = tmp_path / "stopped"
    assert load(stopped / "checkpoint_last.pt")["epoch"] == 1 and not (stopped / "checkpoint_epoch002.pt").exists()
    assert_same_weights(load(stopped / "checkpoint_epoch001.pt")["model"], load(run_dir / "checkpoint_epoch001.pt")["model"])

    with pytest.raises(CheckpointError, match="checkpoint_epoch001.pt: .*no optimiser state.*checkpoint_last.pt"):
        fit(build_config(config), resume=str(stopped / "checkpoint_epoch001.pt"))
    fit(build_config(config), resume="auto")
    assert_same_weights(load(stopped / "checkpoint_last.pt")["model"], load(run_dir / "checkpoint_last.pt")["model"])
    assert_same_weights(load(stopped / "checkpoint_epoch002.pt")["model"], load(run_dir / "checkpoint_epoch002.pt")["model"])
