"""`clipvideo convert text4vis` -> a native model file that load/predict use with no extra flags;
`clipvideo text4vis-lda` -> an LDA classifier file a recipe trains with."""

import json
from pathlib import Path

import pytest
import torch
from text4vis_helpers import CLASSES, FIXTURES, fixture_views, read_fixture, write_clip_file

import clipvideo
from clipvideo.cli import main
from clipvideo.data.synthetic import make_motion_dataset
from clipvideo.engine.checkpoint import read_checkpoint


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def fixture():
    return read_fixture()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_motion_dataset(tmp_path_factory.mktemp("motion"), num_videos_per_class=3, num_val_per_class=1,
                               num_frames=12, size=(64, 64), fps=8, classes=["moving left", "moving right"])


def test_convert_then_load_and_predict_with_no_flags(capsys, fixture, data, tmp_path):
    clip_file = write_clip_file(fixture, tmp_path / "clip.pt")
    out = tmp_path / "text4vis_tiny.pt"
    code, stdout, stderr = cli(capsys, "convert", "text4vis", FIXTURES / "official_ckpt_tiny.pt", out,
                               "--backbone", clip_file, "--classes", ",".join(CLASSES), "--set", "num_frames=4")
    assert code == 0, stderr
    payload = read_checkpoint(out)
    assert payload["method"] == "text4vis" and payload["class_names"] == CLASSES
    assert payload["config"]["data"] == {"num_frames": 4, "sampling": "segment", "sampling_protocol": "text4vis",
                                         "input_size": 64, "short_side": 64, "normalization": "clip"}
    model = clipvideo.load(out)
    with torch.no_grad():
        torch.testing.assert_close(model(fixture_views(fixture)[:, 0]), fixture["logits"], atol=1e-4, rtol=0)
    video = Path(data.root) / "videos/moving_left/moving_left_0000.mp4"
    code, stdout, stderr = cli(capsys, "predict", video, "--checkpoint", out, "--json", "--precision", "fp32")
    assert code == 0, stderr
    (result,) = json.loads(stdout)
    assert result["error"] is None and {t["label"] for t in result["top"]} == set(CLASSES)
    # Zero-shot: the same model file with other class names.
    code, stdout, stderr = cli(capsys, "predict", video, "--checkpoint", out, "--classes", "surfing,cooking",
                               "--json", "--precision", "fp32")
    assert code == 0, stderr
    assert {t["label"] for t in json.loads(stdout)[0]["top"]} == {"surfing", "cooking"}


def test_convert_without_backbone_is_a_one_line_error(capsys, tmp_path):
    code, _, stderr = cli(capsys, "convert", "text4vis", FIXTURES / "official_ckpt_tiny.pt", tmp_path / "x.pt")
    assert code == 2 and "hold no text tower; pass backbone=" in stderr and stderr.count("\n") == 1


def test_lda_command_writes_a_classifier_the_recipe_trains_with(capsys, data, tmp_path):
    recipe = tmp_path / "lda.yaml"
    recipe.write_text(
        "method: text4vis\n"
        "model: {backbone: {arch: tiny}, num_frames: 4, fusion_heads: 2, fusion_layers: 1}\n"
        f"data: {{root: {data.root}, train_list: {data.train_list}, val_list: {data.val_list}, "
        f"class_names: {data.class_names_file}, num_frames: 4, sampling: segment, input_size: 64, short_side: 64, "
        "num_workers: 0}\n"
        f"output_dir: {tmp_path / 'run'}\n")
    code, stdout, stderr = cli(capsys, "text4vis-lda", recipe, "--per-class", 2, "--seed", 3)
    assert code == 0, stderr
    lda_file = tmp_path / "run" / "lda_classifier.pt"
    assert str(lda_file) in stdout
    weights = torch.load(lda_file, weights_only=True)
    assert weights.shape == (2, 64) and torch.isfinite(weights).all()
    from clipvideo.engine.config import load_config
    from clipvideo.engine.train import build_model
    config = load_config(recipe, ["model.classifier=lda", f"model.classifier_file={lda_file}"])
    model = build_model(config, 2, ["moving left", "moving right"])
    assert torch.equal(model.classifier, weights)
