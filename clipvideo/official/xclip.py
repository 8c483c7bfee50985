"""Official X-CLIP checkpoints: microsoft/VideoX training files and Hugging Face `XCLIPModel` folders.

    model = load_official_xclip("k400_32_8.pth")          # official .pth (yacs config inside)
    model = load_official_hf_xclip("xclip-base-patch32/")  # transformers folder: config.json + weights
    model.set_class_names(["eating spaghetti", "playing sports"])
    logits = model(video)                                  # (B, T, 3, H, W) -> (B, K)

Official training files pickle a yacs `CfgNode` next to the weights, which `torch.load(weights_only=True)`
rejects; `read_checkpoint` (clipvideo.clip.checkpoint_io, re-exported here) reads them without
importing or running anything from the file, and yacs is not needed.

Input conventions differ (see docs/xclip.md): official models expect ImageNet mean/std on 0-255
(short side 256, centre crop 224); Hugging Face models give the outputs of transformers'
`XCLIPModel` for the `pixel_values` its processor makes (its `preprocessor_config.json`;
the converter's defaults are mean = std = 0.5 on 0-1 after a 224 short-side resize).
"""

import json
import re
import warnings
import zipfile
from pathlib import Path

import torch

from ..clip import ARCHITECTURES, CheckpointError, config_from_state_dict, read_state_dict
# PickledObject and plain are re-exported: this module was their home (docs/xclip.md).
from ..clip.checkpoint_io import PickledObject, plain, read_checkpoint  # noqa: F401
from ..clip.load import unwrap_state_dict
from ..methods.base import BackboneConfig
from ..methods.xclip import XCLIP, Config, build, frame_count_warning, resize_temporal_embedding

# ---------------------------------------------------------------------------------------------
# Official microsoft/VideoX checkpoints

_REQUIRED = ("visual.conv1.weight", "token_embedding.weight", "mit.positional_embedding", "prompts_generator.alpha")


def _count(sd: dict, pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for key in sd if (m := regex.match(key))})


def _to_ours(key: str) -> str:
    """Official names are ours, with the CLIP part under `clip.`."""
    return key if key.startswith(("mit.", "prompts_")) else f"clip.{key}"


def _load_into(model: XCLIP, sd: dict[str, torch.Tensor], path) -> XCLIP:
    """Strict load of a state dict already in our names: every key used, every parameter filled."""
    target = model.state_dict()
    unexpected = sorted(set(sd) - set(target))
    missing = sorted(set(target) - set(sd))
    if unexpected or missing:
        raise CheckpointError(
            f"{path}: keys do not match X-CLIP: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in sd.items() if v.shape != target[k].shape]
    if wrong:
        raise CheckpointError(f"{path}: shape mismatch for {len(wrong)} tensors, e.g. {wrong[0]} (file vs model)")
    model.load_state_dict(sd, strict=True)
    return model.eval()


def _arch_name(arch) -> str:
    return next((name for name, known in ARCHITECTURES.items() if known == arch), "ViT-B/32")


def _build_from_shapes(sd, path, heads, text_heads, mit_heads, prompt_heads, num_frames, quick_gelu=True, **extra):
    """X-CLIP Config from tensor shapes (official key names), frames resized to `num_frames`."""
    clip_sd = {k: v for k, v in sd.items() if not k.startswith(("mit.", "prompts_"))}
    arch = config_from_state_dict(clip_sd, heads, text_heads, quick_gelu, path)
    trained_frames = sd["mit.positional_embedding"].shape[1]
    config = Config(
        backbone=BackboneConfig(arch=_arch_name(arch), architecture=arch.to_dict(), heads=heads, text_heads=text_heads,
                                quick_gelu=quick_gelu),
        num_frames=num_frames or trained_frames,
        mit_layers=_count(sd, r"^mit\.resblocks\.(\d+)\."),
        mit_heads=mit_heads,
        prompt_layers=_count(sd, r"^prompts_generator\.decoder\.(\d+)\."),
        prompt_heads=prompt_heads,
        **extra,
    )
    embed = arch.embed_dim
    for name, value in (("mit_heads", mit_heads), ("prompt_heads", prompt_heads)):
        if value and embed % value:
            raise CheckpointError(f"{path}: {name}={value} does not divide the embedding width {embed}")
    if config.num_frames != trained_frames:
        warnings.warn(frame_count_warning(trained_frames, config.num_frames), stacklevel=3)
        sd["mit.positional_embedding"] = resize_temporal_embedding(sd["mit.positional_embedding"], config.num_frames)
    return build(config, num_classes=0)


def load_official_xclip(
    path: str | Path,
    heads: int | None = None,
    text_heads: int | None = None,
    mit_heads: int | None = None,
    prompt_heads: int | None = None,
    num_frames: int | None = None,
) -> XCLIP:
    """An official X-CLIP checkpoint (training file with 'model', or a bare state dict) in eval mode.

    Widths, depths, patch size, resolution and frames come from tensor shapes. Head counts cannot:
    they default to the official width // 64 rule (vision, message and text heads from the CLIP
    widths, MIT and prompt heads from the embedding width). `num_frames` other than the trained T
    interpolates the temporal positions (with a warning). Then call `model.set_class_names`.
    """
    path = Path(path)
    raw = read_checkpoint(path) if zipfile.is_zipfile(path) else read_state_dict(path)
    sd = unwrap_state_dict(raw, path)
    absent = [key for key in _REQUIRED if key not in sd]
    if absent:
        raise CheckpointError(
            f"{path}: not an X-CLIP checkpoint: {len(sd)} tensors, missing {absent} "
            f"(found e.g. {sorted(sd)[:3]})"
        )
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    model = _build_from_shapes(sd, path, heads, text_heads, mit_heads, prompt_heads, num_frames)
    return _load_into(model, {_to_ours(k): v for k, v in sd.items()}, path)


# ---------------------------------------------------------------------------------------------
# Hugging Face transformers XCLIPModel folders

# Library defaults for config.json entries that older files leave out.
_HF_DEFAULTS = {
    "top": {"prompt_num_attention_heads": 8, "prompt_hidden_act": "quick_gelu", "prompt_alpha": 0.1},
    "text": {"num_attention_heads": 8, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
    "vision": {"num_attention_heads": 12, "mit_num_attention_heads": 8, "hidden_act": "quick_gelu",
               "layer_norm_eps": 1e-5, "drop_path_rate": 0.0},
}

_HF_BLOCK = [  # inside a transformer layer: HF name -> official name
    ("layer_norm1.", "ln_1."),
    ("layer_norm2.", "ln_2."),
    ("mlp.fc1.", "mlp.c_fc."),
    ("mlp.fc2.", "mlp.c_proj."),
    ("self_attn.out_proj.", "attn.out_proj."),
]

_HF_PREFIXES = [  # HF prefix -> official prefix (first match wins)
    ("text_model.embeddings.token_embedding.", "token_embedding."),
    ("text_model.embeddings.position_embedding.weight", "positional_embedding"),
    ("text_model.encoder.layers.", "transformer.resblocks."),
    ("text_model.final_layer_norm.", "ln_final."),
    ("vision_model.embeddings.class_embedding", "visual.class_embedding"),
    ("vision_model.embeddings.patch_embedding.", "visual.conv1."),
    ("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"),
    ("vision_model.pre_layernorm.", "visual.ln_pre."),
    ("vision_model.post_layernorm.", "visual.ln_post."),
    ("vision_model.encoder.layers.", "visual.transformer.resblocks."),
    ("mit.position_embedding", "mit.positional_embedding"),
    ("mit.encoder.layers.", "mit.resblocks."),
    ("prompts_visual_projection", "prompts_visual_proj"),
    ("prompts_visual_layernorm.", "prompts_visual_ln."),
    ("prompts_generator.layernorm.", "prompts_generator.norm."),
    ("prompts_generator.", "prompts_generator."),
    ("logit_scale", "logit_scale"),
]

_HF_TRANSPOSED = {"visual_projection.weight": "visual.proj", "text_projection.weight": "text_projection"}
_HF_QKV = re.compile(r"^(.*)\.(self_attn|message_attn)\.([qkv])_proj\.(weight|bias)$")


def hf_to_official(hf: dict[str, torch.Tensor], path="checkpoint") -> dict[str, torch.Tensor]:
    """Rename a transformers XCLIPModel state dict to official names; q/k/v are packed, projections
    transposed. Every source tensor is used (position_ids buffers are dropped)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    unused = []
    for key, value in hf.items():
        if key.endswith("position_ids"):
            continue
        if key in _HF_TRANSPOSED:
            out[_HF_TRANSPOSED[key]] = value.t().contiguous()
            continue
        match = _HF_QKV.match(key)
        if match:
            scope, attn, which, kind = match.groups()
            key = f"{scope}.{'attn' if attn == 'self_attn' else attn}.{which}.{kind}"
        for hf_prefix, prefix in _HF_PREFIXES:
            if key.startswith(hf_prefix):
                key = prefix + key[len(hf_prefix):]
                break
        else:
            unused.append(key)
            continue
        if ".resblocks." in key:
            for hf_name, name in _HF_BLOCK:
                key = key.replace(hf_name, name)
        if match:
            stem, which, kind = key.rsplit(".", 2)
            qkv.setdefault(f"{stem}.in_proj_{kind}", {})[which] = value
        else:
            out[key] = value
    if unused:
        raise CheckpointError(f"{path}: {len(unused)} tensors are not part of an XCLIPModel, e.g. {unused[:3]}")
    for key, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"{path}: {key}: only {sorted(parts)} of the q/k/v projections are present")
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def _read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return read_state_dict(folder / name)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            return {k: v for shard in shards for k, v in read_state_dict(folder / shard).items()}
    raise CheckpointError(f"{folder}: no model.safetensors or pytorch_model.bin (or sharded index) in the folder")


def _hf_config(folder: Path) -> dict[str, dict]:
    file = folder / "config.json"
    if not file.is_file():
        raise CheckpointError(f"{folder}: no config.json; expected a transformers XCLIPModel folder")
    raw = json.loads(file.read_text())
    if raw.get("model_type") not in (None, "xclip"):
        raise CheckpointError(f"{file}: model_type {raw.get('model_type')!r}, expected 'xclip'")
    config = {"top": {**_HF_DEFAULTS["top"], **raw}}
    for part in ("text", "vision"):
        config[part] = {**_HF_DEFAULTS[part], **(raw.get(f"{part}_config") or {}), **(raw.get(f"{part}_config_dict") or {})}
    return config


def _activation(config: dict, path) -> bool:
    """quick_gelu -> True, gelu -> False; X-CLIP here uses one activation everywhere."""
    acts = {config["text"]["hidden_act"], config["vision"]["hidden_act"], config["top"]["prompt_hidden_act"]}
    if acts == {"quick_gelu"} or acts == {"gelu"}:
        return acts == {"quick_gelu"}
    raise CheckpointError(f"{path}: activations {sorted(acts)} are not supported (need all quick_gelu or all gelu)")


def load_official_hf_xclip(path: str | Path) -> XCLIP:
    """A transformers `XCLIPModel` folder (config.json + model.safetensors or pytorch_model.bin) in
    eval mode, giving transformers' `logits_per_video` for the same pixel_values and class names.

    Architecture from tensor shapes, head counts and activations from config.json.
    """
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise CheckpointError(f"{path}: no such folder")
    config = _hf_config(folder)
    text, vision, top = config["text"], config["vision"], config["top"]
    for part in (text, vision):
        if abs(part["layer_norm_eps"] - 1e-5) > 1e-12:
            raise CheckpointError(f"{folder}: layer_norm_eps {part['layer_norm_eps']} is not supported (X-CLIP uses 1e-5)")
    sd = hf_to_official(_read_hf_weights(folder), folder)
    absent = [key for key in _REQUIRED if key not in sd]
    if absent:
        raise CheckpointError(f"{folder}: not an XCLIPModel checkpoint: missing {absent}")
    for name, hidden, width in (
        ("vision", vision.get("intermediate_size"), sd["visual.conv1.weight"].shape[0]),
        ("text", text.get("intermediate_size"), sd["ln_final.weight"].shape[0]),
        ("MIT", vision.get("mit_intermediate_size"), sd["mit.positional_embedding"].shape[-1]),
    ):
        if hidden is not None and hidden != 4 * width:
            raise CheckpointError(f"{folder}: {name} intermediate_size {hidden} != 4 x width {width} (not supported)")
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    model = _build_from_shapes(
        sd, folder,
        heads=vision["num_attention_heads"],
        text_heads=text["num_attention_heads"],
        mit_heads=vision["mit_num_attention_heads"],
        prompt_heads=top["prompt_num_attention_heads"],
        num_frames=None,
        quick_gelu=_activation(config, folder),
        prompt_alpha=top["prompt_alpha"],
        drop_path_rate=float(vision["drop_path_rate"]),
    )
    return _load_into(model, {_to_ours(k): v for k, v in sd.items()}, folder)
