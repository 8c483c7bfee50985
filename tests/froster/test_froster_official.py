"""FROSTER against the official code (Visual-AI/FROSTER @230ae88) on a tiny random model, fp32.

The fixture's logits come from the official TemporalClipVideo (tests/fixtures/froster/README.md).
Tolerance 1e-4 on logits of size ~1-6; each test also shows a change that the tolerance catches.
"""

import json
import random

import pytest
import torch
import torch.nn.functional as F

import clipvideo
from clipvideo.clip import CheckpointError, config_from_state_dict
from clipvideo.methods.base import BackboneConfig
from clipvideo.methods.froster import FROSTER, Config, build
from clipvideo.official.froster import load_official_froster, split_official_state

ATOL = 1e-4


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def imported(official_files, class_texts) -> FROSTER:
    model = load_official_froster(official_files["averaged"], num_frames=4)
    model.set_class_names(class_texts)
    return model


def test_eval_logits_match_the_official_model(imported, fixture):
    with torch.no_grad():
        logits = imported(fixture["video"])
    diff = max_diff(logits, fixture["eval_logits"])
    print(f"max |ours - official| eval logits: {diff:.2e}")
    assert diff < ATOL
    assert imported.class_names == ["Brush hair", "Cartwheel", "jumping jacks", "Pour"]
    assert imported.teacher is None and not hasattr(imported, "projector_v")


def test_the_tolerance_catches_a_missing_temporal_view_or_prompt_set(imported, fixture, class_texts):
    video = fixture["video"]
    with torch.no_grad():
        # Frames as one-frame clips: the same weights without the neighbouring-frame attention.
        per_frame = imported(video.flatten(0, 1).unsqueeze(1)).view(video.shape[0], video.shape[1], -1).mean(1)
        tokens = imported.text_tokens
        imported.text_tokens = tokens[-1:]  # only the bare descriptions
        bare_only = imported(video)
        imported.text_tokens = tokens
    assert max_diff(per_frame, fixture["eval_logits"]) > 100 * ATOL
    assert max_diff(bare_only, fixture["eval_logits"]) > 100 * ATOL


def test_official_training_checkpoint_loads_to_the_same_model(official_files, fixture, class_texts):
    """The epoch file as PySlowFast's save_checkpoint wrote it in the official training run: student,
    teacher and projectors, optimiser state, and the whole yacs config dumped as a yaml string."""
    raw = torch.load(official_files["epoch"], weights_only=True)
    assert set(raw) == {"epoch", "model_state", "optimizer_state", "cfg"} and raw["epoch"] == 11
    assert isinstance(raw["cfg"], str) and "KEEP_RAW_MODEL: true" in raw["cfg"]
    assert {k.split(".")[0] for k in raw["model_state"]} == {"model", "raw_model", "projector_v", "projector_t"}
    model = load_official_froster(official_files["epoch"])  # NUM_FRAMES 4 read from its dumped cfg
    assert model.config.num_frames == 4
    model.set_class_names(class_texts)
    with torch.no_grad():
        diff = max_diff(model(fixture["video"]), fixture["eval_logits"])
    print(f"max |ours - official| eval logits (training checkpoint): {diff:.2e}")
    assert diff < ATOL
    assert model.teacher is None and not any(k.startswith("teacher.") for k in model.state_dict())


@pytest.mark.parametrize("source", ["averaged", "epoch"])
def test_weight_patching_matches_the_official_test_option(official_files, fixture, class_texts, source):
    ratio = float(fixture["patching_ratio"])
    model = load_official_froster(official_files[source], clip_original=official_files["original"],
                                  patching_ratio=ratio, num_frames=4)
    model.set_class_names(class_texts)
    with torch.no_grad():
        logits = model(fixture["video"])
    diff = max_diff(logits, fixture["patched_logits"])
    print(f"max |ours - official| patched logits ({source}): {diff:.2e}")
    assert diff < ATOL
    assert max_diff(fixture["patched_logits"], fixture["eval_logits"]) > 100 * ATOL  # patching matters


def test_training_loss_and_distillation_terms_match(official_state, original_state, fixture, class_texts):
    student, _, projectors = split_official_state(official_state, "fixture")
    arch = config_from_state_dict(student)
    model = build(Config(backbone=BackboneConfig(architecture=arch.to_dict()), num_frames=4), 0)
    model.clip.load_state_dict(student)
    model.teacher.load_state_dict({k: v.float() for k, v in original_state.items()})
    model.load_state_dict({**model.state_dict(), **projectors})
    model.set_class_names(class_texts)
    model.train()
    random.seed(int(fixture["train_seed"]))
    assert model.draw_training_sets() == [int(fixture["train_template"]), 28]
    random.seed(int(fixture["train_seed"]))
    out = model.loss(fixture["video"], fixture["train_labels"])
    assert max_diff(out["logits"], fixture["train_logits"]) < ATOL
    diff = abs(out["loss"].item() - fixture["train_loss"].item())
    print(f"|ours - official| training loss: {diff:.2e}")
    assert diff < ATOL
    # The parts, from the same weights: residual student features and the teacher's.
    sets = [int(fixture["train_template"]), 28]
    with torch.no_grad():
        frames = model.frame_features(fixture["video"])
        frames_hat = frames + 0.1 * model.projector_v(frames)
        text = model.encode_prompt_sets(model.clip, model.text_tokens[sets])
        text_hat = text + 0.1 * model.projector_t(text)
        teacher_frames = F.normalize(model.teacher.visual(fixture["video"].flatten(0, 1)), dim=-1)
    assert max_diff(frames_hat, fixture["train_frames_hat"]) < ATOL
    assert max_diff(text_hat, fixture["train_text_hat"]) < ATOL
    assert max_diff(teacher_frames, fixture["train_teacher_frames"]) < ATOL
    assert max_diff(model.teacher_class_embeddings(sets), fixture["train_teacher_text"]) < ATOL
    # Another template gives another loss: the draw is what the official one draws.
    random.seed(int(fixture["train_seed"]) + 1)
    assert model.draw_training_sets()[0] != int(fixture["train_template"])
    random.seed(int(fixture["train_seed"]) + 1)
    assert abs(model.loss(fixture["video"], fixture["train_labels"])["loss"].item() - fixture["train_loss"].item()) > 100 * ATOL


def test_bad_files_give_one_line_errors(tmp_path, official_state, official_files):
    junk = tmp_path / "junk.pth"
    torch.save({"model_state": {**official_state, "head.weight": torch.zeros(2, 2)}}, junk)
    with pytest.raises(CheckpointError, match=r"junk.pth: 1 keys are not part of a FROSTER model.*head.weight"):
        load_official_froster(junk)
    other = tmp_path / "other.pth"
    torch.save({"model_state": {"model.foo": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match="other.pth: not a FROSTER checkpoint"):
        load_official_froster(other)
    with pytest.raises(CheckpointError, match="no such file"):
        load_official_froster(tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="patching_ratio needs clip_original"):
        load_official_froster(official_files["averaged"], patching_ratio=0.5)
    with pytest.raises(CheckpointError, match="patching_ratio must lie in"):
        load_official_froster(official_files["averaged"], clip_original=official_files["original"], patching_ratio=2)
    not_clip = tmp_path / "not_clip.pt"
    torch.save({"weight": torch.zeros(2)}, not_clip)
    with pytest.raises(CheckpointError, match="not_clip.pt: not a CLIP checkpoint for weight patching"):
        load_official_froster(official_files["averaged"], clip_original=not_clip)
    other_size = tmp_path / "other_size.pt"
    torch.save({"visual.conv1.weight": torch.zeros(3, 3, 8, 8)}, other_size)
    with pytest.raises(CheckpointError, match=r"other_size.pt: original CLIP visual.conv1.weight: shape \(3, 3, 8, 8\)"):
        load_official_froster(official_files["averaged"], clip_original=other_size)


def test_load_official_registry_and_convert_cli(official_files, class_texts, fixture, tmp_path):
    model = clipvideo.load_official("froster", official_files["averaged"], num_frames=4)
    assert isinstance(model, FROSTER)
    from clipvideo.cli import main

    out = tmp_path / "froster.pt"
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps({str(i): t for i, t in enumerate(class_texts)}))
    assert main(["convert", "froster", str(official_files["averaged"]), str(out), "--classes", str(classes),
                 "--set", "num_frames=4"]) == 0
    native = clipvideo.load(out)
    assert native.class_names == ["Brush hair", "Cartwheel", "jumping jacks", "Pour"]
    with torch.no_grad():
        assert max_diff(native(fixture["video"]), fixture["eval_logits"]) < ATOL  # descriptions kept
    payload = torch.load(out, weights_only=True)
    assert payload["config"]["data"]["sampling_protocol"] == "froster"
    patched = tmp_path / "froster_patched.pt"  # weight patching baked into a native file
    assert main(["convert", "froster", str(official_files["averaged"]), str(patched), "--classes", str(classes),
                 "--set", "num_frames=4", f"clip_original={official_files['original']}", "patching_ratio=0.3"]) == 0
    with torch.no_grad():
        assert max_diff(clipvideo.load(patched)(fixture["video"]), fixture["patched_logits"]) < ATOL
