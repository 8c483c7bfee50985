"""The frozen-CLIP baselines: zero-shot frame mean and the trainable temporal variant."""

import pytest
import torch
import torch.nn.functional as F

from clipvideo.clip import tokenize
from clipvideo.methods import METHODS, frozen
from clipvideo.methods.base import BackboneConfig

NAMES = ["moving left", "moving right", "juggling"]


def build(**kwargs):
    config = frozen.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4, **kwargs)
    return frozen.build(config, len(NAMES), NAMES)


def test_zero_shot_is_cosine_of_frame_mean_and_prompts():
    model = build().eval()
    video = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        logits = model(video)
        clip = model.clip
        frames = clip.encode_image(video.flatten(0, 1)).view(2, 4, -1).mean(1)
        text = clip.encode_text(tokenize([f"a video of a person {n}." for n in NAMES]))
        expected = clip.logit_scale.exp() * F.normalize(frames, dim=-1) @ F.normalize(text, dim=-1).t()
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    # Frame order cannot matter to a frame mean.
    with torch.no_grad():
        torch.testing.assert_close(model(video.flip(1)), logits, atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in model.parameters())


def test_new_class_names_replace_the_cached_text():
    model = build().eval()
    video = torch.randn(1, 4, 3, 64, 64)
    model.set_class_names(["cooking", "surfing"])
    assert model(video).shape == (1, 2)
    model.set_class_names(NAMES)
    assert model(video).shape == (1, 3)


def test_temporal_variant_trains_and_sees_frame_order():
    model = build(temporal="transformer", classifier="linear")
    video = torch.randn(2, 4, 3, 64, 64)
    for block in model.temporal.transformer.resblocks:  # leave the identity start
        torch.nn.init.normal_(block.attn.out_proj.weight, std=0.2)
    out = model.loss(video, torch.tensor([0, 1]))
    out["loss"].backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(not n.startswith("clip.") for n in trainable)
    assert all(p.grad is not None for n, p in model.named_parameters() if n in trainable)
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
    model.train()
    assert not model.clip.visual.training  # frozen tower stays in eval mode
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(model(video), model(video.flip(1)), atol=1e-4)
    with pytest.raises(ValueError, match="cannot take new class"):
        model.set_class_names(["a"])
    with pytest.raises(ValueError, match="built for 4 frames, got 8"):
        model(torch.randn(1, 8, 3, 64, 64))


def test_text_initialised_head_starts_at_zero_shot():
    zero_shot = build().eval()
    torch.manual_seed(0)
    head = build(classifier="text-init").eval()
    head.clip.load_state_dict(zero_shot.clip.state_dict())
    video = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        features = F.normalize(zero_shot.forward_features(video), dim=-1)
        # Same ranking up to the feature norm: the head holds the scaled, normalised text embeddings.
        expected = zero_shot(video)
        got = head(video) / head.forward_features(video).norm(dim=-1, keepdim=True)
    assert features.shape == (2, 64)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_bad_settings():
    with pytest.raises(ValueError, match="model.temporal must be one of"):
        build(temporal="lstm")
    with pytest.raises(ValueError, match="needs one class name per class"):
        frozen.build(frozen.Config(backbone=BackboneConfig(arch="tiny"), classifier="text-init"), 5, None)
    assert METHODS["frozen"] is frozen
