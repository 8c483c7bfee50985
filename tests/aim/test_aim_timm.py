"""AIM on a timm ViT (clipvideo/methods/aim_timm.py): parity with the official ViT_ImageNet AIM,
official ImageNet-ViT checkpoints through `load_official("aim", ...)`, and timm ViT weight files.

The fixtures are the official ViT_ImageNet + I3DHead run on two tiny random models
(tests/fixtures/aim_imagenet/README.md): the vit_imagenet_k400 layout and the vit_imagenet_ssv2 one
(a second temporal adapter). Every test below can fail: zeroing one adapter moves the logits by far
more than the 2e-6 tolerance.
"""

import json
from pathlib import Path

import pytest
import torch

import clipvideo
from clipvideo.clip import CheckpointError
from clipvideo.methods.aim_timm import AIMViT, Config, ViTBackboneConfig, build
from clipvideo.official.aim import load_official_aim, read_official
from clipvideo.official.aim_timm import official_state_dict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aim_imagenet"
HEADS = {"k400": 2, "ssv2": 4}  # what the fixtures were built with (shapes cannot tell)
ATOL = 2e-6


@pytest.fixture(scope="module")
def official_io() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / "io_tiny.pt", weights_only=True)


@pytest.fixture(params=list(HEADS))
def imagenet_variant(request) -> str:
    return request.param


def load(variant, path=None, **overrides) -> AIMViT:
    return load_official_aim(path or FIXTURES / f"official_{variant}_tiny.pth", heads=HEADS[variant], **overrides)


def video_of(official_io, variant) -> torch.Tensor:
    return official_io[f"{variant}.video"].transpose(1, 2)  # official (B, 3, T, H, W) -> ours (B, T, 3, H, W)


def test_logits_and_features_match_the_official_model(imagenet_variant, official_io):
    model = load(imagenet_variant)
    assert isinstance(model, AIMViT) and not model.training
    assert model.config.second_temporal_adapter == (imagenet_variant == "ssv2")  # from the T_Adapter_in keys
    video = video_of(official_io, imagenet_variant)
    with torch.no_grad():
        features = model.frame_features(video)
        logits = model(video)
    torch.testing.assert_close(features, official_io[f"{imagenet_variant}.features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, official_io[f"{imagenet_variant}.logits"], atol=ATOL, rtol=0)


def test_training_mode_matches_official_drop_path_and_dropout(imagenet_variant, official_io):
    """Same seed, same masks: timm's DropPath on whole frames and the head's dropout 0.5."""
    model = load(imagenet_variant).train()
    torch.manual_seed(1234)
    with torch.no_grad():
        logits = model(video_of(official_io, imagenet_variant))
    expected = official_io[f"{imagenet_variant}.train_logits"]
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=0)
    assert (expected - official_io[f"{imagenet_variant}.logits"]).abs().max() > 0.1  # the masks do something


PIECES = ["temporal_adapter", "spatial_adapter", "mlp_adapter", "temporal_embedding", "adapter_scale"]


@pytest.mark.parametrize("variant, piece", [(v, p) for v in HEADS for p in PIECES] + [("ssv2", "temporal_adapter_in")])
@pytest.mark.parametrize("block_index", [0, -1])
def test_zeroing_any_adapter_moves_the_logits(variant, piece, block_index, official_io):
    model = load(variant, **({"adapter_scale": 0.75} if piece == "adapter_scale" else {}))
    block = model.vit.blocks[block_index]
    with torch.no_grad():
        if piece == "temporal_embedding":
            model.temporal_embedding.zero_()
        elif piece != "adapter_scale":
            getattr(block, piece).up.weight.zero_()
            getattr(block, piece).up.bias.zero_()
        logits = model(video_of(official_io, variant))
    change = (logits - official_io[f"{variant}.logits"]).abs().max().item()
    assert change > 1000 * ATOL, (piece, change)


def test_parameter_counts_and_freezing_follow_the_official_rule(imagenet_variant):
    model = clipvideo.load_official("aim", FIXTURES / f"official_{imagenet_variant}_tiny.pth", heads=HEADS[imagenet_variant])
    meta = json.loads((FIXTURES / "meta.json").read_text())["variants"][imagenet_variant]
    assert model.parameter_counts() == meta["parameter_counts"]  # trainable: adapters, temporal emb., ln_post, head
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert "vit.norm.weight" in trainable and "vit.blocks.0.attn.qkv.weight" not in trainable
    groups = {name: group["weight_decay"] for group in model.param_groups(0.05) for name in group["names"]}
    assert groups["vit.norm.weight"] == 0.0 and groups["vit.blocks.0.mlp_adapter.down.bias"] == 0.05  # mmcv custom_keys


def test_official_names_round_trip(imagenet_variant, official_io, tmp_path):
    model = load(imagenet_variant)
    sd = official_state_dict(model)
    assert sorted(sd) == sorted(read_official(FIXTURES / f"official_{imagenet_variant}_tiny.pth"))
    path = tmp_path / "bare.pth"
    torch.save(sd, path)
    video = video_of(official_io, imagenet_variant)
    with torch.no_grad():
        torch.testing.assert_close(load(imagenet_variant, path)(video), model(video), atol=0, rtol=0)


def test_bad_official_files_give_one_line_naming_file_and_key(tmp_path):
    sd = dict(torch.load(FIXTURES / "official_k400_tiny.pth", weights_only=True)["state_dict"])
    sd.pop("backbone.blocks.1.S_Adapter.D_fc2.bias")
    path = tmp_path / "damaged.pth"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointError, match=r"missing.*vit\.blocks\.1\.spatial_adapter\.up\.bias") as info:
        load("k400", path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match=r"temporal_embedding has 4 frames.*num_frames=8"):
        load("k400", num_frames=8)
    with pytest.raises(CheckpointError, match=r"unknown override 'adapter_ratio'"):
        load("k400", adapter_ratio=0.5)


# -- timm ViT weight files (the jx_vit_* files are timm state dicts) --------------------------------


def tiny_timm_vit(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, num_classes=10):
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                            num_heads=num_heads, num_classes=num_classes)
    with torch.no_grad():  # non-trivial norms and tokens, so a wrong mapping shows
        for name, p in vit.named_parameters():
            if p.ndim == 1 or "token" in name or "pos_embed" in name:
                p.add_(0.2 * torch.randn_like(p))
    return vit.eval()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_fresh_model_from_a_timm_file_is_the_frame_wise_vit(tmp_path, suffix):
    """Adapters' second layers and the temporal embedding start at zero: AIM = timm's ViT per frame."""
    vit = tiny_timm_vit()
    path = tmp_path / f"jx_vit_tiny{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(vit.state_dict(), str(path))
    else:
        torch.save(vit.state_dict(), path)  # the image classifier's head is in the file and ignored
    model = build(Config(backbone=ViTBackboneConfig(pretrained=str(path), heads=2), num_frames=4), num_classes=3).eval()
    assert model.config.backbone.architecture == {"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2,
                                                  "num_heads": 2, "mlp_ratio": 4.0, "qkv_bias": True}
    video = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        expected = vit.forward_features(video.flatten(0, 1))[:, 0].view(2, 4, -1)
        torch.testing.assert_close(model.frame_features(video), expected, atol=1e-5, rtol=0)
    assert not any(p.requires_grad for p in model.vit.blocks[0].attn.parameters())


def test_other_resolution_resamples_the_positions_the_timm_way(tmp_path):
    vit = tiny_timm_vit()
    path = tmp_path / "vit.pth"
    torch.save(vit.state_dict(), path)
    model = build(Config(backbone=ViTBackboneConfig(pretrained=str(path), heads=2, image_resolution=48), num_frames=2), 3)
    assert model.vit.pos_embed.shape == (1, 1 + 9, 32)
    assert model.input_config()["data"]["input_size"] == 48
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 2, 3, 48, 48)).shape == (1, 3)
    with pytest.raises(ValueError, match=r"takes 48x48 frames, got 32x32"):
        model(torch.randn(1, 2, 3, 32, 32))


def test_named_timm_architecture_without_weights():
    model = build(Config(backbone=ViTBackboneConfig(arch="vit_small_patch32_224", image_resolution=64), num_frames=2), 4)
    arch = model.config.backbone.architecture
    assert (arch["embed_dim"], arch["depth"], arch["num_heads"], arch["patch_size"], arch["img_size"]) == (384, 12, 6, 32, 64)
    with pytest.raises(ValueError, match=r"'vit_nonexistent' is not a timm model"):
        build(Config(backbone=ViTBackboneConfig(arch="vit_nonexistent")), 4)
    with pytest.raises(ValueError, match=r"'vit_base_patch16_clip_224' is not a ViT of the standard layout.*norm_pre"):
        build(Config(backbone=ViTBackboneConfig(arch="vit_base_patch16_clip_224")), 4)  # CLIP towers: method aim


def test_non_standard_vit_files_are_refused_with_the_key(tmp_path):
    sd = tiny_timm_vit().state_dict()
    sd["reg_token"] = torch.zeros(1, 4, 32)  # register tokens: not the standard layout
    path = tmp_path / "regs.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"unexpected tensor 'reg_token'") as info:
        build(Config(backbone=ViTBackboneConfig(pretrained=str(path))), 3)
    assert str(path) in str(info.value)
    sd = tiny_timm_vit().state_dict()
    sd.pop("norm.weight")
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"no 'norm\.weight'"):
        build(Config(backbone=ViTBackboneConfig(pretrained=str(path))), 3)


# -- recipes of the two official ImageNet-ViT configs -----------------------------------------------

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "aim"


@pytest.mark.parametrize("stem, classes, counts", [
    ("imagenet_k400_b16_8f", 400, (96_763_792, 10_966_672)),
    ("imagenet_ssv2_b16_8f", 174, (100_140_462, 14_343_342)),
])
def test_imagenet_recipes_follow_the_official_configs(stem, classes, counts):
    from clipvideo.engine.config import load_config, method_config

    config = load_config(RECIPES / f"{stem}.yaml")
    assert config.method == "aim_timm"
    model_config = method_config("aim_timm", config.model)
    data, train, test = config.data, config.train, config.test
    assert model_config.backbone.pretrained == "jx_vit_base_p16_224-80ecf9dd.pth"  # the official file name
    assert data.normalization == model_config.normalization == "imagenet"  # vit_imagenet_*.py img_norm_cfg
    assert model_config.num_frames == data.num_frames == 8
    assert (model_config.drop_path_rate, model_config.head_dropout) == (0.2, 0.5)
    assert (train.lr, train.weight_decay, train.warmup_epochs) == (3e-4, 0.05, 2.5)
    ssv2 = "ssv2" in stem
    assert (model_config.second_temporal_adapter, model_config.adapter_scale) == ((True, 1.0) if ssv2 else (False, 0.5))
    assert train.epochs == (50 if ssv2 else 30) and train.label_smoothing == (0.1 if ssv2 else 0.0)
    assert data.sampling == model_config.sampling == ("segment" if ssv2 else "dense")
    assert ssv2 or data.frame_stride == model_config.frame_stride == 16  # Kinetics 8 x 16
    assert (test.num_clips, test.num_crops, test.views_per_batch) == ((1, 3, 2) if ssv2 else (3, 1, 4))
    model_config.backbone.pretrained = None  # random weights of the same architecture, no memory
    with torch.device("meta"):
        model = build(model_config, classes)
    assert (model.parameter_counts()["total"], model.parameter_counts()["tunable"]) == counts


def test_convert_writes_a_native_file_that_reloads_with_imagenet_input(official_io, tmp_path):
    from clipvideo.cli import main
    from clipvideo.engine.checkpoint import read_checkpoint

    destination = tmp_path / "aim_imagenet_tiny.pt"
    args = ["convert", "aim", str(FIXTURES / "official_k400_tiny.pth"), str(destination), "--set", "heads=2",
            "--classes", "a,b,c,d,e"]
    assert main(args) == 0
    payload = read_checkpoint(destination)
    assert payload["method"] == "aim_timm"
    assert payload["config"]["data"] == {"num_frames": 4, "sampling": "dense", "sampling_protocol": "aim",
                                         "input_size": 32, "short_side": 32, "normalization": "imagenet",
                                         "frame_stride": 32, "out_of_bounds": "loop"}
    model = clipvideo.load(destination)  # rebuilt from the recorded architecture, no weight file needed
    assert isinstance(model, AIMViT) and model.class_names == ["a", "b", "c", "d", "e"]
    with torch.no_grad():
        torch.testing.assert_close(model(video_of(official_io, "k400")), official_io["k400.logits"], atol=ATOL, rtol=0)
