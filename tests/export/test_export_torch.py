"""TorchScript and ExportedProgram exports of tiny EVL and X-CLIP models give the PyTorch logits (fp32,
1e-4) at two batch sizes; bad requests fail with one clear line."""

import json
import zipfile

import pytest
from export_helpers import CLASSES, reference_logits, tiny_checkpoints

from clipvideo.cli import main
from clipvideo.clip import CheckpointError
from clipvideo.export import (
    check_export,
    example_video,
    export_checkpoint,
    export_model,
    run_exported,
)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return tiny_checkpoints(tmp_path_factory.mktemp("torch_export"))


@pytest.mark.parametrize("method, fmt", [("evl", "torchscript"), ("xclip", "torchscript"), ("xclip", "exported-program")])
def test_export_matches_pytorch(checkpoints, method, fmt, tmp_path):
    output = tmp_path / f"{method}.{'ts' if fmt == 'torchscript' else 'pt2'}"
    result = export_checkpoint(checkpoints[method], output, fmt)
    differences = check_export(result, batches=(1, 3))
    assert set(differences) == {1, 3} and max(differences.values()) < 1e-4
    # Against the checkpoint loaded afresh (text encoded per call), at a third batch size.
    video = example_video(2, 4, 64, seed=2)
    got = run_exported(output, fmt, video)
    assert got.shape == (2, len(CLASSES)) and (got - reference_logits(checkpoints[method], video)).abs().max() < 1e-4
    with zipfile.ZipFile(output) as archive:  # the metadata travels inside the file
        name = next(n for n in archive.namelist() if n.endswith("clipvideo.json"))
        assert json.loads(archive.read(name))["class_names"] == CLASSES


def test_cli_errors_are_one_line(checkpoints, tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.pt"), "--format", "torchscript", str(tmp_path / "x.ts")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.pt" in err and "not a zoo name" in err and "\n" not in err
    # A trained head cannot take other class names.
    assert main(["export", str(checkpoints["evl"]), "--format", "torchscript", str(tmp_path / "x.ts"), "--classes", "a,b"]) == 2
    assert "cannot take --classes" in capsys.readouterr().err
    assert main(["export", str(checkpoints["evl"]), "--format", "exported-program", str(tmp_path / "x.pt")]) == 2
    assert "must end in .pt2" in capsys.readouterr().err


def test_unknown_format_and_wrong_suffix_are_refused(checkpoints, tmp_path):
    import clipvideo

    with pytest.raises(ValueError, match="choose one of onnx, torchscript, exported-program"):
        export_model(clipvideo.load(checkpoints["evl"]), tmp_path / "x", "tflite", CLASSES)
    with pytest.raises(ValueError, match=r"must end in \.pt2"):
        export_model(clipvideo.load(checkpoints["evl"]), tmp_path / "x.pt", "exported-program", CLASSES)


def test_text_model_without_class_names_is_refused(tmp_path):
    from clipvideo.engine.checkpoint import save_model
    from clipvideo.methods import xclip
    from clipvideo.methods.base import BackboneConfig

    model = xclip.build(xclip.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4, mit_heads=2, prompt_heads=2), 1)
    save_model(model, tmp_path / "no_classes.pt")
    with pytest.raises(CheckpointError, match="no class names; pass --classes"):
        export_checkpoint(tmp_path / "no_classes.pt", tmp_path / "x.ts", "torchscript")
