"""AIM: "Adapting Image Models for Efficient Video Action Recognition".

Yang et al., ICLR 2023, arXiv:2302.03024. Official code: github.com/taoyang1122/adapt-image-models
(commit b3580d2, MMAction2 0.15).

The CLIP image tower stays frozen; small bottleneck adapters (Linear D -> D/4, GELU, Linear back)
are inserted into every block, and only they, a temporal embedding, ln_post and a linear head
train (about 11 % of ViT-B/16). Each block runs three steps, in data-flow order:
1. Temporal adaptation: the block's own frozen ln_1 and attention are reused over the T frames of
   each token position (batch B*n, sequence T) and a temporal adapter (no skip) maps the result
   into the residual stream. The SSv2 model adds a second adapter (with skip) before the attention.
2. Spatial adaptation: the usual attention over the frame's tokens, followed by an adapter with a
   skip connection (the frozen attention output passes in full, plus the adapter's correction).
3. Joint adaptation: an adapter (no skip) parallel to the frozen MLP, scaled by `adapter_scale`.
Every adapter's second layer starts at zero, so at step 0 the model is frame-wise CLIP with the
per-frame class tokens averaged (the I3D head: mean over frames, dropout, linear).

Official behaviour kept (fp32 logits to 2e-6 for the same weights): the temporal embedding is
added to every token, the class token included, before ln_pre; features are the ln_post class
tokens without CLIP's projection; drop path masks whole token positions (the official DropPath
sees the sequence-first tensor, so its "sample" axis is the token axis) and only on the temporal
and MLP-adapter branches; the weight-decay groups of the official mmcv `custom_keys`, including
ln_post being decayed under the large models' backbone LR multiplier.
"""

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from ..clip import QuickGELU, ResidualAttentionBlock
from .base import BackboneConfig, VideoRecognizer, build_clip

# The official mmcv `custom_keys` with decay_mult 0 (matched as substrings, CLIP names).
NO_DECAY_KEYS = ("class_embedding", "positional_embedding", "ln_1", "ln_2", "ln_pre", "ln_post")
# Substrings of the parameters AIM trains; everything else of CLIP is frozen (official rule).
TRAINABLE_KEYS = ("_adapter", "temporal_embedding", "ln_post", "head.")


def drop_token_positions(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth as the official model applies it: on (B*T, n, D) the mask is drawn per
    token position (axis 1) and shared by every clip and frame of the batch; survivors are
    scaled by 1/keep. (The official DropPath gets sequence-first tensors, whose axis 0 is n.)"""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((1, x.shape[1]) + (1,) * (x.ndim - 2)).bernoulli_(keep)
    return x * mask.div_(keep)


class Adapter(nn.Module):
    """Bottleneck D -> D*ratio -> D with exact GELU; with `skip`, x + bottleneck(x)."""

    def __init__(self, width: int, ratio: float = 0.25, skip: bool = True):
        super().__init__()
        hidden = int(width * ratio)
        self.skip = skip
        self.down = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, width)
        nn.init.trunc_normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        # Zero output layer: the adapter starts as the identity (skip) or as nothing (no skip).
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.up(self.act(self.down(x)))
        return x + out if self.skip else out


class AdaptedBlock(ResidualAttentionBlock):
    """A frozen CLIP block with temporal, spatial and joint adapters: (B*T, n, D) -> same.

    Frames of one video are adjacent in the batch axis (row b*T + t). The stock `ln_1, attn,
    ln_2, mlp` keep their OpenAI names, so CLIP weights load; the adapters are new.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, act_layer=QuickGELU, index: int = 0, *,
                 adapter_ratio: float = 0.25, adapter_scale: float = 0.5, second_temporal_adapter: bool = False):
        super().__init__(width, heads, mlp_ratio, act_layer, index)
        self.adapter_scale = adapter_scale
        self.temporal_adapter_in = Adapter(width, adapter_ratio, skip=True) if second_temporal_adapter else None
        self.temporal_adapter = Adapter(width, adapter_ratio, skip=False)
        self.spatial_adapter = Adapter(width, adapter_ratio, skip=True)
        self.mlp_adapter = Adapter(width, adapter_ratio, skip=False)
        self.drop_path_rate = 0.0  # set per block by AIM (linear 0 -> rate over depth)

    def temporal_attention(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The frozen ln_1 + attention over time, per token position: (B*T, n, D) -> (B*T, n, D)."""
        frames, length, width = x.shape
        batch = frames // num_frames
        xt = x.view(batch, num_frames, length, width).transpose(1, 2).reshape(batch * length, num_frames, width)
        xt = self.ln_1(xt)  # (B*n, T, D)
        if self.temporal_adapter_in is not None:
            xt = self.temporal_adapter_in(xt)
        xt = self.temporal_adapter(self.attn(xt))  # (B*n, T, D)
        return xt.view(batch, length, num_frames, width).transpose(1, 2).reshape(frames, length, width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, *, num_frames: int) -> torch.Tensor:
        if x.shape[0] % num_frames:
            raise ValueError(f"AIM block: {x.shape[0]} frames are not a whole number of {num_frames}-frame clips")
        x = x + drop_token_positions(self.temporal_attention(x, num_frames), self.drop_path_rate, self.training)
        x = x + self.spatial_adapter(self.attention(x, attn_mask))
        h = self.ln_2(x)
        joint = self.adapter_scale * self.mlp_adapter(h)
        return x + self.mlp(h) + drop_token_positions(joint, self.drop_path_rate, self.training)


# ---------------------------------------------------------------------------------------------
# The model


@dataclass
class Config:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    num_frames: int = 8  # T; the temporal embedding has T rows (official: must equal the clip length)
    adapter_ratio: float = 0.25  # adapter bottleneck = int(width * ratio) (official 0.25: 192 for B/16)
    adapter_scale: float = 0.5  # scale of the MLP adapter's output (official 0.5; SSv2 1.0)
    second_temporal_adapter: bool = False  # official num_tadapter=2: an adapter with skip before the temporal attention (SSv2)
    drop_path_rate: float = 0.2  # linear 0 -> rate over the blocks (official recipes 0.2), token-position masks
    head_dropout: float = 0.5  # before the linear head (official I3DHead 0.5)
    head_init_std: float = 0.01  # official I3DHead normal(0, 0.01) weights, zero bias
    backbone_lr_scale: float | None = None  # official L/14 K400/SSv2: 0.1 for every backbone parameter (ln_post then decays)
    # The input the model was trained on, stored with it so predict/test feed it the same way.
    sampling: str = "dense"  # dense (Kinetics) | segment (uniform: SSv2, Diving-48)
    frame_stride: int | None = None  # dense interval; None = 128 // num_frames (official 8x16, 16x8, 32x4)


def check_video(video: torch.Tensor, num_frames: int) -> tuple[int, int]:
    """(B, T) of a (B, T, 3, H, W) video for an AIM model built for `num_frames` (its temporal
    embedding has that many rows), or a one-line ValueError saying what to sample."""
    if video.ndim != 5 or video.shape[2] != 3:
        raise ValueError(f"AIM expects video shaped (B, T, 3, H, W), got {tuple(video.shape)}")
    if video.shape[1] != num_frames:
        raise ValueError(f"this AIM model was built for {num_frames} frames (temporal embedding), got {video.shape[1]}; "
                         "sample that many frames (data.num_frames)")
    return video.shape[0], video.shape[1]


class AdapterModel(VideoRecognizer):
    """What AIM on CLIP and AIM on a timm ViT share: the I3D head on frame-averaged class tokens, the
    official test input, the backbone LR multiplier and the official parameter count. A subclass
    gives `frame_features`, `image_size` and `input_normalization`."""

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, D): the I3D head's average pool over frames."""
        return self.frame_features(video).mean(dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)  # (B, K)

    def input_config(self) -> dict:
        """The official test input: frames and sampling as trained, short side = crop size, the
        model's normalisation (`input_normalization`); softmax averaged over views."""
        config, size = self.config, self.image_size
        settings = {"num_frames": config.num_frames, "sampling": config.sampling, "sampling_protocol": "aim",
                    "input_size": size, "short_side": size, "normalization": self.input_normalization}
        if config.sampling == "dense":
            settings.update(frame_stride=config.frame_stride or max(1, 128 // config.num_frames), out_of_bounds="loop")
        return {"data": settings, "test": {"aggregate": "prob"}}

    def lr_scale(self, name: str) -> float:
        """Official L/14 recipes: x`backbone_lr_scale` for everything but the head."""
        scale = self.config.backbone_lr_scale
        return 1.0 if scale is None or name.startswith("head.") else scale

    def parameter_counts(self) -> dict[str, int]:
        """Total and tunable parameters (the official count: head included)."""
        params = list(self.parameters())
        return {"total": sum(p.numel() for p in params), "tunable": sum(p.numel() for p in params if p.requires_grad)}


class AIM(AdapterModel):
    """Video (B, T, 3, H, W), CLIP-normalised -> logits (B, K) from a frozen CLIP with adapters."""

    def __init__(self, config: Config, clip: nn.Module, num_classes: int):
        super().__init__(config)
        visual = clip.visual
        self.clip = clip
        self.num_classes = num_classes
        self.temporal_embedding = nn.Parameter(torch.zeros(1, config.num_frames, visual.width))
        self.head = nn.Sequential(OrderedDict(dropout=nn.Dropout(config.head_dropout),
                                              fc=nn.Linear(visual.width, num_classes)))
        nn.init.normal_(self.head.fc.weight, std=config.head_init_std)
        nn.init.zeros_(self.head.fc.bias)
        blocks = visual.transformer.resblocks
        for i, block in enumerate(blocks):
            block.drop_path_rate = config.drop_path_rate * i / max(len(blocks) - 1, 1)  # torch.linspace(0, rate, L)
        for name, param in self.named_parameters():
            param.requires_grad_(any(key in name for key in TRAINABLE_KEYS))

    def frozen_modules(self) -> list[nn.Module]:
        # Wholly frozen modules; the blocks stay in train mode (their adapters use drop path).
        return [self.clip.visual.conv1, self.clip.visual.ln_pre]

    def frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> per-frame ln_post class tokens (B, T, D)."""
        batch, num_frames = check_video(video, self.config.num_frames)
        visual = self.clip.visual
        x = visual.tokens(video.flatten(0, 1))  # (B*T, n, D), positions added
        length, width = x.shape[1:]
        # One learned vector per frame, added to every token of that frame (class token included).
        x = x.view(batch, num_frames, length, width) + self.temporal_embedding.to(x.dtype)[:, :, None]
        x = visual.ln_pre(x.view(batch * num_frames, length, width))
        x = visual.transformer(x, num_frames=num_frames)  # (B*T, n, D)
        return visual.pool(x).view(batch, num_frames, width)  # ln_post(class token), no projection

    @property
    def image_size(self) -> int:
        return self.clip.config.image_resolution

    input_normalization = "aim"  # CLIP mean/std as the official configs write them (x255)

    # -- optimisation ---------------------------------------------------------------------------

    def no_weight_decay(self, name: str, param: nn.Parameter) -> bool:
        """The official mmcv rule: adapters (biases too), temporal embedding and head decay; ln_post
        does not, unless the backbone LR multiplier is set, whose longer key wins over 'ln_post'."""
        if self.config.backbone_lr_scale is not None and not name.startswith("head."):
            return False
        return any(key in name for key in NO_DECAY_KEYS)


def check_config(config: Config) -> None:
    if config.num_frames < 1:
        raise ValueError(f"AIM: num_frames must be >= 1, got {config.num_frames}")
    if config.sampling not in ("dense", "segment"):
        raise ValueError(f"AIM: sampling must be 'dense' or 'segment', got {config.sampling!r}")
    if not 0.0 <= config.drop_path_rate < 1.0:
        raise ValueError(f"AIM: drop_path_rate must be in [0, 1), got {config.drop_path_rate}")


def new_parameter(key: str) -> bool:
    """CLIP-side parameters AIM adds (the adapters): absent from CLIP checkpoints."""
    return "_adapter" in key


def build(config: Config, num_classes: int, class_names: list[str] | None = None) -> AIM:
    """AIM on CLIP weights (config.backbone.pretrained) or a random/recorded architecture."""
    check_config(config)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"AIM: {len(class_names)} class names for {num_classes} classes")
    block = partial(AdaptedBlock, adapter_ratio=config.adapter_ratio, adapter_scale=config.adapter_scale,
                    second_temporal_adapter=config.second_temporal_adapter)
    # The image tower alone, without CLIP's projection: AIM classifies the D-wide class tokens.
    clip = build_clip(config.backbone, vision_block=block, new_keys=new_parameter, with_text=False,
                      vision_output_dim=None)
    model = AIM(config, clip, num_classes)
    if class_names is not None:
        model.class_names = list(class_names)  # for predictions; the linear head cannot take new names
    return model
