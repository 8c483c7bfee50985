"""Official AIM checkpoints (taoyang1122/adapt-image-models) as clipvideo AIM models.

    model = load_official_aim("vit_b_clip_8frame_k400.pth")     # ready, eval mode
    logits = model(video)                                        # (B, T, 3, H, W) -> (B, K)

The official MMAction2 runner saves `{'meta', 'state_dict', 'optimizer'[, 'amp']}` with `torch.save`;
`meta` pickles mmcv config objects and numpy scalars, which `torch.load(weights_only=True)` rejects,
so zip files are read with X-CLIP's restricted unpickler (nothing from the file is imported or run).
The state dict holds everything, frozen CLIP included, so no CLIP file is needed.

Loading is strict, unlike the official test script's non-strict `load_checkpoint`: every tensor
must be used and every shape must fit, else a one-line CheckpointError names the key. Widths,
depth, patch size, resolution, frames, classes, the adapter bottleneck and the SSv2 variant (a
second temporal adapter, `T_Adapter_in`) come from the tensors. What shapes cannot tell has
official defaults and overrides: `heads` (width // 64), `adapter_scale` (1.0 for the SSv2 variant,
else 0.5) and the input the model expects (`sampling`: segment for SSv2, else dense;
`frame_stride`: 128 // frames), which the converted model file records for predict/test.
"""

import re
import zipfile
from pathlib import Path

import torch

from ..clip import ARCHITECTURES, CheckpointError, CLIPConfig, read_state_dict
from ..clip.checkpoint_io import read_checkpoint
from ..clip.load import unwrap_state_dict
from ..methods.aim import AIM, Config, build
from ..methods.base import BackboneConfig

# Official key -> ours, applied as the first matching regex rewrite (\1: block index).
RENAMES = [
    (r"backbone\.temporal_embedding$", "temporal_embedding"),
    (r"backbone\.transformer\.resblocks\.(\d+)\.MLP_Adapter\.D_fc1\.", r"clip.visual.transformer.resblocks.\1.mlp_adapter.down."),
    (r"backbone\.transformer\.resblocks\.(\d+)\.MLP_Adapter\.D_fc2\.", r"clip.visual.transformer.resblocks.\1.mlp_adapter.up."),
    (r"backbone\.transformer\.resblocks\.(\d+)\.S_Adapter\.D_fc1\.", r"clip.visual.transformer.resblocks.\1.spatial_adapter.down."),
    (r"backbone\.transformer\.resblocks\.(\d+)\.S_Adapter\.D_fc2\.", r"clip.visual.transformer.resblocks.\1.spatial_adapter.up."),
    (r"backbone\.transformer\.resblocks\.(\d+)\.T_Adapter\.D_fc1\.", r"clip.visual.transformer.resblocks.\1.temporal_adapter.down."),
    (r"backbone\.transformer\.resblocks\.(\d+)\.T_Adapter\.D_fc2\.", r"clip.visual.transformer.resblocks.\1.temporal_adapter.up."),
    (r"backbone\.transformer\.resblocks\.(\d+)\.T_Adapter_in\.D_fc1\.", r"clip.visual.transformer.resblocks.\1.temporal_adapter_in.down."),
    (r"backbone\.transformer\.resblocks\.(\d+)\.T_Adapter_in\.D_fc2\.", r"clip.visual.transformer.resblocks.\1.temporal_adapter_in.up."),
    (r"backbone\.", "clip.visual."),  # CLIP's own tensors keep their OpenAI names
    (r"cls_head\.fc_cls\.", "head.fc."),
]
_RENAMES = [(re.compile(pattern), replacement) for pattern, replacement in RENAMES]
_REQUIRED = ("backbone.conv1.weight", "backbone.positional_embedding", "backbone.temporal_embedding",
             "backbone.transformer.resblocks.0.T_Adapter.D_fc1.weight", "cls_head.fc_cls.weight")
# Overrides and their types (`clipvideo convert --set key=value` passes strings).
_OVERRIDABLE = {"adapter_scale": float, "sampling": str, "frame_stride": int, "drop_path_rate": float,
                "head_dropout": float, "backbone_lr_scale": float}


def rename_key(key: str) -> str | None:
    for pattern, replacement in _RENAMES:
        if pattern.match(key):
            return pattern.sub(replacement, key, count=1)
    return None


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The fp32 state dict of an official file (zip: restricted unpickling; else weights_only)."""
    path = Path(path)
    raw = read_checkpoint(path) if path.is_file() and zipfile.is_zipfile(path) else read_state_dict(path)
    sd = unwrap_state_dict(raw, path)  # ['state_dict'], "module." stripped
    # ImageNet-ViT backbone (official ViT_ImageNet): its importer checks its own keys.
    absent = [] if "backbone.patch_embed.proj.weight" in sd else [key for key in _REQUIRED if key not in sd]
    if absent:
        hint = "; it looks like a native clipvideo file: load it with clipvideo.load" if "model_config" in (raw or {}) else ""
        raise CheckpointError(
            f"{path}: not an official AIM checkpoint: missing {absent[0]!r} ({len(sd)} tensors, e.g. {sorted(sd)[:2]}){hint}"
        )
    bad = [key for key, value in sd.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: {bad[0]!r} is not a tensor")
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def _blocks(sd: dict) -> list[int]:
    pattern = re.compile(r"^backbone\.transformer\.resblocks\.(\d+)\.")
    return sorted({int(m.group(1)) for key in sd if (m := pattern.match(key))})


def read_config(sd: dict[str, torch.Tensor], path, heads: int | None, num_frames: int | None, **overrides) -> tuple[Config, int]:
    """AIM Config and class count from tensor shapes (official names), plus the overrides."""
    unknown = sorted(set(overrides) - set(_OVERRIDABLE))
    if unknown:
        raise CheckpointError(
            f"{path}: unknown override {unknown[0]!r}; valid: heads, num_frames, {', '.join(_OVERRIDABLE)}"
        )
    try:
        overrides = {key: _OVERRIDABLE[key](value) for key, value in overrides.items()}
    except ValueError as error:
        raise CheckpointError(f"{path}: bad override value ({error})") from None
    width, _, patch, _ = sd["backbone.conv1.weight"].shape
    rows = sd["backbone.positional_embedding"].shape[0] - 1
    grid = int(round(rows**0.5))
    if grid * grid != rows:
        raise CheckpointError(f"{path}: backbone.positional_embedding has {rows} patch rows, not a square grid")
    layers = _blocks(sd)
    if layers != list(range(len(layers))):
        raise CheckpointError(f"{path}: blocks {layers} are not numbered 0..L-1 (backbone.transformer.resblocks.*)")
    heads = heads or max(1, width // 64)  # the official released models: 12 (B/16), 16 (L/14)
    if width % heads:
        raise CheckpointError(f"{path}: heads={heads} does not divide the width {width}")
    trained_frames = sd["backbone.temporal_embedding"].shape[1]
    if num_frames is not None and num_frames != trained_frames:
        raise CheckpointError(
            f"{path}: backbone.temporal_embedding has {trained_frames} frames, so the model takes {trained_frames} "
            f"frames, not num_frames={num_frames} (AIM does not resize its temporal embedding)"
        )
    hidden = sd["backbone.transformer.resblocks.0.T_Adapter.D_fc1.weight"].shape[0]
    second = any(".T_Adapter_in." in key for key in sd)
    mlp_hidden = sd["backbone.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
    arch = CLIPConfig(embed_dim=width, image_resolution=grid * patch, vision_width=width, vision_layers=len(layers),
                      vision_heads=heads, vision_patch_size=patch, mlp_ratio=mlp_hidden / width)
    vision = ("image_resolution", "vision_width", "vision_layers", "vision_heads", "vision_patch_size")
    name = next((n for n, a in ARCHITECTURES.items() if all(getattr(a, k) == getattr(arch, k) for k in vision)), "custom")
    defaults = {"adapter_scale": 1.0 if second else 0.5, "sampling": "segment" if second else "dense"}
    config = Config(
        backbone=BackboneConfig(arch=name, heads=heads, architecture=arch.to_dict()),
        num_frames=trained_frames,
        adapter_ratio=hidden / width,
        second_temporal_adapter=second,
        **{**defaults, **overrides},
    )
    if int(width * config.adapter_ratio) != hidden:
        raise CheckpointError(f"{path}: adapter width {hidden} is not int({width} * ratio) for any ratio we can store")
    return config, sd["cls_head.fc_cls.weight"].shape[0]


def load_into(model: AIM, sd: dict[str, torch.Tensor], path) -> AIM:
    """Strict load (official names): every tensor used, every parameter filled, every shape checked."""
    target = model.state_dict()
    ours = {}
    for key, value in sd.items():
        new = rename_key(key)
        if new is None or new not in target:
            raise CheckpointError(f"{path}: unexpected tensor {key!r} {tuple(value.shape)}: not part of this AIM model")
        if value.shape != target[new].shape:
            raise CheckpointError(
                f"{path}: {key!r} has shape {tuple(value.shape)}, the model expects {tuple(target[new].shape)}"
            )
        ours[new] = value
    missing = [key for key in target if key not in ours]
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} tensors missing, e.g. {missing[0]!r} (ours); truncated or another model?")
    model.load_state_dict(ours, strict=True)
    return model.eval()


def load_official_aim(path: str | Path, heads: int | None = None, num_frames: int | None = None, **overrides) -> AIM:
    """An official AIM checkpoint in eval mode. Overrides: heads, num_frames (checked against the
    temporal embedding), adapter_scale, sampling, frame_stride, drop_path_rate, head_dropout,
    backbone_lr_scale. Files of the ImageNet-ViT backbone give an aim_timm model
    (clipvideo/official/aim_timm.py)."""
    sd = read_official(path)
    if "backbone.patch_embed.proj.weight" in sd:  # the ImageNet-ViT backbone: an aim_timm model
        from .aim_timm import load_official_aim_vit

        return load_official_aim_vit(sd, path, heads, num_frames, **overrides)
    config, num_classes = read_config(sd, path, heads, num_frames, **overrides)
    try:
        model = build(config, num_classes)
    except ValueError as error:  # an override the model refuses (e.g. sampling=uniform)
        raise CheckpointError(f"{path}: {error}") from None
    return load_into(model, sd, path)


def official_state_dict(model: AIM) -> dict[str, torch.Tensor]:
    """Our AIM state dict under the official names (the inverse of the import), e.g. to run the
    official test script on a model trained here."""
    inverse = {}
    for key, value in model.state_dict().items():
        out = key.replace("clip.visual.", "backbone.", 1) if key.startswith("clip.visual.") else key
        for ours, theirs in ((".mlp_adapter.", ".MLP_Adapter."), (".spatial_adapter.", ".S_Adapter."),
                             (".temporal_adapter_in.", ".T_Adapter_in."), (".temporal_adapter.", ".T_Adapter.")):
            out = out.replace(ours, theirs)
        out = out.replace("_Adapter.down.", "_Adapter.D_fc1.").replace("_Adapter.up.", "_Adapter.D_fc2.")
        out = out.replace("_Adapter_in.down.", "_Adapter_in.D_fc1.").replace("_Adapter_in.up.", "_Adapter_in.D_fc2.")
        out = {"temporal_embedding": "backbone.temporal_embedding"}.get(out, out)
        out = out.replace("head.fc.", "cls_head.fc_cls.", 1) if out.startswith("head.fc.") else out
        inverse[out] = value
    return inverse


__all__ = ["load_official_aim", "official_state_dict", "read_official", "rename_key"]
