"""Frozen CLIP baselines: per-frame CLIP features, pooled over time, then a classifier.

- `temporal="mean"`, `classifier="text"`: the "Frozen CLIP" zero-shot row of the FROSTER tables —
  frame features averaged over time, cosine similarity with the class-name text embeddings
  (template "a video of a person {}."), times CLIP's logit scale. No training needed.
- `temporal="transformer"`: a small transformer over the T frame features (learned temporal
  positions, residual to the frame features, then the mean), as in Text4Vis / X-CLIP's MIT.
  With a trained classifier (`linear`, or `text-init`: a linear head initialised from the
  class-name embeddings) it is the pipeline's first trainable video model.
A frame mean is blind to frame order, so it cannot tell "moving left" from "moving right";
the temporal transformer can (the demo measures exactly this).
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..clip import tokenize
from ..clip.text_cache import ClassEmbeddingCache, encode_by_length
from .base import BackboneConfig, VideoRecognizer, build_clip, freeze
from .temporal import FrameTransformer


@dataclass
class Config:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    num_frames: int = 8  # T; the temporal transformer's position table has T rows
    temporal: str = "mean"  # "mean": average frame features | "transformer": temporal transformer, then mean
    temporal_layers: int = 1  # depth of the temporal transformer
    classifier: str = "text"  # "text": cosine with class-name embeddings | "linear" | "text-init"
    template: str = "a video of a person {}."  # prompt for class names ("{}" = the bare name)
    train_backbone: bool = False  # fine-tune the CLIP image tower too
    dropout: float = 0.0  # before a linear classifier


TEMPORAL = ("mean", "transformer")
CLASSIFIERS = ("text", "linear", "text-init")


class TemporalTransformer(nn.Module):
    """(B, T, E) frame features -> (B, E): the shared `FrameTransformer` with a (T, E) position table."""

    def __init__(self, width: int, num_frames: int, layers: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.zeros(num_frames, width))
        nn.init.normal_(self.positional_embedding, std=0.02)
        self.transformer = FrameTransformer(width, layers, heads=max(1, width // 64))
        # Start as the identity on top of the residual, so training begins from the frame mean.
        for block in self.transformer.resblocks:
            nn.init.zeros_(block.attn.out_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        num_frames = frames.shape[1]
        if num_frames != self.positional_embedding.shape[0]:
            raise ValueError(
                f"this model was built for {self.positional_embedding.shape[0]} frames, got {num_frames}; "
                "sample that many frames (data.num_frames)"
            )
        return self.transformer(frames, self.positional_embedding)  # residual to the raw frames, then mean


class FrozenCLIP(VideoRecognizer):
    def __init__(self, config: Config, num_classes: int, class_names: list[str] | None):
        super().__init__(config)
        self.class_cache = ClassEmbeddingCache("frozen", entries=1)  # the disk store; embeddings live in a buffer
        if config.temporal not in TEMPORAL:
            raise ValueError(f"model.temporal must be one of {TEMPORAL}, got {config.temporal!r}")
        if config.classifier not in CLASSIFIERS:
            raise ValueError(f"model.classifier must be one of {CLASSIFIERS}, got {config.classifier!r}")
        self.uses_text = config.classifier == "text"
        needs_text = config.classifier in ("text", "text-init")
        self.clip = build_clip(config.backbone, with_text=needs_text)
        embed_dim = self.clip.config.embed_dim
        if not config.train_backbone:
            freeze(self.clip.visual)
        if needs_text:
            # The text tower only ever encodes class names: never trained here.
            for name, p in self.clip.named_parameters():
                if not name.startswith("visual."):
                    p.requires_grad_(False)
        self.temporal = TemporalTransformer(embed_dim, config.num_frames, config.temporal_layers) if config.temporal == "transformer" else None
        self.dropout = nn.Dropout(config.dropout)
        self.head = None
        if config.classifier in ("linear", "text-init"):
            self.head = nn.Linear(embed_dim, num_classes)
            if config.classifier == "text-init":
                if not class_names or len(class_names) != num_classes:
                    raise ValueError("classifier 'text-init' needs one class name per class (data.class_names)")
                with torch.no_grad():
                    text = F.normalize(self.encode_class_names(class_names), dim=-1)
                    self.head.weight.copy_(text * self.clip.logit_scale.exp())
                    self.head.bias.zero_()
        self.register_buffer("prompt_embeddings", torch.empty(0), persistent=False)
        if class_names is not None:
            self.class_names = list(class_names)
            if self.uses_text:
                self.set_class_names(class_names)

    def frozen_modules(self) -> list[nn.Module]:
        return [] if self.config.train_backbone else [self.clip.visual]

    @torch.no_grad()
    def encode_class_names(self, names: list[str]) -> torch.Tensor:
        """(K, E) fp32 prompt embeddings. The text tower never trains here, so they are read from
        the disk store when these text weights encoded these prompts before (`clip.text_cache`)."""
        prompts = [self.config.template.format(name) for name in names]
        tokens = tokenize(prompts, context_length=self.clip.config.context_length, truncate=True)
        on_device = tokens.to(self.clip.logit_scale.device)
        return self.class_cache.get(self.clip, tokens,
                                    lambda: encode_by_length(self.clip.encode_text, on_device).float(),
                                    persist=True)  # (K, E)

    def vocabulary_changed(self) -> None:
        self.prompt_embeddings = F.normalize(self.encode_class_names(self.class_names), dim=-1)

    def class_embeddings(self) -> torch.Tensor:
        """(K, E) L2-normalised prompt embeddings, encoded once per vocabulary (the text never trains)."""
        if self.prompt_embeddings.numel() == 0:
            raise RuntimeError("no class names set: call model.set_class_names([...]) first")
        return self.prompt_embeddings

    def freeze_classes(self) -> None:
        super().freeze_classes()
        if self.head is not None and self.clip.with_text:
            self.clip.drop_text_tower()  # text-init: the text only initialised the linear head

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, E) video features (frame mean or temporal transformer)."""
        batch, num_frames = video.shape[:2]
        frames = video.flatten(0, 1)  # (B*T, 3, H, W)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.train_backbone):
            features = self.clip.encode_image(frames)  # (B*T, E)
        features = features.view(batch, num_frames, -1).float()  # (B, T, E)
        if self.temporal is None:
            return features.mean(dim=1)
        return self.temporal(features)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            return self.head(self.dropout(features))
        features = F.normalize(features, dim=-1)
        return self.clip.logit_scale.exp().float() * features @ self.class_embeddings().to(features.dtype).t()

    def input_config(self) -> dict:
        """Segment sampling over the whole video, short side 256/224 of the crop, CLIP mean/std,
        one view, softmax averaged over views."""
        size = self.clip.config.image_resolution
        return {"data": {"num_frames": self.config.num_frames, "sampling": "segment", "input_size": size,
                         "short_side": round(size * 256 / 224), "normalization": "clip"},
                "test": {"num_clips": 1, "num_crops": 1, "aggregate": "prob"}}


def build(config: Config, num_classes: int, class_names: list[str] | None = None) -> FrozenCLIP:
    return FrozenCLIP(config, num_classes, class_names)
