"""AIM model: what trains, what starts as CLIP, the official drop path, parameter groups, inputs."""

import pytest
import torch

from clipvideo.clip import CLIP, CLIPConfig
from clipvideo.methods import METHODS
from clipvideo.methods.aim import AIM, Config, build, drop_token_positions
from clipvideo.methods.base import BackboneConfig

TINY = CLIPConfig(embed_dim=64, image_resolution=32, vision_width=64, vision_layers=2, vision_heads=2,
                  vision_patch_size=16, text_width=64, text_layers=1, text_heads=2)


def tiny(**kwargs) -> AIM:
    backbone = BackboneConfig(arch="tiny", architecture=TINY.to_dict())
    return build(Config(backbone=backbone, num_frames=kwargs.pop("num_frames", 4), **kwargs), num_classes=3)


def test_registered():
    assert METHODS["aim"].build is build


def test_only_adapters_temporal_embedding_ln_post_and_head_train():
    model = tiny(second_temporal_adapter=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    for name, _ in model.named_parameters():
        parts = ("_adapter.", "_adapter_in.", "temporal_embedding", "clip.visual.ln_post.", "head.fc.")
        assert (name in trainable) == any(part in name for part in parts), name
    assert "clip.visual.transformer.resblocks.1.temporal_adapter_in.up.weight" in trainable
    video = torch.randn(2, 4, 3, 32, 32)
    model.train()
    model.loss(video, torch.tensor([0, 2]))["loss"].backward()
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    # zero-initialised second layers still pass gradients to themselves
    assert model.clip.visual.transformer.resblocks[0].temporal_adapter.up.weight.grad.abs().sum() > 0


def test_a_fresh_model_is_frame_wise_clip_with_averaged_class_tokens():
    """Zero second adapter layers and a zero temporal embedding: features = stock CLIP per frame."""
    model = tiny(second_temporal_adapter=True).eval()
    clip = CLIP(TINY, with_text=False, vision_output_dim=None).eval()
    clip.load_state_dict({k: v for k, v in model.clip.state_dict().items() if "_adapter" not in k})
    video = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        expected = clip.visual(video.flatten(0, 1)).view(2, 4, -1)
        torch.testing.assert_close(model.frame_features(video), expected, atol=1e-5, rtol=0)
        model.temporal_embedding.normal_()  # a trained temporal embedding is no longer frame-wise
        assert (model.frame_features(video) - expected).abs().max() > 1e-2


def test_frame_order_matters_once_the_temporal_path_is_trained():
    model = tiny().eval()
    with torch.no_grad():
        for block in model.clip.visual.transformer.resblocks:
            block.temporal_adapter.up.weight.normal_(std=0.2)
        model.temporal_embedding.normal_()
        video = torch.randn(1, 4, 3, 32, 32)
        assert (model(video) - model(video.flip(1))).abs().max() > 1e-3


def test_drop_path_masks_token_positions_shared_by_all_frames_and_clips():
    torch.manual_seed(0)
    x = torch.ones(6, 50, 8)  # (B*T, n, D)
    out = drop_token_positions(x, 0.5, training=True)
    dropped = out[0, :, 0] == 0
    assert 5 < dropped.sum() < 45
    assert torch.equal(out == 0, dropped[None, :, None].expand_as(out))  # same positions in every row
    assert torch.allclose(out[:, ~dropped], torch.full_like(out[:, ~dropped], 2.0))  # scaled by 1/keep
    assert drop_token_positions(x, 0.5, training=False) is x
    blocks = tiny(drop_path_rate=0.2).clip.visual.transformer.resblocks
    assert [b.drop_path_rate for b in blocks] == pytest.approx([0.0, 0.2])  # linspace(0, rate, L)


def test_official_weight_decay_and_lr_groups():
    def groups(model):
        return {name: (g["weight_decay"], g["lr_scale"]) for g in model.param_groups(0.05) for name in g["names"]}

    base = groups(tiny())
    assert base["clip.visual.ln_post.weight"] == (0.0, 1.0)
    for name in ("temporal_embedding", "head.fc.bias", "clip.visual.transformer.resblocks.0.mlp_adapter.up.bias"):
        assert base[name] == (0.05, 1.0), name  # adapters' biases decay too (official custom_keys)
    large = groups(tiny(backbone_lr_scale=0.1))
    assert large["clip.visual.ln_post.weight"] == (0.05, 0.1)  # 'backbone' outranks 'ln_post' officially
    assert large["temporal_embedding"] == (0.05, 0.1) and large["head.fc.weight"] == (0.05, 1.0)


def test_official_parameter_counts():
    """Counts measured by instantiating the official code (reference aim.md §a.4); built on 'meta'."""
    with torch.device("meta"):
        b16 = build(Config(backbone=BackboneConfig(arch="ViT-B/16"), num_frames=8), 400)
        l14_ssv2 = build(Config(backbone=BackboneConfig(arch="ViT-L/14"), num_frames=8, second_temporal_adapter=True), 174)
    assert b16.parameter_counts() == {"total": 96_764_560, "tunable": 10_966_672}
    assert l14_ssv2.parameter_counts() == {"total": 353_820_846, "tunable": 50_643_118}


def test_bad_inputs_and_configs_have_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match=r"built for 4 frames .* got 8"):
        model(torch.randn(1, 8, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model(torch.randn(1, 3, 4, 32, 32))
    with pytest.raises(ValueError, match="sampling must be"):
        tiny(sampling="uniform")
    with pytest.raises(ValueError, match="drop_path_rate"):
        tiny(drop_path_rate=1.0)
    with pytest.raises(ValueError, match="cannot take new class names"):
        model.set_class_names(["a"])


def test_input_config_describes_the_official_test_input():
    assert tiny(num_frames=8).input_config() == {"data": {
        "num_frames": 8, "sampling": "dense", "sampling_protocol": "aim", "input_size": 32, "short_side": 32,
        "normalization": "aim", "frame_stride": 16, "out_of_bounds": "loop"}, "test": {"aggregate": "prob"}}
    settings = tiny(num_frames=4, sampling="segment").input_config()["data"]
    assert settings["sampling"] == "segment" and "frame_stride" not in settings


def test_video_features_feed_the_head():
    model = tiny().eval()
    video = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(model.forward_features(video)), model(video))


def test_activation_checkpointing_gives_the_same_gradients():
    video, target = torch.randn(2, 4, 3, 32, 32), torch.tensor([0, 1])
    reference = tiny(drop_path_rate=0.0, head_dropout=0.0)
    with torch.no_grad():
        for block in reference.clip.visual.transformer.resblocks:
            block.temporal_adapter.up.weight.fill_(0.01)
    grads = []
    for checkpointing in (False, True):
        model = tiny(drop_path_rate=0.0, head_dropout=0.0)
        model.load_state_dict(reference.state_dict())
        model.clip.set_grad_checkpointing(checkpointing)
        model.train().loss(video, target)["loss"].backward()
        grads.append(model.clip.visual.transformer.resblocks[0].temporal_adapter.down.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0
