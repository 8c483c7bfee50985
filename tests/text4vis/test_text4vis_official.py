"""Official Text4Vis checkpoints: logits equal the official code's (fixtures made by running it,
see tests/fixtures/text4vis/README.md), every bad input is a one-line error."""

import pytest
import torch
import torch.nn.functional as F
from text4vis_helpers import CLASSES, FIXTURES, fixture_views, read_fixture, write_clip_file

import clipvideo
from clipvideo.clip import CheckpointError, Transformer
from clipvideo.official.text4vis import load_official_text4vis

CHECKPOINT = FIXTURES / "official_ckpt_tiny.pt"
# fp32, in logit units (exp(logit_scale) = 20.09, |logits| <= 1.35). Measured max |ours - official| over
# every comparison below: 1.8e-6 on this CPU (Intel Xeon, AVX512-FP16/AMX; 1 or 2 threads) and 3.0e-6
# with its AVX2 or SSE4.2 kernels forced (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA),
# as a CPU without AVX-512 runs them (docs/text4vis.md). fp32 rounding of the two codes, not a bug:
# every fusion detail checked below moves the logits by 0.3 or more.
TOLERANCE = 5e-6


@pytest.fixture(scope="module")
def fixture():
    return read_fixture()


@pytest.fixture(scope="module")
def clip_file(fixture, tmp_path_factory):
    return write_clip_file(fixture, tmp_path_factory.mktemp("clip") / "tiny_clip_fp16.pt")


@pytest.fixture(scope="module")
def model(clip_file):
    return clipvideo.load_official("text4vis", CHECKPOINT, backbone=clip_file, class_names=CLASSES, num_frames=4)


def test_logits_and_intermediates_match_official_code(model, fixture):
    assert not model.training and model.config.fusion == "transf" and model.config.fusion_layers == 6
    assert model.fusion_model.transformer.resblocks[0].attn.heads == 2  # official: text width 128 // 64
    assert model.fusion_model.transformer.resblocks[0].ln_1.eps == 1e-12
    video = fixture_views(fixture)[:, 0]  # (2, 4, 3, 64, 64)
    with torch.no_grad():
        frames = model.clip.encode_image(video.flatten(0, 1)).view(2, 4, -1)
        features = model.forward_features(video)
        logits = model(video)
    for ours, key in ((model.classifier, "text_features"), (frames, "frame_features"),
                      (features, "video_features"), (logits, "logits")):
        torch.testing.assert_close(ours, fixture[key], atol=TOLERANCE, rtol=0, msg=key)
    # The tolerance sits far below the effect of each fusion detail it guards.
    blocks = model.fusion_model.transformer
    positions = model.fusion_model.frame_position_embeddings.weight[:4]
    with torch.no_grad():
        no_residual = Transformer.forward(blocks, frames + positions).mean(1)
        no_positions = blocks(frames, torch.zeros_like(positions))
        mean_only = frames.mean(1)
    for name, variant in (("no residual", no_residual), ("no positions", no_positions), ("frame mean", mean_only)):
        gap = (model.forward_head(variant) - fixture["logits"]).abs().max()
        assert gap > 100 * TOLERANCE, (name, gap)


def test_mean_pooling_checkpoint_matches_official(fixture, clip_file, tmp_path):
    checkpoint = torch.load(CHECKPOINT, weights_only=True)
    checkpoint["model_state_dict"] = {k: v for k, v in checkpoint["model_state_dict"].items()
                                      if not k.startswith("fusion_model.")}  # official sim_header: None
    torch.save(checkpoint, tmp_path / "mean.pt")
    model = load_official_text4vis(tmp_path / "mean.pt", backbone=clip_file, class_names=CLASSES, num_frames=4)
    assert model.config.fusion == "mean" and model.fusion_model is None
    with torch.no_grad():
        logits = model(fixture_views(fixture)[:, 0])
    torch.testing.assert_close(logits, fixture["logits_mean"], atol=TOLERANCE, rtol=0)


def test_precomputed_classifier_file_matches_official(fixture, clip_file, tmp_path):
    feats = tmp_path / "text_feats_k400_ViT-B32.pt"
    torch.save(fixture["text_feats"], feats)
    model = load_official_text4vis(CHECKPOINT, backbone=clip_file, classifier=feats, num_frames=4)
    assert model.config.classifier == "file" and model.class_names == ["class 0", "class 1", "class 2"]
    with torch.no_grad():
        logits = model(fixture_views(fixture)[:, 0])
    torch.testing.assert_close(logits, fixture["logits_text_feats_file"], atol=TOLERANCE, rtol=0)
    # Text logits differ: the file really is the classifier.
    assert (logits - fixture["logits"]).abs().max() > 0.1
    model.set_class_names(CLASSES)  # names label the file's rows
    assert torch.equal(model.classifier, fixture["text_feats"])
    with pytest.raises(ValueError, match="has 3 rows, got 2 class names"):
        model.set_class_names(["a", "b"])


def test_views_averaged_as_features_match_official_test(model, fixture):
    """test.py: per-view video embeddings averaged before normalisation, then 100 * cosine."""
    views = fixture_views(fixture)  # (2, 3 views, 4, 3, 64, 64)
    with torch.no_grad():
        features = torch.stack([model.forward_features(views[:, v]) for v in range(3)], 1).mean(1)
        logits = model.forward_head(features)
        per_view_probs = torch.stack([model(views[:, v]).softmax(-1) for v in range(3)], 1).mean(1)
    scale = model.clip.logit_scale.exp()  # ours: the learned scale; official test: a fixed 100
    # Compared in logit units like every other output (at the official 100x the same error is 5x larger).
    torch.testing.assert_close(logits, fixture["test_similarity_views"] * scale / 100, atol=TOLERANCE, rtol=0)
    assert (per_view_probs - (logits).softmax(-1)).abs().max() > 1e-3  # probability averaging is not the same


def test_ddp_prefix_and_fp16_state_dict_load(fixture, clip_file, tmp_path):
    sd = torch.load(CHECKPOINT, weights_only=True)["model_state_dict"]
    torch.save({f"module.{k}": v.half() for k, v in sd.items()}, tmp_path / "bare.pt")
    model = load_official_text4vis(tmp_path / "bare.pt", backbone=clip_file, class_names=CLASSES, num_frames=4)
    with torch.no_grad():
        torch.testing.assert_close(model(fixture_views(fixture)[:, 0]), fixture["logits"], atol=0.05, rtol=0)


def _checkpoint_without(tmp_path, drop=(), add=None, name="bad.pt"):
    checkpoint = torch.load(CHECKPOINT, weights_only=True)
    sd = {k: v for k, v in checkpoint["model_state_dict"].items() if k not in drop}
    sd.update(add or {})
    torch.save({**checkpoint, "model_state_dict": sd}, tmp_path / name)
    return tmp_path / name


def test_bad_inputs_are_one_line_errors(clip_file, fixture, tmp_path):
    cases = [
        (dict(path=CHECKPOINT, backbone=None), "hold no text tower; pass backbone="),
        (dict(path=tmp_path / "nope.pt", backbone=clip_file), "no such file"),
        (dict(path=_checkpoint_without(tmp_path, drop=("visual.proj",)), backbone=clip_file),
         r"missing \['visual.proj'\]"),
        (dict(path=_checkpoint_without(tmp_path, add={"text_projection": torch.zeros(1)}, name="b2.pt"),
              backbone=clip_file), "unexpected tensors"),
        (dict(path=_checkpoint_without(tmp_path, drop=("fusion_model.transformer.resblocks.5.ln_2.bias",),
                                       name="b3.pt"), backbone=clip_file), "keys do not match Text4Vis"),
        (dict(path=CHECKPOINT, backbone=clip_file, classifier=tmp_path / "missing_feats.pt"),
         "classifier file not found"),
    ]
    (tmp_path / "nce.pt").write_bytes(b"")
    torch.save({"epoch": 0, "model_state_dict": {"logit_scale": torch.zeros(())}, "fusion_model_state_dict": {}},
               tmp_path / "nce.pt")
    cases.append((dict(path=tmp_path / "nce.pt", backbone=clip_file), "train_nce.py checkpoint"))
    wrong_feats = tmp_path / "feats.pt"
    torch.save(torch.zeros(3, 7), wrong_feats)
    cases.append((dict(path=CHECKPOINT, backbone=clip_file, classifier=wrong_feats), r"classifier is \(3, 7\)"))
    other = torch.load(clip_file, weights_only=True)
    other["text_projection"] = torch.zeros(128, 16, dtype=torch.float16)
    torch.save(other, tmp_path / "other_clip.pt")
    cases.append((dict(path=CHECKPOINT, backbone=tmp_path / "other_clip.pt"), "text embedding width 16"))
    for kwargs, message in cases:
        with pytest.raises((CheckpointError, ValueError, FileNotFoundError), match=message) as error:
            load_official_text4vis(kwargs.pop("path"), **kwargs)
        assert "\n" not in str(error.value), str(error.value)


def test_official_classifier_is_normalised_text_of_the_template(model, fixture):
    assert torch.equal(model.classifier, model.encode_class_names(CLASSES))
    from clipvideo.clip import tokenize
    tokens = tokenize([f"a video of a person {c}." for c in CLASSES])
    assert torch.equal(tokens, fixture["text_tokens"])
    scale = model.clip.logit_scale.exp()
    video = F.normalize(fixture["video_features"], dim=-1)
    torch.testing.assert_close(scale * video @ F.normalize(fixture["text_features"], dim=-1).t(), fixture["logits"],
                               atol=TOLERANCE, rtol=0)


def test_init_checkpoint_starts_from_a_trained_model(model, clip_file, tmp_path):
    """Official `pretrain` (UCF/HMDB/ANet start from K400): image tower, fusion and logit_scale
    from an official or native file; the text tower stays the backbone's."""
    from dataclasses import replace

    from clipvideo.engine.checkpoint import save_model
    from clipvideo.methods import text4vis

    save_model(model, tmp_path / "native.pt")
    carried = [k for k in model.state_dict()
               if k.startswith(("clip.visual.", "fusion_model.")) or k == "clip.logit_scale"]
    for source in (CHECKPOINT, tmp_path / "native.pt"):
        config = replace(model.config, init_checkpoint=str(source),
                         backbone=replace(model.config.backbone, pretrained=str(clip_file)))
        fresh = text4vis.build(config, 3, CLASSES)
        assert fresh.config.init_checkpoint is None  # a model file rebuilt for inference needs no file
        assert all(torch.equal(fresh.state_dict()[k], model.state_dict()[k]) for k in carried)
        assert torch.equal(fresh.classifier, model.classifier)
    bad = _checkpoint_without(tmp_path, drop=("fusion_model.frame_position_embeddings.weight",), name="nofusion.pt")
    config = replace(model.config, init_checkpoint=str(bad),
                     backbone=replace(model.config.backbone, pretrained=str(clip_file)))
    with pytest.raises(CheckpointError, match="init_checkpoint lacks 1 tensors"):
        text4vis.build(config, 3, CLASSES)
