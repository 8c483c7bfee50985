"""X-CLIP: "Expanding Language-Image Pretrained Models for General Video Recognition".

Ni et al., ECCV 2022, arXiv:2208.02816. Official code: github.com/microsoft/VideoX (folder X-CLIP).

CLIP is extended in three places, in data-flow order:
1. Cross-frame communication: every vision block builds a message token from each frame's class
   token, lets the T message tokens of a video attend to each other, and appends them to the
   frame's tokens for that block's self-attention (`CrossFrameBlock`).
2. Multi-frame integration transformer (MIT): a small transformer over the T frame embeddings,
   mean-pooled into the video embedding (`MultiFrameIntegration`).
3. Video-specific prompts: the class-name text embeddings attend to the video's patch tokens and
   the result is added back, scaled by a learned per-channel alpha (`VideoSpecificPrompt`).
Logits are exp(logit_scale) times the cosine between the video embedding and each prompted
class embedding.

Official behaviour kept: logits to 1e-5 in fp32 for the same weights; the prompt output is
alpha * (t + delta) added to t (so t' = t + alpha*t + alpha*delta); the MIT's outer residual
uses the frame embeddings without the temporal positions; message tokens come from the raw
(not normalised) class token; the prompt projection starts at std 1; parameter names, LR x10
for the new modules and the weight-decay rule of the official optimiser.
Official quirks fixed: the text cache follows the class names and the text weights (the
official one is filled once and then ignores its text argument) and never flips the module to
train mode; drop path drops whole samples (the official one drops token positions); a model
trained with T frames runs with other T by interpolating the MIT's temporal positions.
"""

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..clip import Attention, LayerNorm, QuickGELU, ResidualAttentionBlock, tokenize
from ..clip.text_cache import ClassEmbeddingCache, encode_by_length
from .base import BackboneConfig, VideoRecognizer, build_clip, freeze
from .temporal import FrameTransformer


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Zero whole samples (dim 0) with probability `rate`, rescaling the rest (stochastic depth)."""
    if rate == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - rate)
    return x * keep / (1.0 - rate)


# ---------------------------------------------------------------------------------------------
# 1. Cross-frame communication transformer (the vision encoder)


class CrossFrameBlock(ResidualAttentionBlock):
    """A CLIP vision block with one message token per frame, exchanged across the video's frames.

    (B*T, 1+N, C) -> (B*T, 1+N, C), frames of one video adjacent (frame index fastest). The stock
    `ln_1, attn, ln_2, mlp` keep OpenAI names, so CLIP weights load; message_* are new.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, act_layer=QuickGELU, index: int = 0):
        super().__init__(width, heads, mlp_ratio, act_layer, index)
        self.message_fc = nn.Linear(width, width)
        self.message_ln = LayerNorm(width)
        self.message_attn = Attention(width, heads)  # over the T frames of a video
        self.drop_path_rate = 0.0  # set per layer by XCLIP (linear 0 -> rate over depth)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, *, num_frames: int) -> torch.Tensor:
        frames, length, width = x.shape
        # The message comes from the raw residual stream's class token, not a normalised one.
        message = self.message_fc(x[:, 0]).view(frames // num_frames, num_frames, width)  # (B, T, C)
        message = message + drop_path(self.message_attn(self.message_ln(message)), self.drop_path_rate, self.training)
        # Each frame attends over its own tokens plus its message token, appended last; only the
        # frame's own 1+N positions are kept, so queries for the message position are skipped.
        tokens = self.ln_1(torch.cat([x, message.reshape(frames, 1, width)], dim=1))  # (B*T, 1+N+1, C)
        q, k, v = self.attn.project_qkv(tokens)  # each (B*T, H, 1+N+1, d)
        attended = self.attn.attend(q[:, :, :length], k, v, attn_mask)  # (B*T, 1+N, C)
        x = x + drop_path(attended, self.drop_path_rate, self.training)
        return x + drop_path(self.feed_forward(x), self.drop_path_rate, self.training)


# ---------------------------------------------------------------------------------------------
# 2. Multi-frame integration transformer


def resize_temporal_embedding(positions: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Linear interpolation over time of a (1, T, E) position table to (1, num_frames, E)."""
    if positions.shape[1] == num_frames:
        return positions
    resized = F.interpolate(positions.transpose(1, 2).float(), size=num_frames, mode="linear", align_corners=False)
    return resized.transpose(1, 2).to(positions.dtype)


def frame_count_warning(trained: int, used: int) -> str:
    return (
        f"X-CLIP: this model's temporal positions were trained for {trained} frames; interpolating them "
        f"linearly to {used} frames (expect some accuracy loss; see microsoft/VideoX#93)"
    )


class MultiFrameIntegration(FrameTransformer):
    """(B, T, E) frame embeddings -> (B, E) video embedding: mean over T of blocks(f + P) + f.

    The shared `FrameTransformer` with a (1, T, E) position table, interpolated for another T.
    Key names follow the official `mit.positional_embedding`, `mit.resblocks.i.*`.
    """

    def __init__(self, num_frames: int, width: int, layers: int, heads: int, act_layer=QuickGELU):
        super().__init__(width, layers, heads, act_layer=act_layer)
        self.positional_embedding = nn.Parameter(torch.empty(1, num_frames, width))
        nn.init.trunc_normal_(self.positional_embedding, std=0.02)
        for block in self.resblocks:
            for linear in (block.attn.out_proj, block.mlp.c_fc, block.mlp.c_proj):
                nn.init.trunc_normal_(linear.weight, std=0.02)
                nn.init.zeros_(linear.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        num_frames = frames.shape[1]
        trained = self.positional_embedding.shape[1]
        if num_frames != trained:
            warnings.warn(frame_count_warning(trained, num_frames), stacklevel=3)
        positions = resize_temporal_embedding(self.positional_embedding, num_frames)  # (1, T, E)
        return super().forward(frames, positions)  # (B, E)


# ---------------------------------------------------------------------------------------------
# 3. Video-specific prompt generator


class PromptCrossAttention(nn.Module):
    """Text queries (B, K, E) attend to visual tokens (B, N, E); q/k/v maps have no bias."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"prompt attention width {width} is not divisible by heads={heads}")
        self.heads = heads
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.proj = nn.Linear(width, width)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.heads, width // self.heads).transpose(1, 2)  # (B, H, L, d)

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        q = self.split_heads(self.q_proj(text))  # (B, H, K, d)
        k = self.split_heads(self.k_proj(visual))  # (B, H, N, d)
        v = self.split_heads(self.v_proj(visual))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, K, d)
        return self.proj(out.transpose(1, 2).flatten(2))  # (B, K, E)


class PromptGeneratorLayer(nn.Module):
    """t + cross_attn(norm1(t), visual), then t + mlp(norm3(t)); official names (no norm2)."""

    def __init__(self, width: int, heads: int, act_layer=QuickGELU):
        super().__init__()
        self.cross_attn = PromptCrossAttention(width, heads)
        self.norm1 = LayerNorm(width)
        self.norm3 = LayerNorm(width)
        # Index 2 held the official (zero-rate) dropout; kept as a slot so keys stay mlp.0 / mlp.3.
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), act_layer(), nn.Identity(), nn.Linear(4 * width, width))

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        text = text + self.cross_attn(self.norm1(text), visual)
        return text + self.mlp(self.norm3(text))


class VideoSpecificPrompt(nn.Module):
    """(B, K, E) class embeddings and (B, N, E) visual context -> alpha * refined text (B, K, E)."""

    def __init__(self, width: int, layers: int, heads: int, alpha: float, act_layer=QuickGELU):
        super().__init__()
        self.norm = LayerNorm(width)
        self.decoder = nn.ModuleList(PromptGeneratorLayer(width, heads, act_layer) for _ in range(layers))
        self.alpha = nn.Parameter(torch.full((width,), alpha))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        visual = self.norm(visual)
        for layer in self.decoder:
            text = layer(text, visual)
        return self.alpha * text


# ---------------------------------------------------------------------------------------------
# The model


@dataclass
class Config:
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(arch="ViT-B/32"))  # official default arch
    num_frames: int = 8  # T the MIT's temporal positions are built for (other T: interpolated, with a warning)
    mit_layers: int = 1  # MIT depth (official loader: 1)
    mit_heads: int | None = None  # MIT heads; default embed_dim // 64 (official rule)
    prompt_layers: int = 2  # prompt-generator depth (official loader: 2)
    prompt_heads: int | None = None  # prompt-generator heads; default embed_dim // 64
    prompt_alpha: float = 0.1  # initial per-channel prompt scale
    drop_path_rate: float = 0.0  # stochastic depth in the vision blocks, 0 -> rate over depth (official: 0)
    train_text: bool = False  # official MODEL.FIX_TEXT=True: text tower and logit_scale frozen
    template: str = "{}"  # prompt for a class name; official: the bare name
    new_lr_scale: float = 10.0  # LR multiplier for message, MIT and prompt modules (official x10)


# Substrings that mark the modules X-CLIP adds to CLIP (the official optimiser matches the same).
NEW_MODULE_KEYS = ("message_", "mit.", "prompts_")


class XCLIP(VideoRecognizer):
    """Video (B, T, 3, H, W), ImageNet-normalised -> logits (B, K) over the classes set by name."""

    uses_text = True

    def __init__(self, config: Config, clip: nn.Module):
        super().__init__(config)
        self.clip = clip
        width, embed_dim = clip.config.vision_width, clip.config.embed_dim
        act_layer = QuickGELU if clip.config.quick_gelu else nn.GELU
        mit_heads = config.mit_heads or max(1, embed_dim // 64)
        prompt_heads = config.prompt_heads or max(1, embed_dim // 64)
        self.mit = MultiFrameIntegration(config.num_frames, embed_dim, config.mit_layers, mit_heads, act_layer)
        self.prompts_visual_ln = LayerNorm(width)
        # Official init: unscaled standard normal (std 1), kept for training parity.
        self.prompts_visual_proj = nn.Parameter(torch.randn(width, embed_dim))
        self.prompts_generator = VideoSpecificPrompt(
            embed_dim, config.prompt_layers, prompt_heads, config.prompt_alpha, act_layer
        )
        blocks = clip.visual.transformer.resblocks
        for i, block in enumerate(blocks):
            block.drop_path_rate = config.drop_path_rate * i / max(len(blocks) - 1, 1)
        if not config.train_text:
            for name, param in clip.named_parameters():
                if not name.startswith("visual."):  # text tower, text projection and logit_scale
                    param.requires_grad_(False)
            for module in self.frozen_modules():
                freeze(module)
        self.text_tokens: torch.Tensor | None = None  # (K, L) tokenised class prompts
        self.class_cache = ClassEmbeddingCache("xclip")  # (K, E) class embeddings, memory and disk

    # -- text side ------------------------------------------------------------------------------

    def frozen_modules(self) -> list[nn.Module]:
        if self.config.train_text:
            return []
        return [self.clip.token_embedding, self.clip.transformer, self.clip.ln_final]

    def vocabulary_changed(self) -> None:
        """Tokenise `template.format(name)` for each class; the embeddings are encoded on first use."""
        prompts = [self.config.template.format(name) for name in self.class_names]
        tokens = tokenize(prompts, context_length=self.clip.config.context_length)  # (K, 77), zero padded
        # Under the causal mask nothing after the last end-of-text token reaches any end-of-text
        # feature, so the padding columns beyond it are not encoded (the result is the same).
        self.text_tokens = tokens[:, : int(tokens.argmax(dim=-1).max()) + 1]  # (K, L)

    def class_embeddings(self) -> torch.Tensor:
        """(K, E) class embeddings, before the video-specific prompts. Kept per (text weights,
        prompts, dtype, autocast, device), a few at a time: a weight change (tracked by in-place
        version counters: optimiser steps, load_state_dict) re-encodes, fp32/bf16 calls each hit
        their own; stored on disk too in eval mode without gradients (`clip.text_cache`).
        Recomputed with gradients every call while the text is trained."""
        if self.text_tokens is None:
            raise RuntimeError("X-CLIP classifies with class names: call model.set_class_names([...]) first")
        device = self.clip.positional_embedding.device
        if self.config.train_text and self.training and torch.is_grad_enabled():
            self.class_cache.clear()
            return self.clip.encode_text(self.text_tokens.to(device))
        return self.class_cache.get(self.clip, self.text_tokens,
                                    lambda: encode_by_length(self.clip.encode_text, self.text_tokens.to(device)),
                                    persist=not self.training and not torch.is_grad_enabled())

    # -- video side -----------------------------------------------------------------------------

    def encode_frames(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 3, H, W) -> frame embeddings (B, T, E) and prompt context (B, N, E)."""
        if video.ndim != 5:
            raise ValueError(f"X-CLIP expects video shaped (B, T, 3, H, W), got {tuple(video.shape)}")
        batch, num_frames = video.shape[:2]
        visual = self.clip.visual
        x = visual.embed(video.flatten(0, 1))  # (B*T, 1+N, C)
        x = visual.transformer(x, num_frames=num_frames)  # (B*T, 1+N, C)
        frames = visual.pool(x).view(batch, num_frames, -1)  # (B, T, E)
        # Prompt context: last-block patch tokens (no ln_post), normalised, averaged over frames,
        # then projected (the projection is linear, so averaging first is the same, T times cheaper).
        patches = self.prompts_visual_ln(x[:, 1:])  # (B*T, N, C)
        patches = patches.view(batch, num_frames, *patches.shape[1:]).mean(dim=1)  # (B, N, C)
        return frames, patches @ self.prompts_visual_proj  # (B, T, E), (B, N, E)

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, E + N*E): the video embedding, then the flattened prompt context
        (the video-specific prompts of the head read it)."""
        frames, context = self.encode_frames(video)
        return torch.cat([self.mit(frames), context.flatten(1)], dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        embed_dim = self.clip.config.embed_dim
        video_features = features[:, :embed_dim]  # (B, E)
        context = features[:, embed_dim:].unflatten(1, (-1, embed_dim))  # (B, N, E)
        text = self.class_embeddings().to(context.dtype)  # (K, E)
        text = text.unsqueeze(0).expand(features.shape[0], -1, -1)  # (B, K, E)
        text = text + self.prompts_generator(text, context)  # (B, K, E)
        video_features = F.normalize(video_features, dim=-1)
        text = F.normalize(text, dim=-1)
        logits = torch.einsum("be,bke->bk", video_features, text)  # (B, K)
        return self.clip.logit_scale.exp() * logits

    def input_config(self) -> dict:
        """The official test-time input: TSN segment centres, short side 256/224 of the crop, centre
        crop, ImageNet mean/std; softmax averaged over views."""
        size = self.clip.config.image_resolution
        return {"data": {"num_frames": self.config.num_frames, "sampling": "segment", "sampling_protocol": "xclip",
                         "input_size": size, "short_side": int(256 / 224 * size), "normalization": "imagenet"},
                "test": {"aggregate": "prob"}}

    # -- optimisation ---------------------------------------------------------------------------

    def lr_scale(self, name: str) -> float:
        """Official groups: x`new_lr_scale` (10) for message, MIT and prompt parameters, else x1."""
        return self.config.new_lr_scale if any(key in name for key in NEW_MODULE_KEYS) else 1.0

    def no_weight_decay(self, name: str, param: nn.Parameter) -> bool:
        """Official rule: no decay for 1-D tensors, biases and positional embeddings; everything
        else decays (including token_embedding and the 0-d logit_scale when the text is trained)."""
        return param.ndim == 1 or name.endswith(".bias") or "positional_embedding" in name


def new_parameter(key: str) -> bool:
    """CLIP-side parameters X-CLIP adds (the message modules): absent from CLIP checkpoints."""
    return ".message_" in key


def build(config: Config, num_classes: int, class_names: list[str] | None = None) -> XCLIP:
    clip = build_clip(config.backbone, vision_block=CrossFrameBlock, new_keys=new_parameter)
    model = XCLIP(config, clip)
    if class_names is not None:
        if num_classes and len(class_names) != num_classes:
            raise ValueError(f"X-CLIP got {len(class_names)} class names for {num_classes} classes")
        model.set_class_names(class_names)
    return model
