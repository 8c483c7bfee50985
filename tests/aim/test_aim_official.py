"""Official AIM checkpoints: restricted reading, strict matching, and parity with the official model.

The fixtures are the official ViT_CLIP + I3DHead run on tiny random models (tests/fixtures/aim/README.md),
a K400-style model and the SSv2 variant with a second temporal adapter. Adapters are small, so the
tolerance is tight (2e-6) and each test below also shows that removing one piece moves the logits
by far more than that.
"""

from pathlib import Path

import json

import pytest
import torch
from aim_helpers import FIXTURES, HEADS

import clipvideo
from clipvideo.clip import CheckpointError
from clipvideo.official.aim import load_official_aim, official_state_dict, read_official
from clipvideo.official.xclip import read_checkpoint

ATOL = 2e-6


def load(variant, path=None, **overrides):
    return load_official_aim(path or FIXTURES / f"official_{variant}_tiny.pth", heads=HEADS[variant], **overrides)


def logits_of(model, video):
    with torch.no_grad():
        return model(video)


def test_official_files_need_the_restricted_unpickler(official_file):
    with pytest.raises(Exception):  # the pickled mmcv ConfigDict / numpy scalars in 'meta'
        torch.load(official_file, weights_only=True)
    raw = read_checkpoint(official_file)
    assert set(raw) == {"meta", "state_dict", "optimizer", "amp"}
    assert raw["meta"]["cfg"].pickled_class == "mmcv.utils.config.ConfigDict"  # kept as data, not imported


def test_logits_and_features_match_the_official_model(variant, official_io, official_video):
    model = load(variant)
    assert model.config.second_temporal_adapter == (variant == "ssv2")  # detected from T_Adapter_in keys
    assert model.config.adapter_scale == (1.0 if variant == "ssv2" else 0.5)
    assert not model.training
    with torch.no_grad():
        features = model.frame_features(official_video)
        logits = model(official_video)
    torch.testing.assert_close(features, official_io[f"{variant}.features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, official_io[f"{variant}.logits"], atol=ATOL, rtol=0)


def test_training_mode_matches_official_drop_path_and_dropout(variant, official_io, official_video):
    """Same seed, same random masks: the official drop path (token positions) and head dropout."""
    model = load(variant).train()
    torch.manual_seed(1234)
    with torch.no_grad():
        logits = model(official_video)
    expected = official_io[f"{variant}.train_logits"]
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=0)
    assert (expected - official_io[f"{variant}.logits"]).abs().max() > 0.1  # the masks do something


PIECES = ["temporal_adapter", "spatial_adapter", "mlp_adapter", "temporal_embedding", "adapter_scale"]


@pytest.mark.parametrize("variant, piece", [(v, p) for v in HEADS for p in PIECES] + [("ssv2", "temporal_adapter_in")])
def test_the_tolerance_catches_each_missing_piece(variant, piece, official_io):
    """Zeroing any one adapter of one block, the temporal embedding, or another adapter scale
    changes the logits by far more than the parity tolerance."""
    official_video = official_io[f"{variant}.video"].transpose(1, 2)
    model = load(variant, **({"adapter_scale": 0.75} if piece == "adapter_scale" else {}))
    block = model.clip.visual.transformer.resblocks[-1]
    with torch.no_grad():
        if piece == "temporal_embedding":
            model.temporal_embedding.zero_()
        elif piece != "adapter_scale":
            getattr(block, piece).up.weight.zero_()
            getattr(block, piece).up.bias.zero_()
    change = (logits_of(model, official_video) - official_io[f"{variant}.logits"]).abs().max().item()
    assert change > 1000 * ATOL, (piece, change)


def test_converted_names_round_trip(variant, official_video, tmp_path):
    model = load(variant)
    sd = official_state_dict(model)
    assert sorted(sd) == sorted(read_official(FIXTURES / f"official_{variant}_tiny.pth"))  # the official names
    path = tmp_path / "bare.pth"
    torch.save(sd, path)  # a bare state dict (weights_only-loadable) reads too
    torch.testing.assert_close(logits_of(load(variant, path), official_video), logits_of(model, official_video),
                               atol=0, rtol=0)


def test_load_official_entry_point_and_parameter_counts():
    model = clipvideo.load_official("aim", FIXTURES / "official_k400_tiny.pth", heads=2)
    counts = json.loads((FIXTURES / "meta.json").read_text())["variants"]["k400"]["parameter_counts"]
    assert model.parameter_counts() == counts  # the official freeze rule, counted the official way


# -- bad input: one clear line naming the file and the key ----------------------------------------


def write_modified(tmp_path, change) -> Path:
    raw = read_checkpoint(FIXTURES / "official_k400_tiny.pth")
    sd = dict(raw["state_dict"])
    change(sd)
    path = tmp_path / "modified.pth"
    torch.save({"state_dict": sd}, path)
    return path


def expect_error(path, pattern, **kwargs):
    with pytest.raises(CheckpointError, match=pattern) as info:
        load("k400", path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_tensor_is_named(tmp_path):
    path = write_modified(tmp_path, lambda sd: sd.pop("backbone.transformer.resblocks.1.S_Adapter.D_fc2.bias"))
    expect_error(path, r"missing.*resblocks\.1\.spatial_adapter\.up\.bias")


def test_unexpected_tensor_is_named(tmp_path):
    path = write_modified(tmp_path, lambda sd: sd.__setitem__("backbone.extra_token", torch.zeros(64)))
    expect_error(path, r"unexpected tensor 'backbone\.extra_token'")


def test_second_temporal_adapter_in_some_blocks_only_is_refused(tmp_path):
    """The official non-strict load would silently leave the other blocks' adapters random."""
    def add(sd):
        for name in ("D_fc1.weight", "D_fc1.bias", "D_fc2.weight", "D_fc2.bias"):
            sd[f"backbone.transformer.resblocks.0.T_Adapter_in.{name}"] = sd[f"backbone.transformer.resblocks.0.T_Adapter.{name}"]
    expect_error(write_modified(tmp_path, add), r"missing.*resblocks\.1\.temporal_adapter_in")


def test_shape_mismatch_is_named(tmp_path):
    def shrink(sd):
        sd["backbone.transformer.resblocks.1.MLP_Adapter.D_fc1.weight"] = torch.zeros(8, 64)
    expect_error(write_modified(tmp_path, shrink), r"resblocks\.1\.MLP_Adapter\.D_fc1\.weight' has shape \(8, 64\)")


def test_wrong_frame_count_and_unknown_override_are_refused():
    path = FIXTURES / "official_k400_tiny.pth"
    expect_error(path, r"temporal_embedding has 8 frames.*num_frames=16", num_frames=16)
    expect_error(path, r"unknown override 'adapter_ratio'", adapter_ratio=0.5)
    expect_error(path, r"bad override value", adapter_scale="half")
    expect_error(path, r"sampling must be 'dense' or 'segment'", sampling="uniform")
    with pytest.raises(CheckpointError, match=r"heads=3 does not divide the width 64"):
        load_official_aim(path, heads=3)


def test_not_an_aim_file(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, path)
    expect_error(path, r"not an official AIM checkpoint: missing 'backbone\.conv1\.weight'")
    expect_error(tmp_path / "absent.pth", r"no such file")
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    expect_error(damaged, r"truncated or not a checkpoint")
