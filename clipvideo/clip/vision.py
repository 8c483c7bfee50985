"""The CLIP vision transformer with OpenAI key names, as three public steps.

forward(images) = pool(transformer(embed(images))), where embed = ln_pre(tokens(images)).
Methods compose these steps (AIM adds a temporal embedding between `tokens` and `ln_pre`;
X-CLIP reads the patch tokens before `pool`); `forward_intermediates` gives EVL the last
blocks' outputs with their queries and keys from the same pass.
"""

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import LayerNorm, QuickGELU
from .transformer import BlockOutput, ResidualAttentionBlock, Transformer


def resize_positional_embedding(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a (1 + g*g, C) positional embedding to (1 + gh*gw, C); class row kept."""
    cls_pos, patch_pos = pos[:1], pos[1:]
    old = int(round(math.sqrt(patch_pos.shape[0])))
    if old * old != patch_pos.shape[0]:
        raise ValueError(f"positional embedding with {patch_pos.shape[0]} patch rows is not a square grid")
    if (old, old) == tuple(grid):
        return pos
    patch_pos = patch_pos.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()  # (1, C, g, g)
    patch_pos = F.interpolate(patch_pos, size=grid, mode="bicubic", align_corners=False, antialias=True)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(pos.dtype)
    return torch.cat([cls_pos, patch_pos], dim=0)


class VisionIntermediates(NamedTuple):
    features: torch.Tensor  # (N, E) pooled, projected image features (as forward returns)
    tokens: torch.Tensor  # (N, 1+P, C) last block output, before ln_post
    blocks: list[BlockOutput]  # one per requested block, in block order


class VisionTransformer(nn.Module):
    """Images (N, 3, H, W) -> features (N, E); N may be B*T frames."""

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        output_dim: int | None,
        mlp_ratio: float = 4.0,
        act_layer: type[nn.Module] = QuickGELU,
        block_fn: Callable[..., nn.Module] = ResidualAttentionBlock,
    ):
        super().__init__()
        self.image_size = image_size
        self.patch_size = patch_size
        self.width = width
        self.heads = heads
        self.output_dim = output_dim
        grid = image_size // patch_size
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, mlp_ratio, act_layer, block_fn)
        self.ln_post = LayerNorm(width)
        # Some methods (AIM) drop CLIP's projection and work in the width C.
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim)) if output_dim else None

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Patchify, prepend the class token, add positions: (N, 3, H, W) -> (N, 1+P, C)."""
        x = self.conv1(images.to(self.conv1.weight.dtype))  # (N, C, gh, gw)
        grid = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)  # (N, P, C)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)  # (N, 1+P, C)
        # Inputs of another resolution get a resized copy of the positions, not an error.
        pos = resize_positional_embedding(self.positional_embedding, tuple(grid))
        return x + pos.to(x.dtype)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """tokens then ln_pre: (N, 3, H, W) -> (N, 1+P, C)."""
        return self.ln_pre(self.tokens(images))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Class token -> ln_post -> projection: (N, 1+P, C) -> (N, E), or (N, C) without proj."""
        x = self.ln_post(x[:, 0])
        return x @ self.proj if self.proj is not None else x

    def forward(self, images: torch.Tensor, **block_kwargs) -> torch.Tensor:
        return self.pool(self.transformer(self.embed(images), **block_kwargs))

    def forward_intermediates(
        self, images: torch.Tensor, indices: int | Sequence[int], stop_early: bool = False, **block_kwargs
    ) -> VisionIntermediates:
        """One forward pass returning per-block outputs, q and k (int n = the last n blocks).

        With `stop_early` the blocks after the last requested one are not run and `features`
        is computed from that block's output. `block_kwargs` (e.g. num_frames) go to every block.
        """
        x, taps = self.transformer.forward_intermediates(self.embed(images), indices, stop_early=stop_early,
                                                         **block_kwargs)
        return VisionIntermediates(self.pool(x), x, taps)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.transformer.grad_checkpointing = enable
