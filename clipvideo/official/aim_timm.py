"""Official AIM checkpoints of the ImageNet-ViT backbone (`ViT_ImageNet`) as clipvideo `aim_timm` models.

`clipvideo.load_official("aim", path)` comes here when the file holds `backbone.patch_embed.*`
(the official configs vit_imagenet_k400.py / vit_imagenet_ssv2.py) instead of CLIP's `backbone.conv1.*`.
The container and its reading are those of AIM on CLIP (clipvideo/official/aim.py); loading is
strict, and the architecture comes from the tensors: width, depth, patch, grid, MLP width, qkv
bias, frames, classes, adapter width and the SSv2 variant (`T_Adapter_in`). Not in the shapes, with
official defaults and overrides: `heads` (width // 64), `adapter_scale` (1.0 for the SSv2 variant,
else 0.5), `sampling` (segment for the SSv2 variant, else dense), `frame_stride` (128 // frames).
"""

import re

import torch

from ..clip import CheckpointError
from ..methods.aim_timm import AIMViT, Config, ViTBackboneConfig, build, vit_architecture

LAYOUT_KEY = "backbone.patch_embed.proj.weight"  # ViT_ImageNet; AIM on CLIP has backbone.conv1.weight
_ADAPTERS = {"MLP_Adapter": "mlp_adapter", "S_Adapter": "spatial_adapter", "T_Adapter": "temporal_adapter",
             "T_Adapter_in": "temporal_adapter_in"}
_LAYERS = {"D_fc1": "down", "D_fc2": "up"}
_ADAPTER_KEY = re.compile(r"^backbone\.blocks\.(\d+)\.(MLP_Adapter|S_Adapter|T_Adapter|T_Adapter_in)\.(D_fc1|D_fc2)\.(weight|bias)$")
_REQUIRED = ("backbone.pos_embed", "backbone.cls_token", "backbone.temporal_embedding", "backbone.ln_post.weight",
             "backbone.blocks.0.T_Adapter.D_fc1.weight", "cls_head.fc_cls.weight")
_OVERRIDABLE = {"adapter_scale": float, "sampling": str, "frame_stride": int, "drop_path_rate": float,
                "head_dropout": float, "backbone_lr_scale": float}
# The timm names of the standard ViTs, to record a readable `arch` (the architecture dict is what rebuilds).
_TIMM_NAMES = {(192, 12): "vit_tiny", (384, 12): "vit_small", (768, 12): "vit_base", (1024, 24): "vit_large"}


def is_vit_layout(sd: dict) -> bool:
    return LAYOUT_KEY in sd


def rename_key(key: str) -> str | None:
    """Official ViT_ImageNet name -> ours (None: not part of the model)."""
    if m := _ADAPTER_KEY.match(key):
        block, adapter, layer, kind = m.groups()
        return f"vit.blocks.{block}.{_ADAPTERS[adapter]}.{_LAYERS[layer]}.{kind}"
    if key == "backbone.temporal_embedding":
        return "temporal_embedding"
    if key.startswith("backbone.ln_post."):
        return "vit.norm." + key[len("backbone.ln_post."):]
    if key.startswith("backbone."):
        return "vit." + key[len("backbone."):]
    if key.startswith("cls_head.fc_cls."):
        return "head.fc." + key[len("cls_head.fc_cls."):]
    return None


def read_config(sd: dict[str, torch.Tensor], path, heads: int | None, num_frames: int | None, **overrides) -> tuple[Config, int]:
    """aim_timm Config and class count from tensor shapes (official names), plus the overrides."""
    absent = [key for key in _REQUIRED if key not in sd]
    if absent:
        raise CheckpointError(f"{path}: not an official AIM ImageNet-ViT checkpoint: missing {absent[0]!r}")
    unknown = sorted(set(overrides) - set(_OVERRIDABLE))
    if unknown:
        raise CheckpointError(f"{path}: unknown override {unknown[0]!r}; valid: heads, num_frames, {', '.join(_OVERRIDABLE)}")
    try:
        overrides = {key: _OVERRIDABLE[key](value) for key, value in overrides.items()}
    except ValueError as error:
        raise CheckpointError(f"{path}: bad override value ({error})") from None
    # The image model's tensors under timm's names (official ln_post = timm's final norm).
    image_model = {rename_key(k)[len("vit."):]: v for k, v in sd.items() if k.startswith("backbone.") and "_Adapter" not in k
                   and k != "backbone.temporal_embedding"}
    architecture = vit_architecture(image_model, path, heads)
    trained_frames = sd["backbone.temporal_embedding"].shape[1]
    if num_frames is not None and num_frames != trained_frames:
        raise CheckpointError(
            f"{path}: backbone.temporal_embedding has {trained_frames} frames, so the model takes {trained_frames} "
            f"frames, not num_frames={num_frames} (AIM does not resize its temporal embedding)"
        )
    width = architecture["embed_dim"]
    hidden = sd["backbone.blocks.0.T_Adapter.D_fc1.weight"].shape[0]
    second = any(".T_Adapter_in." in key for key in sd)
    family = _TIMM_NAMES.get((width, architecture["depth"]))
    name = f"{family}_patch{architecture['patch_size']}_{architecture['img_size']}" if family else "custom"
    defaults = {"adapter_scale": 1.0 if second else 0.5, "sampling": "segment" if second else "dense"}
    config = Config(backbone=ViTBackboneConfig(arch=name, heads=architecture["num_heads"], architecture=architecture),
                    num_frames=trained_frames, adapter_ratio=hidden / width, second_temporal_adapter=second,
                    **{**defaults, **overrides})
    if int(width * config.adapter_ratio) != hidden:
        raise CheckpointError(f"{path}: adapter width {hidden} is not int({width} * ratio) for any ratio we can store")
    return config, sd["cls_head.fc_cls.weight"].shape[0]


def load_into(model: AIMViT, sd: dict[str, torch.Tensor], path) -> AIMViT:
    """Strict load (official names): every tensor used, every parameter filled, every shape checked."""
    target = model.state_dict()
    ours = {}
    for key, value in sd.items():
        new = rename_key(key)
        if new is None or new not in target:
            raise CheckpointError(f"{path}: unexpected tensor {key!r} {tuple(value.shape)}: not part of this AIM model")
        if value.shape != target[new].shape:
            raise CheckpointError(f"{path}: {key!r} has shape {tuple(value.shape)}, the model expects {tuple(target[new].shape)}")
        ours[new] = value
    missing = [key for key in target if key not in ours]
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} tensors missing, e.g. {missing[0]!r} (ours); truncated or another model?")
    model.load_state_dict(ours, strict=True)
    return model.eval()


def load_official_aim_vit(sd: dict[str, torch.Tensor], path, heads: int | None = None, num_frames: int | None = None,
                          **overrides) -> AIMViT:
    """An official ViT_ImageNet AIM state dict (read by clipvideo.official.aim.read_official) in eval mode."""
    config, num_classes = read_config(sd, path, heads, num_frames, **overrides)
    try:
        model = build(config, num_classes)
    except ValueError as error:  # an override the model refuses
        raise CheckpointError(f"{path}: {error}") from None
    return load_into(model, sd, path)


def official_state_dict(model: AIMViT) -> dict[str, torch.Tensor]:
    """Our aim_timm state dict under the official ViT_ImageNet names (the inverse of the import)."""
    adapters = {ours: theirs for theirs, ours in _ADAPTERS.items()}
    layers = {ours: theirs for theirs, ours in _LAYERS.items()}
    out = {}
    for key, value in model.state_dict().items():
        if m := re.match(r"^vit\.blocks\.(\d+)\.(\w+_adapter(?:_in)?)\.(down|up)\.(weight|bias)$", key):
            block, adapter, layer, kind = m.groups()
            name = f"backbone.blocks.{block}.{adapters[adapter]}.{layers[layer]}.{kind}"
        elif key == "temporal_embedding":
            name = "backbone.temporal_embedding"
        elif key.startswith("vit.norm."):
            name = "backbone.ln_post." + key[len("vit.norm."):]
        elif key.startswith("vit."):
            name = "backbone." + key[len("vit."):]
        else:
            name = "cls_head.fc_cls." + key[len("head.fc."):]
        out[name] = value
    return out


__all__ = ["is_vit_layout", "load_official_aim_vit", "official_state_dict", "rename_key"]
