"""Official Text4Vis checkpoints (whwu95/Text4Vis `train.py` files, e.g. k400-vitb-32-f8.pt).

    model = load_official_text4vis("k400-vitb-32-f8.pt", backbone="ViT-B-32.pt")
    model.set_class_names(kinetics_400_names)      # the classifier: frozen CLIP text embeddings
    logits = model(video)                          # (B, T, 3, H, W), CLIP-normalised -> (B, K)

A checkpoint is `{epoch, model_state_dict, optimizer_state_dict}`; `model_state_dict` holds the
fine-tuned image tower (`visual.*`), the fusion head (`fusion_model.*`, absent for mean pooling)
and `logit_scale`, possibly with DDP `module.` prefixes. The text tower is not in it: it comes
from the OpenAI CLIP file (TorchScript or state dict) given as `backbone`, as the official test
rebuilds it. `classifier=` takes an official precomputed `text_feats_{dataset}_{arch}.pt` (a raw
(K, E) tensor) instead of encoding class names. The file is read with a restricted unpickler
(nothing imported or run); the optimizer state is ignored.
"""

import zipfile
from pathlib import Path

import torch

from ..clip import ARCHITECTURES, CheckpointError, clip_state_dict, config_from_state_dict, read_state_dict
from ..clip.checkpoint_io import read_checkpoint
from ..clip.load import unwrap_state_dict
from ..methods.base import BackboneConfig
from ..methods.text4vis import Config, Text4Vis, build, read_classifier_file

_REQUIRED = ("visual.conv1.weight", "visual.proj", "logit_scale")
_FUSION = "fusion_model."


def _read_official(path: Path) -> dict[str, torch.Tensor]:
    raw = read_checkpoint(path) if zipfile.is_zipfile(path) else read_state_dict(path)
    if isinstance(raw, dict) and "fusion_model_state_dict" in raw:
        raise CheckpointError(
            f"{path}: a train_nce.py checkpoint (separate fusion_model_state_dict); only train.py checkpoints "
            "(model_state_dict with visual.*, fusion_model.*, logit_scale) are supported")
    sd = unwrap_state_dict(raw, path)
    absent = [key for key in _REQUIRED if key not in sd]
    if absent:
        raise CheckpointError(f"{path}: not a Text4Vis checkpoint: missing {absent} (found e.g. {sorted(sd)[:3]})")
    unexpected = [k for k in sd if not (k.startswith(("visual.", _FUSION)) or k == "logit_scale")]
    if unexpected:
        raise CheckpointError(
            f"{path}: unexpected tensors for a Text4Vis checkpoint, e.g. {unexpected[:3]} (expected visual.*, "
            "fusion_model.*, logit_scale)")
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def _text_tower(backbone: str | Path | None, path: Path) -> dict[str, torch.Tensor]:
    if not backbone:
        raise CheckpointError(
            f"{path}: Text4Vis checkpoints hold no text tower; pass backbone= the OpenAI CLIP file it was "
            "trained from (e.g. ViT-B-32.pt; `clipvideo convert text4vis CKPT --backbone ViT-B-32.pt OUT`)")
    backbone = Path(backbone)
    sd = clip_state_dict(read_state_dict(backbone), backbone)
    text = {k: v.float() if v.is_floating_point() else v for k, v in sd.items() if not k.startswith("visual.")}
    if "text_projection" not in text or "token_embedding.weight" not in text:
        raise CheckpointError(f"{backbone}: no CLIP text tower in this file (text_projection, token_embedding)")
    return text


def _arch_name(arch) -> str:
    return next((name for name, known in ARCHITECTURES.items() if known == arch), "ViT-B/32")


def load_official_text4vis(
    path: str | Path,
    backbone: str | Path | None = None,
    classifier: str | Path | None = None,
    class_names: list[str] | None = None,
    num_frames: int = 8,
    heads: int | None = None,
    text_heads: int | None = None,
    fusion_heads: int | None = None,
) -> Text4Vis:
    """An official Text4Vis checkpoint with the text tower of `backbone`, in eval mode.

    Widths, depths and the fusion type come from tensor shapes; head counts default to the
    official width // 64 rule (the fusion's from the text width). `num_frames` is the T it is fed
    (not recorded in the checkpoint; the fusion takes any T up to 77). With `classifier` (an
    official text_feats_*.pt) the classes are its rows; otherwise call `set_class_names`.
    """
    path = Path(path)
    sd = _read_official(path)
    text = _text_tower(backbone, path)
    embed = sd["visual.proj"].shape[1]
    if text["text_projection"].shape[1] != embed:
        raise CheckpointError(
            f"{backbone}: its text embedding width {text['text_projection'].shape[1]} differs from the checkpoint's "
            f"visual projection {tuple(sd['visual.proj'].shape)}; use the CLIP file of the same architecture")
    clip_sd = {**text, **{k: v for k, v in sd.items() if not k.startswith(_FUSION)}}
    arch = config_from_state_dict(clip_sd, heads, text_heads, True, path)
    fusion_layers = len({k.split(".")[3] for k in sd if k.startswith(f"{_FUSION}transformer.resblocks.")})
    has_fusion = f"{_FUSION}frame_position_embeddings.weight" in sd
    config = Config(
        backbone=BackboneConfig(arch=_arch_name(arch), architecture=arch.to_dict(), heads=heads, text_heads=text_heads),
        num_frames=num_frames,
        fusion="transf" if has_fusion else "mean",
        fusion_layers=fusion_layers or 6,
        fusion_heads=fusion_heads,
        fusion_positions=sd[f"{_FUSION}frame_position_embeddings.weight"].shape[0] if has_fusion else 77,
        classifier="file" if classifier else "text",
        classifier_file=str(classifier) if classifier else None,
    )
    if has_fusion and embed % (fusion_heads or max(1, arch.text_width // 64)):
        raise CheckpointError(f"{path}: fusion_heads={fusion_heads} does not divide the embedding width {embed}")
    model = build(config, num_classes=0)
    ours = {("clip." + k if not k.startswith(_FUSION) else k): v for k, v in clip_sd.items()}
    ours.update({k: v for k, v in sd.items() if k.startswith(_FUSION)})
    target = {k: v for k, v in model.state_dict().items() if k != "classifier"}
    missing, unexpected = sorted(set(target) - set(ours)), sorted(set(ours) - set(target))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: keys do not match Text4Vis: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in ours.items() if v.shape != target[k].shape]
    if wrong:
        raise CheckpointError(f"{path}: shape mismatch for {len(wrong)} tensors, e.g. {wrong[0]} (file vs model)")
    model.load_state_dict({**ours, "classifier": model.classifier}, strict=True)
    if classifier:
        rows = read_classifier_file(str(classifier), None, embed).shape[0]
        names = list(class_names) if class_names else [f"class {i}" for i in range(rows)]
        model.set_class_names(names)
    elif class_names:
        model.set_class_names(class_names)
    return model.eval()


__all__ = ["load_official_text4vis"]
