"""The X-CLIP model: shapes, training behaviour, text cache, parameter groups, CLIP weights, errors."""

import warnings

import pytest
import torch
from xclip_helpers import CLASSES, tiny_config, tiny_model

from clipvideo.clip import CheckpointError, create_clip, tokenize
from clipvideo.methods import METHODS, xclip
from clipvideo.methods.base import BackboneConfig


def video(batch=2, frames=4, size=64):
    return torch.randn(batch, frames, 3, size, size)


def test_registered_and_forward_shape():
    assert METHODS["xclip"] is xclip
    model = tiny_model().eval()
    with torch.no_grad():
        assert model(video()).shape == (2, 3)


def test_trainable_parameters_get_gradients_and_frozen_ones_none():
    model = tiny_model(drop_path_rate=0.2).train()
    model(video()).logsumexp(dim=-1).sum().backward()
    for name, param in model.named_parameters():
        text_side = not name.startswith(("clip.visual.", "mit.", "prompts_"))
        if text_side:  # text tower, text projection, logit_scale: frozen by default, as the official FIX_TEXT
            assert not param.requires_grad and param.grad is None, name
        else:
            assert param.requires_grad and param.grad is not None and param.grad.abs().sum() > 0, name
    assert not model.clip.transformer.training and model.clip.visual.training


def test_text_tower_trains_when_configured():
    model = tiny_model(train_text=True).train()
    model(video()).sum().backward()
    assert model.clip.token_embedding.weight.grad is not None
    assert model.clip.logit_scale.grad is not None
    assert not model.class_cache.memory  # recomputed with gradients every step, never cached
    assert model.frozen_modules() == []


def test_state_dict_round_trip():
    model = tiny_model().eval()
    clone = xclip.build(model.config, num_classes=3, class_names=CLASSES).eval()
    clone.load_state_dict(model.state_dict(), strict=True)
    clip_video = video()
    with torch.no_grad():
        assert torch.equal(model(clip_video), clone(clip_video))
    assert set(model.state_dict()) == set(clone.state_dict())


def test_official_key_names_under_clip_prefix():
    keys = set(tiny_model().state_dict())
    for key in ("clip.visual.transformer.resblocks.1.message_attn.in_proj_weight", "mit.positional_embedding",
                "mit.resblocks.0.attn.in_proj_weight", "prompts_generator.decoder.1.mlp.3.weight",
                "prompts_generator.decoder.0.cross_attn.q_proj.weight", "prompts_visual_proj",
                "prompts_visual_ln.weight", "clip.token_embedding.weight", "clip.logit_scale"):
        assert key in keys, key
    assert "prompts_generator.decoder.0.cross_attn.q_proj.bias" not in keys


def test_clip_weights_leave_exactly_the_new_keys_missing(tmp_path):
    clip = create_clip("tiny")
    path = tmp_path / "clip.pt"
    torch.save({k: v for k, v in clip.state_dict().items()}, path)
    config = tiny_config(backbone=BackboneConfig(pretrained=str(path), heads=2, text_heads=2))
    model = xclip.build(config, num_classes=3, class_names=CLASSES)
    ours = model.clip.state_dict()
    for key, value in clip.state_dict().items():
        assert torch.equal(ours[key], value), key
    new = set(ours) - set(clip.state_dict())
    assert new and all(".message_" in key for key in new)
    assert {key.split(".")[-2] for key in new} >= {"message_fc", "message_ln", "out_proj"}
    # A CLIP file that lacks one of CLIP's own tensors is an error, not a silent new key.
    torch.save({k: v for k, v in clip.state_dict().items() if k != "visual.ln_post.weight"}, path)
    with pytest.raises(CheckpointError, match="missing"):
        xclip.build(config, num_classes=3, class_names=CLASSES)


def test_text_cache_follows_class_names_and_weights():
    model = tiny_model().eval()
    first = model.class_embeddings()
    assert model.class_embeddings() is first  # cached
    model.set_class_names(["a", "b"])
    with torch.no_grad():
        assert model(video()).shape == (2, 2)  # a new class set is used at once
    cached = model.class_embeddings()
    with torch.no_grad():
        model.clip.text_projection.mul_(2.0)  # any in-place change of the text weights
    torch.testing.assert_close(model.class_embeddings(), cached * 2.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["clip.ln_final.bias"] += 1.0
    before = model.class_embeddings()
    model.load_state_dict(state)
    assert not torch.equal(model.class_embeddings(), before)


def test_forward_does_not_change_train_eval_mode():
    model = tiny_model().eval()
    with torch.no_grad():
        model(video())
    assert not any(m.training for m in model.modules())
    model.train()
    model(video())
    assert model.training and model.mit.training and not model.clip.transformer.training


def test_parameter_groups_follow_the_official_optimiser():
    model = tiny_model()
    groups = model.param_groups(weight_decay=0.001)
    where = {name: (g["weight_decay"], g["lr_scale"]) for g in groups for name in g["names"]}
    assert where["clip.visual.conv1.weight"] == (0.001, 1.0)
    assert where["clip.visual.proj"] == (0.001, 1.0)
    assert where["clip.visual.positional_embedding"] == (0.0, 1.0)
    assert where["clip.visual.class_embedding"] == (0.0, 1.0)
    assert where["clip.visual.transformer.resblocks.0.attn.in_proj_bias"] == (0.0, 1.0)
    assert where["clip.visual.transformer.resblocks.0.message_fc.weight"] == (0.001, 10.0)
    assert where["clip.visual.transformer.resblocks.0.message_ln.weight"] == (0.0, 10.0)
    assert where["mit.positional_embedding"] == (0.0, 10.0)
    assert where["mit.resblocks.0.mlp.c_fc.weight"] == (0.001, 10.0)
    assert where["prompts_visual_proj"] == (0.001, 10.0)
    assert where["prompts_generator.alpha"] == (0.0, 10.0)
    assert not any(name.startswith(("clip.transformer.", "clip.token_embedding", "clip.logit_scale")) for name in where)
    # Trained text: the official rule decays the token embedding and the 0-d logit_scale too.
    where = {n: (g["weight_decay"], g["lr_scale"]) for g in tiny_model(train_text=True).param_groups(0.001) for n in g["names"]}
    assert where["clip.token_embedding.weight"] == (0.001, 1.0)
    assert where["clip.logit_scale"] == (0.001, 1.0)
    assert where["clip.positional_embedding"] == (0.0, 1.0)


def test_new_module_initialisation_follows_the_official_code():
    model = tiny_model(prompt_alpha=0.25)
    assert torch.equal(model.prompts_generator.alpha, torch.full((64,), 0.25))
    assert model.prompts_visual_proj.std() > 0.5  # official std 1, not width**-0.5
    assert model.mit.positional_embedding.std() < 0.05
    assert torch.equal(model.mit.resblocks[0].mlp.c_fc.bias, torch.zeros(256))
    block = model.clip.visual.transformer.resblocks[1]
    assert torch.equal(block.message_ln.weight, torch.ones(64)) and torch.equal(block.message_attn.in_proj_bias, torch.zeros(192))


def test_drop_path_is_linear_over_depth_and_off_in_eval():
    model = tiny_model(drop_path_rate=0.4)
    assert [b.drop_path_rate for b in model.clip.visual.transformer.resblocks] == [0.0, 0.4]
    model.eval()
    clip_video = video()
    with torch.no_grad():
        assert torch.equal(model(clip_video), model(clip_video))


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(1)
    plain_model = tiny_model().train()
    checkpointed = xclip.build(tiny_config(), 3, CLASSES).train()
    checkpointed.load_state_dict(plain_model.state_dict())
    checkpointed.clip.set_grad_checkpointing(True)
    clip_video = video()
    plain_model(clip_video).sum().backward()
    checkpointed(clip_video).sum().backward()
    for (name, a), b in zip(plain_model.named_parameters(), checkpointed.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_message_tokens_mix_frames_and_order_matters():
    model = tiny_model().eval()
    clip_video = video(batch=1)
    with torch.no_grad():
        frames, _ = model.encode_frames(clip_video)
        # Changing one frame changes the other frames' embeddings (cross-frame messages).
        edited = clip_video.clone()
        edited[:, 3] = torch.randn_like(edited[:, 3])
        frames_edited, _ = model.encode_frames(edited)
        assert (frames_edited[:, 0] - frames[:, 0]).abs().max() > 1e-4
        # Reversing time changes the video embedding (temporal positions in the MIT).
        assert (model.mit(frames) - model.mit(frames.flip(1))).abs().max() > 1e-4


def test_frame_count_mismatch_warns_and_runs():
    model = tiny_model().eval()
    with pytest.warns(UserWarning, match="trained for 4 frames; interpolating them linearly to 8 frames"):
        with torch.no_grad():
            assert model(video(frames=8)).shape == (2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            model(video(frames=4))  # the trained T: no warning


def test_interpolation_keeps_a_constant_table_constant():
    table = torch.ones(1, 4, 8) * torch.arange(8.0)
    resized = xclip.resize_temporal_embedding(table, 16)
    assert resized.shape == (1, 16, 8) and torch.allclose(resized, torch.ones(1, 16, 8) * torch.arange(8.0))


def test_template_formats_class_names():
    model = tiny_model(template="a video of a person {}.")
    expected = tokenize(["a video of a person moving left."])[0]
    length = model.text_tokens.shape[1]
    assert torch.equal(model.text_tokens[0], expected[:length]) and not expected[length:].any()


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m: m(torch.randn(2, 3, 64, 64)), ValueError, r"expects video shaped \(B, T, 3, H, W\), got \(2, 3, 64, 64\)"),
        (lambda m: m.set_class_names([]), ValueError, "at least one class name"),
        (lambda m: m.set_class_names(["word " * 80]), ValueError, "too long|context length|exceed"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message) as raised:
        call(tiny_model())
    assert "\n" not in str(raised.value)


def test_forward_without_class_names_says_what_to_do():
    model = xclip.build(tiny_config(), num_classes=3)
    with pytest.raises(RuntimeError, match=r"call model.set_class_names\(\[...\]\) first"):
        model(video())


def test_class_name_count_must_match_num_classes():
    with pytest.raises(ValueError, match="got 3 class names for 5 classes"):
        xclip.build(tiny_config(), num_classes=5, class_names=CLASSES)


def test_heads_that_do_not_divide_are_an_error():
    with pytest.raises(ValueError, match="not divisible by heads=3"):
        tiny_model(mit_heads=3)
