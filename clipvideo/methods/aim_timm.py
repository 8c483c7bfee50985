"""AIM on an ImageNet ViT: any timm ViT of the standard layout as the frozen image model.

The official repository (github.com/taoyang1122/adapt-image-models, commit b3580d2) ships a second
backbone besides CLIP, `ViT_ImageNet` (configs vit_imagenet_k400.py / vit_imagenet_ssv2.py): the
ImageNet-21k ViT-B/16 of `jx_vit_base_p16_224-80ecf9dd.pth` with the same three adapters per block
as AIM on CLIP (clipvideo/methods/aim.py). This module builds that model on timm's
`VisionTransformer` (the jx_vit files are timm files: same names, same layout), so every standard
timm ViT works the same way: ViT-T/S/B/L, patch 16 or 32, other resolutions (positional embedding
resampled by timm), ImageNet-1k/21k/AugReg weights, read from a local file (no hub access).

Differences from AIM on CLIP, all as the official ViT_ImageNet does them:
- timm's pre-norm block (LayerNorm eps 1e-6, exact GELU, fused qkv); no `ln_pre`. The temporal
  embedding is added to every token after the positional embedding.
- The final norm (timm `norm`, official `ln_post`, loaded from the weight file's `norm`) trains.
- Stochastic depth is timm's `DropPath` on batch-first (B*T, n, D) tokens, so its mask falls on
  whole frames (the CLIP model's sequence-first layout makes the official mask fall on token
  positions instead); it acts on the temporal and MLP-adapter branches only.
- The official configs normalise with ImageNet's mean/std (`data.normalization: imagenet`).

Architecture comes from the tensor shapes (width, depth, patch, grid, MLP width, qkv bias); heads
(shapes cannot tell) default to width // 64, which is right for timm's ViT-T/S/B/L.
"""

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path

import torch
from torch import nn

from ..clip import CheckpointError, read_state_dict
from .aim import Adapter, AdapterModel, check_video

# Substrings of the parameters AIM trains (official rule: Adapter, temporal_embedding, ln_post, cls_head).
TRAINABLE_KEYS = ("_adapter", "temporal_embedding", "vit.norm.", "head.")
# Weight-file entries that are not part of the frozen image model: the ImageNet classifier.
_CLASSIFIER = re.compile(r"^(head|head_dist|pre_logits)\.")
# Files looked for, in order, when `pretrained` is a folder (a timm / Hugging Face hub download).
_FOLDER_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class ViTBackboneConfig:
    """Which timm ViT to start from."""

    arch: str = "vit_base_patch16_224"  # timm model name: the architecture of random weights when `pretrained` is empty
    pretrained: str | None = None  # local timm ViT weights (jx_vit_*.pth, .bin, .safetensors, or a hub folder)
    heads: int | None = None  # attention heads; default width // 64 (tensor shapes cannot tell)
    image_resolution: int | None = None  # input size; the positional embedding is resampled to it
    architecture: dict | None = None  # resolved VisionTransformer arguments, filled in on build (rebuilds saved models)


@dataclass
class Config:
    backbone: ViTBackboneConfig = field(default_factory=ViTBackboneConfig)
    num_frames: int = 8  # T; the temporal embedding has T rows
    adapter_ratio: float = 0.25  # adapter bottleneck = int(width * ratio) (192 for ViT-B)
    adapter_scale: float = 0.5  # scale of the MLP adapter's output (official K400 0.5; SSv2 1.0)
    second_temporal_adapter: bool = False  # official num_tadapter=2 (SSv2): an adapter with skip before temporal attention
    drop_path_rate: float = 0.2  # linear 0 -> rate over the blocks (timm DropPath: whole frames)
    head_dropout: float = 0.5  # official I3DHead
    head_init_std: float = 0.01  # official I3DHead normal(0, 0.01) weights, zero bias
    backbone_lr_scale: float | None = None  # LR multiplier for everything but the head (the official ImageNet configs: none)
    sampling: str = "dense"  # dense (Kinetics) | segment (uniform: SSv2)
    frame_stride: int | None = None  # dense interval; None = 128 // num_frames
    normalization: str = "imagenet"  # input mean/std the model expects (official ImageNet configs: ImageNet's)


@cache
def adapted_block_class() -> type:
    """timm's ViT block with AIM's adapters; made on first use, so importing clipvideo does not import timm."""
    from timm.models.vision_transformer import Block

    class AdaptedViTBlock(Block):
        """timm's ViT block with AIM's temporal, spatial and MLP adapters: (B*T, n, D) -> same.

        The stock `norm1, attn, norm2, mlp` keep timm's names, so timm / jx_vit weights load.
        """

        def __init__(self, *args, adapter_ratio: float = 0.25, adapter_scale: float = 0.5,
                     second_temporal_adapter: bool = False, **kwargs):
            super().__init__(*args, **kwargs)
            width = self.norm1.normalized_shape[0]
            self.adapter_scale = adapter_scale
            self.temporal_adapter_in = Adapter(width, adapter_ratio, skip=True) if second_temporal_adapter else None
            self.temporal_adapter = Adapter(width, adapter_ratio, skip=False)
            self.spatial_adapter = Adapter(width, adapter_ratio, skip=True)
            self.mlp_adapter = Adapter(width, adapter_ratio, skip=False)

        def temporal_attention(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
            """The frozen norm1 + attention over time, per token position: (B*T, n, D) -> (B*T, n, D)."""
            frames, length, width = x.shape
            batch = frames // num_frames
            xt = x.view(batch, num_frames, length, width).transpose(1, 2).reshape(batch * length, num_frames, width)
            xt = self.norm1(xt)  # (B*n, T, D)
            if self.temporal_adapter_in is not None:
                xt = self.temporal_adapter_in(xt)
            xt = self.temporal_adapter(self.attn(xt))
            return xt.view(batch, length, num_frames, width).transpose(1, 2).reshape(frames, length, width)

        def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
            if x.shape[0] % num_frames:
                raise ValueError(f"AIM block: {x.shape[0]} frames are not a whole number of {num_frames}-frame clips")
            # drop_path1: timm's DropPath (Identity at rate 0); the official block uses one for both branches.
            x = x + self.drop_path1(self.temporal_attention(x, num_frames))
            x = x + self.spatial_adapter(self.attn(self.norm1(x)))
            h = self.norm2(x)
            return x + self.mlp(h) + self.drop_path1(self.adapter_scale * self.mlp_adapter(h))

    return AdaptedViTBlock


# ---------------------------------------------------------------------------------------------
# The architecture, from tensor shapes


def _blocks(sd: dict) -> list[int]:
    pattern = re.compile(r"^blocks\.(\d+)\.")
    return sorted({int(m.group(1)) for key in sd if (m := pattern.match(key))})


def vit_architecture(sd: dict[str, torch.Tensor], path, heads: int | None = None,
                     image_resolution: int | None = None) -> dict:
    """VisionTransformer arguments of a timm-named ViT state dict (standard layout: class token,
    learned positions with a class row, pre-norm blocks, final norm)."""
    for key in ("patch_embed.proj.weight", "cls_token", "pos_embed", "blocks.0.mlp.fc1.weight", "norm.weight"):
        if key not in sd:
            raise CheckpointError(
                f"{path}: not a timm ViT of the standard layout: no {key!r} ({len(sd)} tensors, e.g. {sorted(sd)[:3]})"
            )
    width, channels, patch, patch_w = sd["patch_embed.proj.weight"].shape
    if patch != patch_w or channels != 3:
        raise CheckpointError(f"{path}: patch_embed.proj.weight {tuple(sd['patch_embed.proj.weight'].shape)}: "
                              "expected square patches of RGB input")
    rows = sd["pos_embed"].shape[1] - 1
    grid = int(round(rows**0.5))
    if grid * grid != rows:
        raise CheckpointError(f"{path}: pos_embed has {rows} patch rows, not a square grid (plus one class row)")
    depth = _blocks(sd)
    if depth != list(range(len(depth))):
        raise CheckpointError(f"{path}: blocks {depth} are not numbered 0..L-1")
    heads = heads or max(1, width // 64)
    if width % heads:
        raise CheckpointError(f"{path}: heads={heads} does not divide the width {width}")
    return {
        "img_size": image_resolution or grid * patch, "patch_size": patch, "embed_dim": width, "depth": len(depth),
        "num_heads": heads, "mlp_ratio": sd["blocks.0.mlp.fc1.weight"].shape[0] / width,
        "qkv_bias": "blocks.0.attn.qkv.bias" in sd,
    }


def weights_file(path: str | Path) -> Path:
    """The weights file of `path`, or of a hub download folder holding one."""
    path = Path(path)
    if path.is_dir():
        found = next((path / name for name in _FOLDER_FILES if (path / name).is_file()), None)
        if found is None:
            raise CheckpointError(f"{path}: folder without ViT weights (looked for {', '.join(_FOLDER_FILES)})")
        return found
    return path


def read_vit_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A timm ViT state dict from a local file, fp32, classifier entries removed."""
    path = weights_file(path)
    sd = read_state_dict(path)
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items() if not _CLASSIFIER.match(k)}


def _named_architecture(name: str, heads: int | None, image_resolution: int | None) -> dict:
    """The architecture of a timm model name, read off a weightless (meta-device) instance; names
    of other layouts (register tokens, layer scale, CLIP-style pre-norm, ...) are refused."""
    import timm
    from timm.models.vision_transformer import VisionTransformer

    try:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False, num_classes=0)
    except RuntimeError as error:
        raise ValueError(f"model.backbone.arch: {name!r} is not a timm model ({error}); "
                         "see timm.list_models('vit_*')") from None
    keys = set(model.state_dict())
    try:
        architecture = vit_architecture(model.state_dict(), f"timm model {name!r}", heads, image_resolution)
    except CheckpointError as error:
        raise ValueError(f"model.backbone.arch: {error}") from None
    with torch.device("meta"):
        standard = set(VisionTransformer(**architecture, num_classes=0).state_dict())
    if keys != standard:
        differs = sorted(keys ^ standard)[0]
        raise ValueError(f"model.backbone.arch: {name!r} is not a ViT of the standard layout (class token, "
                         f"pre-norm blocks, final norm): it differs at {differs!r}")
    return architecture


# ---------------------------------------------------------------------------------------------
# The model


class AIMViT(AdapterModel):
    """Video (B, T, 3, H, W), normalised -> logits (B, K) from a frozen timm ViT with AIM's adapters."""

    def __init__(self, config: Config, vit: nn.Module, num_classes: int):
        super().__init__(config)
        self.vit = vit  # timm VisionTransformer, no classifier; its blocks are AdaptedViTBlock
        self.num_classes = num_classes
        width = vit.embed_dim
        self.temporal_embedding = nn.Parameter(torch.zeros(1, config.num_frames, width))
        self.head = nn.Sequential(OrderedDict(dropout=nn.Dropout(config.head_dropout),
                                              fc=nn.Linear(width, num_classes)))
        nn.init.normal_(self.head.fc.weight, std=config.head_init_std)
        nn.init.zeros_(self.head.fc.bias)
        for name, param in self.named_parameters():
            param.requires_grad_(any(key in name for key in TRAINABLE_KEYS))

    def frozen_modules(self) -> list[nn.Module]:
        return [self.vit.patch_embed]

    def frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> per-frame final-norm class tokens (B, T, D)."""
        batch, num_frames = check_video(video, self.config.num_frames)
        size = self.vit.patch_embed.img_size
        if tuple(video.shape[-2:]) != tuple(size):
            raise ValueError(f"this AIM model takes {size[0]}x{size[1]} frames, got {video.shape[-2]}x{video.shape[-1]} "
                             "(data.input_size; or model.backbone.image_resolution to resample the positions)")
        vit = self.vit
        x = vit._pos_embed(vit.patch_embed(video.flatten(0, 1)))  # (B*T, n, D): class token, positions
        length, width = x.shape[1:]
        x = x.view(batch, num_frames, length, width) + self.temporal_embedding.to(x.dtype)[:, :, None]
        x = vit.norm_pre(vit.patch_drop(x.view(batch * num_frames, length, width)))  # identities in this layout
        for block in vit.blocks:
            x = block(x, num_frames)
        return vit.norm(x[:, 0]).view(batch, num_frames, width)  # official ln_post, per token: class token only

    @property
    def image_size(self) -> int:
        return self.vit.patch_embed.img_size[0]

    @property
    def input_normalization(self) -> str:
        return self.config.normalization  # official ImageNet configs: ImageNet mean/std

    def no_weight_decay(self, name: str, param: nn.Parameter) -> bool:
        """The official mmcv `custom_keys` on this model: of the trainable parameters only `ln_post`
        (our `vit.norm`) is exempt; under a backbone LR multiplier its longer key wins and it decays."""
        if self.config.backbone_lr_scale is not None:
            return False
        return name.startswith("vit.norm.")


def check_config(config: Config) -> None:
    if config.num_frames < 1:
        raise ValueError(f"AIM: num_frames must be >= 1, got {config.num_frames}")
    if config.sampling not in ("dense", "segment"):
        raise ValueError(f"AIM: sampling must be 'dense' or 'segment', got {config.sampling!r}")
    if not 0.0 <= config.drop_path_rate < 1.0:
        raise ValueError(f"AIM: drop_path_rate must be in [0, 1), got {config.drop_path_rate}")
    if config.normalization not in ("imagenet", "clip"):
        raise ValueError(f"AIM: normalization must be 'imagenet' or 'clip', got {config.normalization!r}")


def build_vit(config: Config, architecture: dict) -> nn.Module:
    """timm's VisionTransformer with AIM blocks, no classifier; adapters start as in the paper."""
    from timm.models.vision_transformer import VisionTransformer

    block = partial(adapted_block_class(), adapter_ratio=config.adapter_ratio, adapter_scale=config.adapter_scale,
                    second_temporal_adapter=config.second_temporal_adapter)
    vit = VisionTransformer(**architecture, num_classes=0, drop_path_rate=config.drop_path_rate, block_fn=block)
    for module in vit.modules():  # timm's init re-drew every Linear, the adapters' zero layers included
        if isinstance(module, Adapter):
            nn.init.trunc_normal_(module.down.weight, std=0.02)
            nn.init.zeros_(module.down.bias)
            nn.init.zeros_(module.up.weight)
            nn.init.zeros_(module.up.bias)
    return vit


def load_vit_weights(vit: nn.Module, sd: dict[str, torch.Tensor], path) -> None:
    """Load the frozen image model strictly: every tensor used, only the adapters left out."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    sd = checkpoint_filter_fn(sd, vit)  # timm's conventions: positions resampled to this grid, old layouts
    target = vit.state_dict()
    for key, value in sd.items():
        if key not in target:
            raise CheckpointError(f"{path}: unexpected tensor {key!r} {tuple(value.shape)}: not a timm ViT of the "
                                  "standard layout (class token, pre-norm blocks, final norm)")
        if value.shape != target[key].shape:
            raise CheckpointError(f"{path}: {key!r} has shape {tuple(value.shape)}, the model expects {tuple(target[key].shape)}")
    missing = [key for key in target if key not in sd and "_adapter" not in key]
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} tensors missing, e.g. {missing[0]!r}; truncated or another model?")
    vit.load_state_dict(sd, strict=False)


def build(config: Config, num_classes: int, class_names: list[str] | None = None) -> AIMViT:
    """AIM on timm ViT weights (config.backbone.pretrained) or a random/recorded architecture."""
    check_config(config)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"AIM: {len(class_names)} class names for {num_classes} classes")
    backbone = config.backbone
    sd = None
    if backbone.pretrained:
        sd = read_vit_weights(backbone.pretrained)
        architecture = vit_architecture(sd, backbone.pretrained, backbone.heads, backbone.image_resolution)
    elif backbone.architecture:
        architecture = dict(backbone.architecture)
    else:
        architecture = _named_architecture(backbone.arch, backbone.heads, backbone.image_resolution)
    vit = build_vit(config, architecture)
    if sd is not None:
        load_vit_weights(vit, sd, backbone.pretrained)
    backbone.architecture = architecture
    model = AIMViT(config, vit, num_classes)
    if class_names is not None:
        model.class_names = list(class_names)
    return model


def write_random_vit(path: str | Path, seed: int = 0, **architecture) -> Path:
    """A timm ViT weight file with random unit-scale weights, a stand-in for a pretrained file in
    demos and tests: Linear and patch weights N(0, 1/fan_in), norms 1 / 0, class token and positions
    N(0, 0.25). (timm's own init, std 0.02, leaves a random tower nearly blind to patch positions,
    and AIM cannot learn motion direction on it.) `architecture`: VisionTransformer arguments."""
    from timm.models.vision_transformer import VisionTransformer

    generator = torch.Generator().manual_seed(seed)
    vit = VisionTransformer(**architecture, num_classes=0, weight_init="skip")
    with torch.no_grad():
        for name, param in vit.named_parameters():
            if param.ndim == 1:
                param.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name in ("cls_token", "pos_embed"):
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(torch.randn(param.shape, generator=generator) / math.sqrt(param[0].numel()))
    torch.save(vit.state_dict(), path)
    return Path(path)
