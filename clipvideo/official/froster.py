"""Official FROSTER checkpoints (Visual-AI/FROSTER): averaged release files and epoch checkpoints.

    model = load_official_froster("froster_k400_clip_b16.pth")       # {'model_state': ...}, e.g. swa_2_22.pth
    model = load_official_froster("checkpoint_epoch_00012.pyth")     # a training checkpoint (teacher inside)
    model = load_official_froster(path, clip_original="ViT-B-16.pt", patching_ratio=0.5)  # weight patching
    model.set_class_names(["Brush hair: A person is using a brush to style their hair", ...])
    logits = model(video)                                            # (B, T, 3, H, W) -> (B, K)

Key layout (reference §3): `model.<OpenAI CLIP key>` is the student, `raw_model.*` the frozen
teacher (epoch checkpoints only), `projector_{v,t}.{0,2}.weight` the distillation projectors.
Inference needs the student alone: teacher and projectors are recognised and dropped; any other
key is an error. Epoch checkpoints pickle only plain data (a yaml string, optimiser state) but
are read with the restricted unpickler anyway (nothing from the file is imported or run).
Heads cannot be read off shapes: they default to width // 64 (OpenAI), override with `heads`,
`text_heads`. The temporal attention has no weights; `num_frames` (default: DATA.NUM_FRAMES of an
epoch checkpoint's config, else 8) is what the data settings ask for.
"""

import re
import zipfile
from pathlib import Path

import torch

from ..clip import ARCHITECTURES, CheckpointError, config_from_state_dict, read_state_dict
from ..clip.checkpoint_io import read_checkpoint
from ..clip.load import unwrap_state_dict
from ..methods.base import BackboneConfig
from ..methods.froster import FROSTER, Config, build

_STUDENT, _TEACHER = "model.", "raw_model."
_PROJECTOR = re.compile(r"^projector_[vt]\.[02]\.weight$")
_NON_WEIGHT = ("input_resolution", "context_length", "vocab_size")


def _read(path: Path) -> object:
    return read_checkpoint(path) if zipfile.is_zipfile(path) else read_state_dict(path)


def split_official_state(sd: dict[str, torch.Tensor], path) -> tuple[dict, dict, dict]:
    """(student in OpenAI names, teacher, projectors); every key must be one of the three."""
    student, teacher, projectors, unknown = {}, {}, {}, []
    for key, value in sd.items():
        if key.startswith(_STUDENT):
            student[key[len(_STUDENT):]] = value
        elif key.startswith(_TEACHER):
            teacher[key[len(_TEACHER):]] = value
        elif _PROJECTOR.match(key):
            projectors[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{path}: {len(unknown)} keys are not part of a FROSTER model, e.g. {unknown[:3]}")
    if "visual.conv1.weight" not in student or "token_embedding.weight" not in student:
        raise CheckpointError(
            f"{path}: not a FROSTER checkpoint: no 'model.visual.conv1.weight' / 'model.token_embedding.weight' "
            f"(found {len(sd)} tensors, e.g. {sorted(sd)[:3]})"
        )
    return student, teacher, projectors


def _frames_from_cfg(raw, default: int = 8) -> int:
    """DATA.NUM_FRAMES from an epoch checkpoint's yaml `cfg` string, if any."""
    cfg = raw.get("cfg") if isinstance(raw, dict) else None
    if isinstance(cfg, str):
        match = re.search(r"^DATA:\s*\n(?:[ \t]+.*\n)*?[ \t]+NUM_FRAMES:\s*(\d+)", cfg, re.M)
        if match:
            return int(match.group(1))
    return default


def read_clip_original(path: str | Path) -> dict[str, torch.Tensor]:
    """The original CLIP for weight patching, in OpenAI names and in its own dtype: an OpenAI
    TorchScript archive / state dict, or a FROSTER-style {'model_state': {'model.<key>': ...}}."""
    path = Path(path)
    sd = unwrap_state_dict(_read(path), path)
    if any(k.startswith(_STUDENT) for k in sd):
        sd = {k[len(_STUDENT):]: v for k, v in sd.items() if k.startswith(_STUDENT)}
    sd = {k: v for k, v in sd.items() if k not in _NON_WEIGHT and not k.endswith("attn_mask")}
    if "visual.conv1.weight" not in sd:
        raise CheckpointError(f"{path}: not a CLIP checkpoint for weight patching (no 'visual.conv1.weight')")
    return sd


def load_official_froster(
    path: str | Path,
    clip_original: str | Path | None = None,
    patching_ratio: float | None = None,
    heads: int | None = None,
    text_heads: int | None = None,
    num_frames: int | None = None,
) -> FROSTER:
    """An official FROSTER checkpoint as a ready model (eval mode, no teacher, no projectors).

    With `clip_original`, weights are patched as the official TEST.PATCHING_MODEL does:
    ratio * original + (1 - ratio) * fine-tuned for every CLIP tensor (`patching_ratio`, default
    0.5 as official). Then call `model.set_class_names([...])`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    raw = _read(path)
    sd = unwrap_state_dict(raw, path)
    student, _teacher, _projectors = split_official_state(sd, path)  # teacher/projectors: training only
    student = {k: v for k, v in student.items() if k not in _NON_WEIGHT}
    student = {k: v.float() if v.is_floating_point() else v for k, v in student.items()}
    arch = config_from_state_dict(student, heads, text_heads, True, path)
    name = next((n for n, known in ARCHITECTURES.items() if known == arch), "ViT-B/16")
    config = Config(
        backbone=BackboneConfig(arch=name, architecture=arch.to_dict(), heads=heads, text_heads=text_heads),
        num_frames=num_frames or _frames_from_cfg(raw),
        distillation=False,
        build_teacher=False,
    )
    model = build(config, num_classes=0)
    target = model.clip.state_dict()
    missing, unexpected = sorted(set(target) - set(student)), sorted(set(student) - set(target))
    if missing or unexpected:
        raise CheckpointError(f"{path}: student keys do not match CLIP: {len(missing)} missing (e.g. {missing[:3]}), "
                              f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in student.items() if v.shape != target[k].shape]
    if wrong:
        raise CheckpointError(f"{path}: shape mismatch for {len(wrong)} tensors, e.g. model.{wrong[0]} (file vs model)")
    model.clip.load_state_dict(student, strict=True)
    if patching_ratio is not None and clip_original is None:
        raise ValueError("patching_ratio needs clip_original (the original CLIP weights to blend with)")
    if clip_original is not None:
        original = read_clip_original(clip_original)
        try:
            model.patch_weights(original, 0.5 if patching_ratio is None else float(patching_ratio))
        except ValueError as error:
            raise CheckpointError(f"{clip_original}: {error}") from None
    return model.eval()
