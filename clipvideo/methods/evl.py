"""EVL: Frozen CLIP Models are Efficient Video Learners (Lin et al., ECCV 2022), arXiv:2208.03550.

Official code: https://github.com/OpenGVLab/efficient-video-recognition (commit b282e8b).

The CLIP image tower stays frozen and sees every frame as an image. A light Transformer decoder
with a single learned query reads the outputs of the last K blocks, one block per decoder layer
(shallowest first). Before each decoder layer three local temporal modules add what a frozen
image model cannot see, the order and motion of frames:
  1. a depthwise temporal convolution over each token's feature sequence,
  2. a learned temporal position embedding,
  3. a temporal cross-attention: the backbone's own query-key attention between adjacent frames,
     averaged over heads, weights a learned table of 2-D patch-displacement embeddings.
A LayerNorm + linear head classifies the final query. Only decoder and head are trained.

Official behaviour kept: the query token and the temporal tables start at zero (the official
initialiser for the query is never called; `query_init_std` turns it on), weight decay on every
trainable parameter (`decay_all`), the `freeze_fp16` backbone (`backbone_precision: fp16`: linear
and patch weights and the class/position embeddings in half, LayerNorms in fp32, outputs cast to
fp32 for the decoder). Official behaviour fixed (docs/evl.md lists each difference): fine-tuning
the backbone works (the official decoder adds into the backbone's output in place and crashes at
backward), the model runs on CPU (the official cross-attention allocates on 'cuda'), and the
backbone is a registered, frozen submodule, so native checkpoints are self-contained. The data
side quirks (no-op mirror flag, 1x1-view crash, reversed TSN validation frames) concern the
pipeline: clipvideo flips only when `data.flip` says so and samples test clips in order.
"""

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..clip import LayerNorm, QuickGELU
from ..clip.cpu_precision import fp16_on_cpu
from .base import BackboneConfig, VideoRecognizer, build_clip, freeze


# ---------------------------------------------------------------------------------------------
# Local temporal modules: they enrich the frame features of one backbone block (B, T, L, C).


class TemporalConvolution(nn.Conv1d):
    """Depthwise convolution over time (kernel 3, zero padding), per token: (B, T, L, C) -> same."""

    def __init__(self, width: int):
        super().__init__(width, width, kernel_size=3, padding=1, groups=width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, num_frames, length, width = features.shape
        x = features.permute(0, 2, 3, 1).reshape(batch * length, width, num_frames)  # (B*L, C, T)
        x = super().forward(x)
        return x.view(batch, length, width, num_frames).permute(0, 3, 1, 2)  # (B, T, L, C)


def displacement_index(grid: tuple[int, int]) -> torch.Tensor:
    """(P, P) index of the 2-D displacement from key patch to query patch, in [0, (2gh-1)(2gw-1))."""
    grid_h, grid_w = grid
    rows = torch.arange(grid_h).repeat_interleave(grid_w)  # (P,) grid row of each patch
    cols = torch.arange(grid_w).repeat(grid_h)  # (P,) grid column
    d_row = rows[:, None] - rows[None, :] + grid_h - 1  # query row - key row, shifted to >= 0
    d_col = cols[:, None] - cols[None, :] + grid_w - 1
    return d_row * (2 * grid_w - 1) + d_col


class TemporalCrossAttention(nn.Module):
    """Motion features from the backbone's attention between adjacent frames (patch tokens only).

    For frame t and patch p, A[p, p'] = mean over backbone heads of softmax_p'(q_t[p] . k_t-1[p'] / sqrt(d)),
    and the output is sum_p' A[p, p'] * w_prev[displacement(p, p')]; likewise with frame t+1 and
    w_next. The class token gets nothing; the first frame has no previous-frame term, the last
    no next-frame term.
    """

    def __init__(self, width: int, grid: tuple[int, int]):
        super().__init__()
        num_displacements = (2 * grid[0] - 1) * (2 * grid[1] - 1)
        self.w_prev = nn.Parameter(torch.zeros(num_displacements, width))  # official name: w1
        self.w_next = nn.Parameter(torch.zeros(num_displacements, width))  # official name: w2
        # Rebuilt from the grid, never saved (the official checkpoints do not hold it either).
        self.register_buffer("index", displacement_index(grid), persistent=False)

    def attend(self, q: torch.Tensor, k: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """q of some frames against k of their neighbours, each (B, T', H, P, d) -> (B, T', P, C)."""
        attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, T', H, P, P)
        attn = attn.softmax(dim=-1).mean(dim=2)  # (B, T', P, P), heads averaged
        # A query patch sees each displacement at most once, so its attention over key patches is
        # an attention over displacements: scatter it there, then one matmul with the table. Same
        # sum as gathering table[index] (P, P, C), without materialising that table per layer.
        index = self.index.expand(attn.shape)
        attn = attn.new_zeros(*attn.shape[:-1], table.shape[0]).scatter_(-1, index, attn)  # (B, T', P, R)
        return attn @ table.to(attn.dtype)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Backbone q, k (B, T, H, L, d) in fp32 -> (B, T, L, C)."""
        q, k = q[..., 1:, :], k[..., 1:, :]  # drop the class token: (B, T, H, P, d)
        from_prev = self.attend(q[:, 1:], k[:, :-1], self.w_prev)  # frames 1..T-1
        from_next = self.attend(q[:, :-1], k[:, 1:], self.w_next)  # frames 0..T-2
        out = F.pad(from_prev, (0, 0, 0, 0, 1, 0)) + F.pad(from_next, (0, 0, 0, 0, 0, 1))  # (B, T, P, C)
        return F.pad(out, (0, 0, 1, 0))  # zero row for the class token: (B, T, L, C)


# ---------------------------------------------------------------------------------------------
# Decoder: one learned query attends to the enriched features of each chosen block in turn.


class QueryAttention(nn.Module):
    """Multi-head attention of queries (B, Q, C) over a memory (B, M, C); q/k/v width D may differ from C."""

    def __init__(self, width: int, qkv_dim: int, heads: int):
        super().__init__()
        if qkv_dim % heads:
            raise ValueError(f"EVL decoder: decoder_qkv_dim={qkv_dim} is not divisible by decoder_heads={heads}")
        self.heads = heads
        self.q_proj = nn.Linear(width, qkv_dim)
        self.k_proj = nn.Linear(width, qkv_dim)
        self.v_proj = nn.Linear(width, qkv_dim)
        self.out_proj = nn.Linear(qkv_dim, width)
        for linear in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        def split_heads(x: torch.Tensor) -> torch.Tensor:
            return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, H, len, D/H)

        q = split_heads(self.q_proj(query))
        k, v = split_heads(self.k_proj(memory)), split_heads(self.v_proj(memory))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, Q, D/H)
        return self.out_proj(out.transpose(1, 2).flatten(2))  # (B, Q, C)


class DecoderBlock(nn.Module):
    """Temporal modules on one backbone block's features, then the query attends to them (pre-norm).

    There is no self-attention: with a single query there is nothing to attend to.
    """

    def __init__(self, config: "Config", width: int, grid: tuple[int, int], heads: int):
        super().__init__()
        self.temporal_conv = TemporalConvolution(width) if config.temporal_conv else None
        self.temporal_embedding = nn.Parameter(torch.zeros(config.num_frames, width)) if config.temporal_embedding else None
        self.temporal_cross_attention = TemporalCrossAttention(width, grid) if config.temporal_cross_attention else None
        self.query_norm = LayerNorm(width)  # official names: norm1, norm3, norm2
        self.memory_norm = LayerNorm(width)
        self.attn = QueryAttention(width, config.decoder_qkv_dim or width, heads)
        self.mlp_norm = LayerNorm(width)
        hidden = round(config.decoder_mlp_ratio * width)
        self.mlp = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(width, hidden), act=QuickGELU(), dropout=nn.Dropout(config.mlp_dropout), fc2=nn.Linear(hidden, width)
            )
        )
        for linear in (self.mlp.fc1, self.mlp.fc2):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.normal_(linear.bias, std=1e-6)

    def enrich(self, features: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Frame features (B, T, L, C) plus the temporal terms; all computed from the unmodified inputs."""
        out = features
        if self.temporal_conv is not None:
            out = out + self.temporal_conv(features)
        if self.temporal_embedding is not None:
            out = out + self.temporal_embedding[:, None]  # (T, 1, C): one vector per frame
        if self.temporal_cross_attention is not None:
            out = out + self.temporal_cross_attention(q, k)
        return out

    def forward(self, query: torch.Tensor, features: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        memory = self.memory_norm(self.enrich(features, q, k).flatten(1, 2))  # (B, T*L, C)
        query = query + self.attn(self.query_norm(query), memory)  # (B, 1, C)
        return query + self.mlp(self.mlp_norm(query))


# ---------------------------------------------------------------------------------------------
# The model


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp16!": torch.float16}


def cast_backbone(visual: nn.Module, dtype: torch.dtype) -> None:
    """Everything but the LayerNorms in `dtype` (the official `freeze_fp16` rule); norms stay fp32."""
    for module in visual.modules():
        if isinstance(module, nn.LayerNorm):
            continue
        for param in module.parameters(recurse=False):
            param.data = param.data.to(dtype)


class EVL(VideoRecognizer):
    """Video (B, T, 3, H, W) -> logits (B, K) from a frozen CLIP and a query decoder."""

    decay_all = True  # the official AdamW decays every trainable parameter, norms and tokens included

    def __init__(self, config: "Config", clip: nn.Module, num_classes: int):
        super().__init__(config)
        if config.backbone_precision not in PRECISIONS:
            raise ValueError(f"model.backbone_precision must be one of {sorted(PRECISIONS)}, got {config.backbone_precision!r}")
        if not config.freeze_backbone and config.backbone_precision != "fp32":  # fp16! included
            raise ValueError(
                "model.backbone_precision must be fp32 when the backbone is trained (freeze_backbone: false); "
                "use train.precision for mixed precision"
            )
        visual = clip.visual
        num_blocks = len(visual.transformer.resblocks)
        if not 1 <= config.decoder_layers <= num_blocks:
            raise ValueError(f"model.decoder_layers={config.decoder_layers} must be in 1..{num_blocks} (backbone blocks)")
        width = visual.width
        self.num_classes = num_classes
        self.grid = (visual.image_size // visual.patch_size,) * 2
        self.clip = clip  # registered, so state_dict() holds the backbone and a checkpoint needs no CLIP file
        heads = config.decoder_heads or max(1, (config.decoder_qkv_dim or width) // 64)
        self.query_token = nn.Parameter(torch.zeros(width))  # official: decoder.cls_token
        if config.query_init_std:
            nn.init.normal_(self.query_token, std=config.query_init_std)
        self.decoder = nn.ModuleList(DecoderBlock(config, width, self.grid, heads) for _ in range(config.decoder_layers))
        self.head = nn.Sequential(
            OrderedDict(norm=LayerNorm(width), dropout=nn.Dropout(config.head_dropout), fc=nn.Linear(width, num_classes))
        )
        if config.freeze_backbone:
            freeze(self.clip)
            precision = config.backbone_precision
            if not torch.cuda.is_available():
                # It can only run on this CPU: emulated fp16 is ~10x slower, so bf16 unless "fp16!".
                precision = fp16_on_cpu(precision, "model.backbone_precision")
            cast_backbone(visual, PRECISIONS[precision])

    def frozen_modules(self) -> list[nn.Module]:
        return [self.clip] if self.config.freeze_backbone else []

    def check_input(self, video: torch.Tensor) -> None:
        if video.dim() != 5 or video.shape[2] != 3:
            raise ValueError(f"EVL expects video (B, T, 3, H, W), got shape {tuple(video.shape)}")
        num_frames, size = video.shape[1], video.shape[-2:]
        if self.config.temporal_embedding and num_frames != self.config.num_frames:
            raise ValueError(
                f"this EVL model was built for {self.config.num_frames} frames (temporal position embedding), "
                f"got {num_frames}; sample that many frames (data.num_frames)"
            )
        patch = self.clip.visual.patch_size
        if self.config.temporal_cross_attention and (size[0] // patch, size[1] // patch) != self.grid:
            raise ValueError(
                f"this EVL model was built for {self.grid[0] * patch}x{self.grid[1] * patch} input (temporal "
                f"cross-attention tables), got {size[0]}x{size[1]}; set data.input_size accordingly"
            )

    def input_config(self) -> dict:
        """The official test input: dense clips, stride 16 (8 for the 32-frame releases, 8x16 / 16x16
        / 32x8), short side = crop, CLIP mean/std; 3 temporal x 1 spatial views for 8 frames, 1 x 3
        spatial crops for 16/32; softmax averaged over views."""
        size = self.clip.visual.image_size
        views = {"num_clips": 3, "num_crops": 1} if self.config.num_frames <= 8 else {"num_clips": 1, "num_crops": 3}
        return {"data": {"num_frames": self.config.num_frames, "sampling": "dense", "sampling_protocol": "evl",
                         "frame_stride": 8 if self.config.num_frames >= 32 else 16, "input_size": size,
                         "short_side": size, "normalization": "clip"},
                "test": {**views, "aggregate": "prob"}}

    def encode_blocks(self, video: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(B, T, 3, H, W) -> per chosen block (shallowest first): out (B, T, L, C), q and k (B, T, H, L, d),
        in the decoder's dtype (fp32 over a reduced-precision frozen backbone; bf16 on the fast path)."""
        batch, num_frames = video.shape[:2]
        frames = video.flatten(0, 1)  # (B*T, 3, H, W), frame index b*T + t
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_backbone):
            blocks = self.clip.visual.forward_intermediates(frames, indices=self.config.decoder_layers).blocks
        return [tuple(x.to(self.query_token.dtype).unflatten(0, (batch, num_frames)) for x in (tap.out, tap.q, tap.k)) for tap in blocks]

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, C): the decoder's query token after the last decoder layer."""
        self.check_input(video)
        query = self.query_token.expand(video.shape[0], 1, -1)  # (B, 1, C)
        for block, (features, q, k) in zip(self.decoder, self.encode_blocks(video)):
            query = block(query, features, q, k)
        return query[:, 0]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)  # (B, K)


@dataclass
class Config:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    num_frames: int = 8  # T; the temporal position embedding has T rows
    decoder_layers: int = 4  # K decoder layers reading the last K backbone blocks
    decoder_qkv_dim: int | None = None  # decoder q/k/v width; None = backbone width (768 for B/16, 1024 for L/14)
    decoder_heads: int | None = None  # independent of backbone heads; None = decoder_qkv_dim // 64 (12 / 16)
    decoder_mlp_ratio: float = 4.0  # decoder MLP hidden = round(ratio * width)
    temporal_conv: bool = True  # depthwise temporal convolution (ablation: off)
    temporal_embedding: bool = True  # temporal position embedding (ablation: off)
    temporal_cross_attention: bool = True  # displacement-table cross-attention between adjacent frames (ablation: off)
    mlp_dropout: float = 0.5  # inside the decoder MLPs, after the activation (official 0.5)
    head_dropout: float = 0.5  # before the final linear layer (official 0.5)
    query_init_std: float = 0.0  # the official query token starts at zero (its N(0, 0.02) init is never called)
    freeze_backbone: bool = True  # false fine-tunes CLIP too (crashes in the official code; works here)
    backbone_precision: str = "fp32"  # frozen backbone weights: fp32 | fp16 (official freeze_fp16; bf16 on CPUs without native fp16) | fp16! (fp16 always) | bf16 (fast on CPU)


def build(config: Config, num_classes: int, class_names: list[str] | None = None) -> EVL:
    """EVL on CLIP weights (config.backbone.pretrained) or a random/recorded architecture."""
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"EVL: {len(class_names)} class names for {num_classes} classes")
    # The image tower alone, without CLIP's projection: EVL reads block outputs, not embeddings.
    model = EVL(config, build_clip(config.backbone, with_text=False, vision_output_dim=None), num_classes)
    if class_names is not None:
        model.class_names = list(class_names)  # for predictions; the linear head cannot take new names
    return model
