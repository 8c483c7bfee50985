"""What every method shares: the model contract, the CLIP backbone settings, parameter groups.

The contract the engine relies on (and nothing else):
- `model(video)` with video (B, T, 3, H, W), normalised, returns logits (B, K).
- `model.loss(video, target)` returns a dict with at least "loss" (and "logits" for train
  accuracy); target is (B,) class ids or (B, K) soft targets from Mixup/CutMix.
- `model.set_class_names(names)` for methods that classify with text (encodes once, caches).
- `model.param_groups(weight_decay)` lists the trainable parameters with their groups.
- `model.config` is the method's resolved config dataclass, saved in checkpoints.

Optional hooks (the engine uses them when present):
- `model.video_features(video) -> (B, D)` and `model.logits_from_features(features) -> (B, K)`:
  with `test.aggregate: feature` the engine averages the per-view features of a video before
  the classifier (Text4Vis averages video embeddings over views before the cosine).
- `training_only_prefixes`: state-dict key prefixes (a distillation teacher) that are never
  saved in model files nor averaged; a model rebuilt for inference does not need them.
- `data_settings()`: the DataConfig fields this model must be fed with (normalisation, sampling,
  input size, ...), stored in every native model file so predict/test use them. A trained model's
  file records its run's `data:` instead; without either, frames and input size are read off the model.
- `test_settings()`: the TestConfig fields of the official views (num_clips, num_crops), stored likewise.
- Module-level `inference_config(config) -> config` (optional): the config a model is rebuilt
  with from a model file (FROSTER: no teacher); `USES_DESCRIPTIONS = True` makes the engine pass
  "Name: description" class entries (FROSTER's JSON) instead of bare names.
"""

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..clip import CLIP, CLIPConfig, ResidualAttentionBlock, get_architecture, load_clip


@dataclass
class BackboneConfig:
    """Which CLIP to start from."""

    arch: str = "ViT-B/16"  # named architecture, used for random weights when `pretrained` is empty
    pretrained: str | None = None  # local CLIP weights: OpenAI .pt (TorchScript or state dict), open_clip, safetensors
    heads: int | None = None  # vision heads; default width // 64 (tensor shapes cannot tell)
    text_heads: int | None = None  # text heads; default width // 64
    quick_gelu: bool = True  # OpenAI weights use QuickGELU; LAION open_clip models mostly GELU
    image_resolution: int | None = None  # resize positional embeddings to this input size
    architecture: dict | None = None  # resolved CLIP architecture, filled in on build (lets checkpoints rebuild)
    grad_checkpointing: bool = False  # recompute block activations in backward to save memory


def build_clip(
    cfg: BackboneConfig,
    vision_block=ResidualAttentionBlock,
    new_keys=lambda key: False,
    with_text: bool = True,
    vision_output_dim: int | None | bool = True,
) -> CLIP:
    """A CLIP model from weights (cfg.pretrained), a resolved architecture, or a named one.

    Records the resolved architecture in cfg.architecture so a saved model rebuilds without the file.
    """
    if cfg.pretrained:
        model = load_clip(
            cfg.pretrained,
            heads=cfg.heads,
            text_heads=cfg.text_heads,
            quick_gelu=cfg.quick_gelu,
            image_resolution=cfg.image_resolution,
            with_text=with_text,
            vision_output_dim=vision_output_dim,
            vision_block=vision_block,
            new_keys=new_keys,
        )
    else:
        if cfg.architecture:
            config = CLIPConfig.from_dict(cfg.architecture)
        else:
            config = get_architecture(cfg.arch, quick_gelu=cfg.quick_gelu)
            if cfg.heads:
                config = replace(config, vision_heads=cfg.heads)
            if cfg.text_heads:
                config = replace(config, text_heads=cfg.text_heads)
            if cfg.image_resolution:
                config = replace(config, image_resolution=cfg.image_resolution)
        model = CLIP(config, vision_block=vision_block, with_text=with_text, vision_output_dim=vision_output_dim)
    cfg.architecture = model.config.to_dict()
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model


def freeze(module: nn.Module) -> nn.Module:
    """No gradients and eval mode (kept by VideoRecognizer.train for modules in `frozen_modules`)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross entropy for (B,) class ids or (B, K) soft targets (Mixup/CutMix already smoothed)."""
    if target.dim() == 1:
        return F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
    return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def is_no_decay(name: str, param: nn.Parameter) -> bool:
    """Norm weights, biases, embeddings and tokens: the usual no-weight-decay set (timm, open_clip)."""
    return param.ndim <= 1 or "embedding" in name or "token" in name or name.endswith("logit_scale")


class VideoRecognizer(nn.Module):
    """Base class: subclasses implement forward(video (B, T, 3, H, W)) -> logits (B, K)."""

    uses_text: ClassVar[bool] = False  # True: classes come from set_class_names, not a fixed head
    decay_all: ClassVar[bool] = False  # True: weight decay on every trainable parameter (EVL recipe)
    training_only_prefixes: ClassVar[tuple[str, ...]] = ()  # state-dict prefixes left out of model files (teachers)

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.class_names: list[str] | None = None

    # Modules that must stay in eval mode and out of the optimiser (frozen backbones, teachers).
    def frozen_modules(self) -> list[nn.Module]:
        return []

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def set_class_names(self, names: list[str]) -> None:
        if not self.uses_text:
            raise ValueError(
                f"{type(self).__name__} classifies with a trained linear head; it cannot take new class "
                "names. Use a text-based method (frozen, xclip, text4vis, froster) for zero-shot."
            )
        self.class_names = list(names)

    def loss(self, video: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> dict[str, torch.Tensor]:
        logits = self(video)
        return {"loss": soft_cross_entropy(logits, target, label_smoothing), "logits": logits}

    def no_weight_decay(self, name: str, param: nn.Parameter) -> bool:
        """True for parameters kept out of weight decay (methods with an official rule override)."""
        return is_no_decay(name, param)

    def lr_scale(self, name: str) -> float:
        """Learning-rate multiplier for a trainable parameter (methods override, e.g. X-CLIP)."""
        return 1.0

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Trainable parameters grouped by (weight decay, lr scale); frozen ones are left out."""
        groups: dict[tuple[float, float], dict] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            decay = weight_decay if (self.decay_all or not self.no_weight_decay(name, param)) else 0.0
            scale = self.lr_scale(name)
            group = groups.setdefault(
                (decay, scale), {"params": [], "names": [], "weight_decay": decay, "lr_scale": scale}
            )
            group["params"].append(param)
            group["names"].append(name)
        return list(groups.values())
