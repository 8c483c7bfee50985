"""`clipvideo average`: uniform weight averaging of epoch checkpoints (any method), bad inputs."""

import pytest
import torch

import clipvideo
from clipvideo.cli import main
from clipvideo.clip import CheckpointError
from clipvideo.engine import checkpoint as ckpt
from clipvideo.engine.average import average_run, parse_epochs
from clipvideo.methods import frozen
from clipvideo.methods.base import BackboneConfig
from clipvideo.methods.froster import Config, build

DATA = {"num_frames": 4, "input_size": 64, "short_side": 64, "sampling_protocol": "froster"}


def write_epochs(run_dir, model, values: list[float]) -> None:
    """checkpoint_epochNNN.pt files whose every float weight equals values[N-1]."""
    for epoch, value in enumerate(values, 1):
        payload = ckpt.model_payload(model)
        payload["model"] = {k: torch.full_like(v, value) if v.is_floating_point() else v for k, v in payload["model"].items()}
        payload.update(epoch=epoch, config={"method": "froster", "data": DATA}, optimizer={})
        ckpt.atomic_save(payload, run_dir / f"checkpoint_epoch{epoch:03d}.pt")


@pytest.fixture(scope="module")
def froster_model():
    return build(Config(backbone=BackboneConfig(arch="tiny"), num_frames=4), 2, ["a: first", "b: second"])


def test_average_is_the_plain_mean_of_the_chosen_epochs(froster_model, tmp_path):
    write_epochs(tmp_path, froster_model, [1.0, 2.0, 6.0, 100.0])
    average_run(tmp_path, "1-3", tmp_path / "avg13.pt")
    average_run(tmp_path, "2-3", tmp_path / "avg23.pt")
    for name, expected in (("avg13.pt", 3.0), ("avg23.pt", 4.0)):  # (1+2+6)/3, (2+6)/2
        payload = torch.load(tmp_path / name, weights_only=True)
        weights = payload["model"]
        assert all(torch.all(v == expected) for v in weights.values()), name
        assert not any(k.startswith("teacher.") for k in weights)
        assert payload["config"]["data"] == DATA and payload["class_names"] == ["a", "b"]
    model = clipvideo.load(tmp_path / "avg23.pt")
    assert model.teacher is None and model.config.class_texts == ["a: first", "b: second"]


def test_average_works_for_any_method(tmp_path):
    model = frozen.build(frozen.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4), 3, ["x", "y", "z"])
    payload = ckpt.model_payload(model)
    for epoch, scale in ((1, 1.0), (2, 3.0)):
        weights = {k: v * scale if v.is_floating_point() else v for k, v in payload["model"].items()}
        ckpt.atomic_save({**payload, "model": weights, "config": {"data": DATA}}, tmp_path / f"checkpoint_epoch{epoch:03d}.pt")
    assert main(["average", str(tmp_path), "--epochs", "1-2", str(tmp_path / "avg.pt")]) == 0
    averaged = torch.load(tmp_path / "avg.pt", weights_only=True)["model"]
    for key, value in payload["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(averaged[key], 2.0 * value)


def test_bad_inputs_give_one_line_errors(froster_model, tmp_path, capsys):
    write_epochs(tmp_path, froster_model, [1.0, 2.0])
    assert main(["average", str(tmp_path), "--epochs", "1-4", str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no checkpoint_epoch003.pt, checkpoint_epoch004.pt" in err and "keep_epoch_checkpoints=true" in err
    assert len(err.splitlines()) == 1
    for bad in ("3-1", "two", "0-2"):
        assert main(["average", str(tmp_path), "--epochs", bad, str(tmp_path / "out.pt")]) == 2
        assert f"--epochs {bad!r}" in capsys.readouterr().err
    assert main(["average", str(tmp_path / "nope"), "--epochs", "1-2", str(tmp_path / "out.pt")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    other = frozen.build(frozen.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4), 2, ["x", "y"])
    ckpt.atomic_save({**ckpt.model_payload(other), "config": {}}, tmp_path / "checkpoint_epoch002.pt")
    with pytest.raises(CheckpointError, match="weights differ in method, names or shapes"):
        average_run(tmp_path, "1-2", tmp_path / "out.pt")
    assert parse_epochs("2-22") == list(range(2, 23)) and parse_epochs("5") == [5]
