"""FROSTER model behaviour: temporal attention, prompts, classifier cache, training paths, saving."""

import random
import warnings

import pytest
import torch

from clipvideo.engine import checkpoint as ckpt
from clipvideo.methods.base import BackboneConfig
from clipvideo.methods.froster import TEMPLATES, Config, build, expand_temporal_view, prompt_sets

CLASSES = ["Brush hair: A person is using a brush to style their hair", "Run: someone runs fast", "jump"]


def tiny(**kwargs):
    config = Config(backbone=BackboneConfig(arch="tiny", **kwargs.pop("backbone", {})), num_frames=4, **kwargs)
    return build(config, len(CLASSES), CLASSES)


def test_expand_temporal_view_puts_next_previous_own_frame_with_zero_ends():
    x = torch.arange(1, 7, dtype=torch.float).view(6, 1, 1, 1)  # 2 clips x 3 frames, value = frame id
    out = expand_temporal_view(x, num_frames=3).view(6, 3)  # columns: next, previous, own
    assert out.tolist() == [[2, 0, 1], [3, 1, 2], [0, 2, 3], [5, 0, 4], [6, 4, 5], [0, 5, 6]]


def test_frames_see_their_neighbours_only_within_a_clip():
    model = tiny(distillation=False).eval()
    video = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        base = model.clip.visual(video.flatten(0, 1), num_frames=4).view(2, 4, -1)
        changed = video.clone()
        changed[0, 3] += 1.0  # the last frame of clip 0
        after = model.clip.visual(changed.flatten(0, 1), num_frames=4).view(2, 4, -1)
    moved = (after - base).abs().amax(dim=-1)  # (2, 4)
    # Two blocks: frame 3 reaches frames 2 and 1 of its clip, not frame 0 (three steps away), not clip 1.
    assert (moved[0, 1:] > 1e-4).all() and moved[0, 0] < 1e-6 and moved[1].max() < 1e-6


def test_prompts_are_the_28_templates_then_the_bare_description():
    sets = prompt_sets(CLASSES)
    assert len(TEMPLATES) == 28 and len(sets) == 29
    assert sets[0][0] == "a photo of Brush hair. " + CLASSES[0]
    assert sets[8][0] == "a video of a person Brush hair. " + CLASSES[0]
    assert sets[27][2] == "a demonstration of a person practicing jump. jump"
    assert sets[28] == CLASSES


def test_over_long_descriptions_are_truncated_with_a_warning():
    long = "Long: " + " ".join(["word"] * 100)
    with pytest.warns(UserWarning, match=r"FROSTER: 29 prompt\(s\) exceed 77 tokens and were truncated"):
        model = build(Config(backbone=BackboneConfig(arch="tiny"), distillation=False), 2, [long, "short"])
    assert model.class_names == ["Long", "short"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny(distillation=False)  # short prompts: no warning


def test_classifier_is_cached_and_follows_weights_classes_and_dtype():
    model = tiny(distillation=False).eval()
    video = torch.randn(1, 4, 3, 64, 64)
    calls = []
    encode = model.clip.encode_text
    model.clip.encode_text = lambda tokens: calls.append(len(tokens)) or encode(tokens)
    with torch.no_grad():
        first = model(video)
        assert calls == [29 * 3]  # every prompt once
        assert torch.equal(model(video), first) and len(calls) == 1  # cached
        model.clip.text_projection.mul_(2.0)  # a weight change (like an optimiser step)
        model(video)
        assert len(calls) == 2
        model.set_class_names(CLASSES[:2])
        assert model(video).shape == (1, 2) and len(calls) == 3
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(video)
        assert len(calls) == 4
    # The cache equals encoding from scratch.
    fresh = model.encode_prompt_sets(model.clip, model.text_tokens)
    torch.testing.assert_close(model.class_embeddings(), fresh)


def test_class_names_are_required_and_bad_input_is_refused():
    model = build(Config(backbone=BackboneConfig(arch="tiny"), distillation=False), 0)
    with pytest.raises(RuntimeError, match="call model.set_class_names"):
        model(torch.randn(1, 4, 3, 64, 64))
    with pytest.raises(ValueError, match="at least one class"):
        model.set_class_names([])
    model.set_class_names(CLASSES)
    with pytest.raises(ValueError, match=r"expects video shaped \(B, T, 3, H, W\)"):
        model(torch.randn(4, 3, 64, 64))
    with pytest.raises(ValueError, match="got 3 class names for 2 classes"):
        build(Config(backbone=BackboneConfig(arch="tiny")), 2, CLASSES)


def test_teacher_is_frozen_out_of_the_optimiser_and_matches_the_starting_student():
    model = tiny()
    names = [n for group in model.param_groups(0.01) for n in group["names"]]
    assert not any(n.startswith("teacher.") for n in names)
    assert "clip.logit_scale" in names and "projector_v.0.weight" in names and "clip.token_embedding.weight" in names
    decay = {n: g["weight_decay"] for g in model.param_groups(0.01) for n in g["names"]}
    assert decay["clip.logit_scale"] == 0.01 and decay["clip.visual.ln_post.bias"] == 0.0
    assert decay["clip.visual.transformer.resblocks.0.attn.in_proj_bias"] == 0.0
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, model.clip.state_dict()[key])
    model.train()
    assert not model.teacher.training and model.clip.training


@pytest.mark.parametrize("precision", [torch.float32, torch.bfloat16])
def test_a_training_step_runs_on_cpu_and_only_the_student_moves(precision):
    model = tiny().train()
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    optimizer = torch.optim.AdamW(model.param_groups(0.01), lr=1e-3)
    video, target = torch.randn(2, 4, 3, 64, 64), torch.tensor([0, 2])
    random.seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == torch.bfloat16):
        out = model.loss(video, target)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["distillation"] >= 0
    assert model.projector_v[2].weight.grad.abs().sum() > 0  # the zero-initialised layer learns
    assert model.clip.logit_scale.grad is not None and model.clip.token_embedding.weight.grad is not None
    optimizer.step()
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key])
    # Loss = CE + ratio x distillation.
    assert out["loss"].item() == pytest.approx(out["classification"].item() + 2.0 * out["distillation"].item(), abs=1e-5)


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    plain = tiny()
    checkpointed = tiny(backbone={"grad_checkpointing": True})
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.clip.visual.transformer.grad_checkpointing and checkpointed.clip.transformer.grad_checkpointing
    video, target = torch.randn(2, 4, 3, 64, 64), torch.tensor([1, 0])
    losses = []
    for model in (plain, checkpointed):
        random.seed(3)
        loss = model.train().loss(video, target)["loss"]
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    torch.testing.assert_close(checkpointed.clip.visual.conv1.weight.grad, plain.clip.visual.conv1.weight.grad)
    torch.testing.assert_close(checkpointed.clip.token_embedding.weight.grad, plain.clip.token_embedding.weight.grad)


def test_model_files_leave_out_the_teacher_and_reload_without_it(tmp_path):
    model = tiny().eval()
    ckpt.save_model(model, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert not any(k.startswith("teacher.") for k in payload["model"])
    assert len(payload["model"]) == len(model.state_dict()) - len(model.teacher.state_dict())
    loaded = ckpt.load_model(tmp_path / "m.pt")
    assert loaded.teacher is None and loaded.config.class_texts == CLASSES
    video = torch.randn(1, 4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(video), model(video))
    with pytest.raises(RuntimeError, match="rebuilt for inference without its frozen teacher"):
        loaded.train().loss(video, torch.tensor([0]))
    # Bare names of the same classes keep the stored descriptions; new classes replace them.
    loaded.set_class_names(["Brush hair", "Run", "jump"])
    assert loaded.config.class_texts == CLASSES
    loaded.set_class_names(["a", "b"])
    assert loaded.config.class_texts == ["a", "b"]


def test_weight_patching_blends_towards_the_original():
    model = tiny(distillation=False)
    original = {k: torch.zeros_like(v) for k, v in model.clip.state_dict().items()}
    before = model.clip.visual.proj.detach().clone()
    model.patch_weights(original, 0.25)
    torch.testing.assert_close(model.clip.visual.proj.detach(), 0.75 * before)
    with pytest.raises(ValueError, match="tensors the student lacks"):
        model.patch_weights({"foo": torch.zeros(1)}, 0.5)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        model.patch_weights(original, -0.1)


def test_input_config_is_the_official_input():
    record = tiny().input_config()
    assert record["test"] == {"aggregate": "logit"}
    settings = record["data"]
    assert settings["sampling_protocol"] == "froster" and settings["frame_stride"] == 16
    assert (settings["input_size"], settings["short_side"], settings["train_short_side"]) == (64, 64, [64, 73])
    assert settings["normalization"] == "clip" and settings["train_crop"] == "random"
    from clipvideo.engine.config import DataConfig, from_dict

    from_dict(DataConfig, settings)  # every key is a DataConfig field


def test_a_training_checkpoint_resumes_into_a_model_with_its_teacher():
    """Checkpoints leave the teacher out; resuming loads them into a model built from the recipe
    (whose teacher comes from the starting CLIP), without touching that teacher."""
    trained = tiny()
    with torch.no_grad():
        trained.clip.visual.proj.add_(1.0)
    payload = ckpt.model_payload(trained)
    fresh = tiny()
    teacher = {k: v.clone() for k, v in fresh.teacher.state_dict().items()}
    ckpt.load_model_state(fresh, payload["model"], "checkpoint_last.pt")
    assert torch.equal(fresh.clip.visual.proj, trained.clip.visual.proj)
    assert all(torch.equal(v, teacher[k]) for k, v in fresh.teacher.state_dict().items())
    broken = {k: v for k, v in payload["model"].items() if k != "clip.visual.proj"}
    with pytest.raises(Exception, match=r"checkpoint_last.pt: weights do not fit the recorded model: missing \['clip.visual.proj'\]"):
        ckpt.load_model_state(fresh, broken, "checkpoint_last.pt")
