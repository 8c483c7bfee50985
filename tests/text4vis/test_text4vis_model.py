"""Text4Vis model: fusion, constant classifier (all variants), zero-shot swap, optimiser groups."""

import pytest
import torch
import torch.nn.functional as F
from text4vis_helpers import CLASSES, tiny_model

import clipvideo
from clipvideo.engine.checkpoint import save_model
from clipvideo.methods import METHODS, text4vis


def test_registered_and_logits_are_scaled_cosine_with_the_text_classifier():
    assert METHODS["text4vis"] is text4vis
    model = tiny_model().eval()
    video = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(video)  # (2, 64)
        text = model.clip.encode_text(clipvideo.clip.tokenize([f"a video of a person {c}." for c in CLASSES]))
        expected = model.clip.logit_scale.exp() * F.normalize(features, dim=-1) @ F.normalize(text, dim=-1).t()
        logits = model(video)
    assert features.shape == (2, 64) and logits.shape == (2, 3)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.forward_head(features), logits)


def test_classifier_is_a_buffer_made_once_not_per_batch(monkeypatch):
    model = tiny_model()
    assert "classifier" in dict(model.named_buffers()) and "classifier" not in dict(model.named_parameters())
    calls = []
    original = model.clip.encode_text
    monkeypatch.setattr(model.clip, "encode_text", lambda tokens: calls.append(1) or original(tokens))
    video = torch.randn(2, 4, 3, 64, 64)
    for _ in range(2):
        model.loss(video, torch.tensor([0, 1]))["loss"].backward()
        model.eval()(video)
    assert calls == []  # never re-encoded per batch
    model.set_class_names(CLASSES)  # same classes: nothing to do
    assert calls == []
    model.set_class_names(["cooking", "surfing"])  # zero-shot transfer: one encoding of the new set
    assert calls == [1] and model(video).shape == (2, 2)


def test_only_the_image_tower_fusion_and_logit_scale_train_at_official_rates():
    model = tiny_model()
    out = model.loss(torch.randn(2, 4, 3, 64, 64), torch.tensor([0, 2]))
    out["loss"].backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in dict(model.named_parameters())
                         if n.startswith(("clip.visual.", "fusion_model.")) or n == "clip.logit_scale"}
    assert all(model.get_parameter(n).grad is not None for n in trainable)
    groups = {(g["lr_scale"], g["weight_decay"]): set(g["names"]) for g in model.param_groups(0.2)}
    assert set(groups) == {(0.1, 0.2), (1.0, 0.2)}  # decay on everything, logit_scale included
    assert "clip.logit_scale" in groups[(0.1, 0.2)] and "clip.visual.conv1.weight" in groups[(0.1, 0.2)]
    assert all(n.startswith("fusion_model.") for n in groups[(1.0, 0.2)])
    model.train()
    assert not model.clip.transformer.training and model.clip.visual.training


def test_fusion_sees_frame_order_and_mean_fusion_does_not():
    video = torch.randn(2, 4, 3, 64, 64)
    transf, mean = tiny_model().eval(), tiny_model(fusion="mean").eval()
    with torch.no_grad():
        transf.fusion_model.frame_position_embeddings.weight.normal_()  # official init (std 0.02) is faint
        assert (transf(video) - transf(video.flip(1))).abs().max() > 1e-3
        torch.testing.assert_close(mean(video), mean(video.flip(1)), atol=1e-5, rtol=0)
    assert mean.fusion_model is None
    assert not any(k.startswith("fusion_model.") for k in mean.state_dict())


def test_single_frame_still_goes_through_the_fusion():
    """The official code skips the fusion when T == 1 (docs/text4vis.md); here it always runs."""
    model = tiny_model().eval()
    video = torch.randn(2, 1, 3, 64, 64)
    with torch.no_grad():
        frames = model.clip.encode_image(video.flatten(0, 1))
        assert (model.forward_features(video) - frames).abs().max() > 1e-3


def test_random_and_orthogonal_classifiers_are_seeded():
    a, b = tiny_model(classifier="random"), tiny_model(classifier="random")
    assert torch.equal(a.classifier, b.classifier) and a.classifier.shape == (3, 64)
    c = tiny_model(classifier="random", classifier_seed=1)
    assert not torch.equal(a.classifier, c.classifier)
    ortho = tiny_model(classifier="orthogonal").classifier
    torch.testing.assert_close(ortho @ ortho.t(), torch.eye(3), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="at most 64 rows"):
        text4vis.orthogonal_classifier(65, 64, 0)


def test_lda_recovers_the_discriminant_direction():
    """Two classes, shared anisotropic covariance: row difference is Sigma^-1 (mu1 - mu0)."""
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([3.0, 0.3, 1.0, 1.0])
    mu = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    labels = torch.arange(2).repeat(20000)
    features = mu[labels] + torch.randn(len(labels), 4, generator=generator) * scales
    weights = text4vis.lda_classifier(features, labels, 2, shrinkage=0.0)
    expected = (mu[1] - mu[0]) / scales**2
    torch.testing.assert_close(weights[1] - weights[0], expected, atol=0.05, rtol=0.05)
    with pytest.raises(ValueError, match="class 2 has no sample"):
        text4vis.lda_classifier(features, labels, 3)


def test_file_classifier_travels_inside_the_model_file(tmp_path):
    rows = torch.randn(3, 64)
    torch.save(rows, tmp_path / "lda.pt")
    model = tiny_model(classifier="lda", classifier_file=str(tmp_path / "lda.pt"))
    assert torch.equal(model.classifier, rows)
    save_model(model, tmp_path / "model.pt")
    (tmp_path / "lda.pt").unlink()  # the model file must not need it
    loaded = clipvideo.load(tmp_path / "model.pt")
    assert torch.equal(loaded.classifier, rows) and loaded.class_names == CLASSES
    video = torch.randn(1, 4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(video), model.eval()(video))
    # A fresh build whose file is gone fails on use, with one line naming the file.
    fresh = tiny_model(classifier="lda", classifier_file=str(tmp_path / "lda.pt"))
    with pytest.raises(RuntimeError, match=r"lda.pt: classifier file not found; make it"):
        fresh(video)


def test_bad_configs_are_one_line_errors(tmp_path):
    for overrides, message in (
        (dict(fusion="lstm"), "model.fusion must be one of"),
        (dict(classifier="bert"), "model.classifier must be one of"),
        (dict(classifier="lda"), "needs model.classifier_file"),
    ):
        with pytest.raises(ValueError, match=message):
            tiny_model(**overrides)
    (tmp_path / "bad.pt").write_text("not a tensor file")
    with pytest.raises(ValueError, match="cannot read the classifier file"):
        tiny_model(classifier="file", classifier_file=str(tmp_path / "bad.pt"))
    with pytest.raises(ValueError, match=r"expects video shaped \(B, T, 3, H, W\)"):
        tiny_model()(torch.randn(4, 3, 64, 64))
    with pytest.raises(ValueError, match="4 temporal positions, got 5 frames"):
        tiny_model(fusion_positions=4)(torch.randn(1, 5, 3, 64, 64))


def test_input_config_is_the_official_test_input():
    record = tiny_model().input_config()
    assert record["data"] == {"num_frames": 4, "sampling": "segment", "sampling_protocol": "text4vis",
                              "input_size": 64, "short_side": 64, "normalization": "clip"}
    assert record["test"] == {"aggregate": "feature"}  # official: video features averaged over views
    for arch, short in (("ViT-B/32", 256), ("ViT-L/14-336", 336)):
        clip_config = clipvideo.clip.get_architecture(arch)
        fake = type("M", (), {"clip": type("C", (), {"config": clip_config}), "config": text4vis.Config()})()
        assert text4vis.Text4Vis.input_config(fake)["data"]["short_side"] == short

