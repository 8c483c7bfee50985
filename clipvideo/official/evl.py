"""Official EVL checkpoints (OpenGVLab/efficient-video-recognition) as clipvideo EVL models.

    model = load_official_evl("k400_vitb16_8f_dec4x768.pth", backbone="ViT-B-16.pt")

The official training code saves `{"model": DDP state dict ("module." keys), "optimizer", ...}`
and the released Kinetics-400 files hold the same `model` entry; a bare state dict (with or
without "module.") loads too. Neither holds the frozen backbone: it comes from the OpenAI CLIP
file the model was trained on (TorchScript archive or state dict). Decoder depth, frames,
classes, widths and which temporal modules exist are read from tensor shapes; the head counts
(`heads` for the backbone, `decoder_heads` for the decoder) cannot be, and default to width // 64
as in every official recipe.
"""

import re
from pathlib import Path

import torch

from ..clip import ARCHITECTURES, CheckpointError, clip_state_dict, config_from_state_dict, load_weights, read_state_dict
from ..methods.base import BackboneConfig
from ..methods.evl import EVL, Config, build

# Official key (after "module.") -> ours; \1 is the decoder layer. Applied as prefix rewrites.
RENAMES = [
    (r"decoder\.cls_token$", "query_token"),
    (r"decoder\.decoder_layers\.(\d+)\.norm1\.", r"decoder.\1.query_norm."),
    (r"decoder\.decoder_layers\.(\d+)\.norm2\.", r"decoder.\1.mlp_norm."),
    (r"decoder\.decoder_layers\.(\d+)\.norm3\.", r"decoder.\1.memory_norm."),
    (r"decoder\.decoder_layers\.(\d+)\.attn\.", r"decoder.\1.attn."),
    (r"decoder\.decoder_layers\.(\d+)\.mlp\.", r"decoder.\1.mlp."),
    (r"decoder\.temporal_conv\.(\d+)\.", r"decoder.\1.temporal_conv."),
    (r"decoder\.temporal_pos_embed\.(\d+)$", r"decoder.\1.temporal_embedding"),
    (r"decoder\.cross_attention\.(\d+)\.w1$", r"decoder.\1.temporal_cross_attention.w_prev"),
    (r"decoder\.cross_attention\.(\d+)\.w2$", r"decoder.\1.temporal_cross_attention.w_next"),
    (r"proj\.0\.", "head.norm."),
    (r"proj\.2\.", "head.fc."),
]
_RENAMES = [(re.compile(pattern), replacement) for pattern, replacement in RENAMES]


def rename_key(key: str) -> str | None:
    for pattern, replacement in _RENAMES:
        if pattern.match(key):
            return pattern.sub(replacement, key, count=1)
    return None


def _layer_indices(sd: dict[str, torch.Tensor], prefix: str) -> list[int]:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.")
    return sorted({int(m.group(1)) for key in sd if (m := pattern.match(key + "."))})


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The decoder and head tensors of an official checkpoint, "module." stripped."""
    sd = read_state_dict(path)  # unwraps ckpt["model"] and strips "module."
    if "decoder.cls_token" not in sd:
        hint = ""
        if "query_token" in sd:
            hint = "; it looks like a native clipvideo checkpoint: load it with clipvideo.load"
        sample = ", ".join(sorted(sd)[:3])
        raise CheckpointError(
            f"{path}: not an official EVL checkpoint: no 'decoder.cls_token' key (found {len(sd)} keys such as {sample}){hint}"
        )
    if any(key.startswith("backbone.") for key in sd):
        raise CheckpointError(
            f"{path}: holds 'backbone.*' weights (official finetune mode, which cannot train as shipped); "
            "only frozen-backbone checkpoints are supported"
        )
    return sd


def read_hyperparameters(sd: dict[str, torch.Tensor], path: str | Path, num_frames: int | None) -> dict:
    """Decoder depth, widths, frames, classes and present temporal modules, from shapes."""
    layers = _layer_indices(sd, "decoder.decoder_layers.")
    if layers != list(range(len(layers))) or not layers:
        raise CheckpointError(f"{path}: decoder layers {layers} are not numbered 0..K-1 (decoder.decoder_layers.*)")
    depth = len(layers)
    modules = {
        "temporal_conv": "decoder.temporal_conv.",
        "temporal_embedding": "decoder.temporal_pos_embed.",
        "temporal_cross_attention": "decoder.cross_attention.",
    }
    present = {}
    for name, prefix in modules.items():
        found = _layer_indices(sd, prefix)
        if found and found != layers:
            raise CheckpointError(f"{path}: {prefix}* exists for layers {found} but the decoder has layers {layers}")
        present[name] = bool(found)
    width = sd["decoder.cls_token"].shape[0]
    if present["temporal_embedding"]:
        rows = sd["decoder.temporal_pos_embed.0"].shape[0]
        if num_frames is not None and num_frames != rows:
            raise CheckpointError(
                f"{path}: decoder.temporal_pos_embed.0 has {rows} rows, so the model takes {rows} frames, not num_frames={num_frames}"
            )
        num_frames = rows
    if "proj.2.weight" not in sd:
        raise CheckpointError(f"{path}: no classifier 'proj.2.weight' in the EVL checkpoint")
    return dict(
        decoder_layers=depth,
        width=width,
        decoder_qkv_dim=sd["decoder.decoder_layers.0.attn.q_proj.weight"].shape[0],
        decoder_mlp_ratio=sd["decoder.decoder_layers.0.mlp.fc1.weight"].shape[0] / width,
        num_classes=sd["proj.2.weight"].shape[0],
        num_frames=num_frames or 8,
        **present,
    )


def _architecture_name(config) -> str:
    """The named CLIP architecture with this image tower, for readable configs; else "custom"."""
    keys = ("image_resolution", "vision_width", "vision_layers", "vision_heads", "vision_patch_size")
    for name, arch in ARCHITECTURES.items():
        if all(getattr(arch, k) == getattr(config, k) for k in keys):
            return name
    return "custom"


def load_official_evl(
    checkpoint_path: str | Path,
    backbone: str | Path | None = None,
    *,
    heads: int | None = None,
    decoder_heads: int | None = None,
    num_frames: int | None = None,
    quick_gelu: bool = True,
    backbone_precision: str = "fp32",
    class_names: list[str] | None = None,
) -> EVL:
    """An official EVL checkpoint plus its OpenAI CLIP backbone -> EVL model in eval mode.

    heads: backbone attention heads (default width // 64). decoder_heads: decoder heads, independent
    of the backbone's (default qkv width // 64). num_frames: only needed, and only checked, when the
    checkpoint has no temporal position embedding. backbone_precision "fp16" is the official
    `freeze_fp16` mode behind the published numbers. The returned model's `config` and
    `state_dict()` are a complete native checkpoint (the backbone is included).
    """
    official = read_official(checkpoint_path)
    hyper = read_hyperparameters(official, checkpoint_path, num_frames)
    if backbone is None:
        raise CheckpointError(
            f"{checkpoint_path}: EVL checkpoints do not contain the CLIP backbone; pass backbone=<OpenAI CLIP file, e.g. ViT-B-16.pt>"
        )
    clip_sd = clip_state_dict(read_state_dict(backbone), backbone)
    architecture = config_from_state_dict(clip_sd, heads=heads, quick_gelu=quick_gelu, path=backbone)
    width = hyper.pop("width")
    if architecture.vision_width != width:
        raise CheckpointError(
            f"{checkpoint_path}: decoder width {width} (decoder.cls_token) does not match the width "
            f"{architecture.vision_width} of the backbone {backbone}; use the CLIP model EVL was trained on"
        )
    if hyper["decoder_layers"] > architecture.vision_layers:
        raise CheckpointError(
            f"{checkpoint_path}: {hyper['decoder_layers']} decoder layers need as many backbone blocks, "
            f"but {backbone} has {architecture.vision_layers}"
        )
    grid = architecture.image_resolution // architecture.vision_patch_size
    if hyper["temporal_cross_attention"]:
        rows = official["decoder.cross_attention.0.w1"].shape[0]
        if rows != (2 * grid - 1) ** 2:
            raise CheckpointError(
                f"{checkpoint_path}: decoder.cross_attention.0.w1 has {rows} rows, but the {grid}x{grid} patch grid of "
                f"{backbone} needs {(2 * grid - 1) ** 2}; use the CLIP model and input size EVL was trained on"
            )

    num_classes = hyper.pop("num_classes")
    config = Config(
        backbone=BackboneConfig(
            arch=_architecture_name(architecture),
            heads=architecture.vision_heads,
            quick_gelu=quick_gelu,
            architecture=architecture.to_dict(),
        ),
        decoder_heads=decoder_heads,
        backbone_precision=backbone_precision,
        **hyper,
    )
    model = build(config, num_classes, class_names)

    visual = {k: v for k, v in clip_sd.items() if k.startswith("visual.") and k != "visual.proj"}
    load_weights(model.clip, visual, path=backbone)
    load_decoder(model, official, checkpoint_path)
    return model.eval()


def load_decoder(model: EVL, official: dict[str, torch.Tensor], path: str | Path) -> None:
    """Copy decoder and head: every official key used, every target filled, every shape equal."""
    targets = {k: v for k, v in model.state_dict().items() if not k.startswith("clip.")}
    mapped, unused = {}, []
    for key, value in official.items():
        ours = rename_key(key)
        if ours is None or ours not in targets:
            unused.append(key)
            continue
        if value.shape != targets[ours].shape:
            raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, the model expects {tuple(targets[ours].shape)} for {ours}")
        mapped[ours] = value
    missing = sorted(set(targets) - set(mapped))
    if unused or missing:
        raise CheckpointError(f"{path}: EVL keys do not fit: {len(unused)} unused (e.g. {unused[:3]}), {len(missing)} missing (e.g. {missing[:3]})")
    model.load_state_dict(mapped, strict=False)
