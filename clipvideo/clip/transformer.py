"""Pre-norm residual attention blocks and the block stack shared by both CLIP towers.

`ResidualAttentionBlock` is the one extension point for video methods: a method subclasses it,
keeps `ln_1, attn, ln_2, mlp` (so OpenAI weights still load) and overrides `forward`, reusing
the public steps `attention(x)` and `feed_forward(x)` (or `attn.project_qkv` / `attn.attend`).
`Transformer(block_fn=...)` builds every layer with that class, timm style.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import Attention
from .layers import MLP, LayerNorm, QuickGELU


class BlockOutput(NamedTuple):
    """What one block exposes to methods such as EVL, from the same forward pass."""

    out: torch.Tensor  # (B, L, C) block output after both residuals
    q: torch.Tensor  # (B, H, L, d) attention queries, bias included, not scaled
    k: torch.Tensor  # (B, H, L, d) attention keys
    v: torch.Tensor  # (B, H, L, d) attention values


class ResidualAttentionBlock(nn.Module):
    """x + attn(ln_1(x)), then x + mlp(ln_2(x)); (B, L, C) -> (B, L, C)."""

    def __init__(
        self,
        width: int,
        heads: int,
        mlp_ratio: float = 4.0,
        act_layer: type[nn.Module] = QuickGELU,
        index: int = 0,
    ):
        super().__init__()
        self.index = index  # position in the stack, for per-layer schedules (drop path)
        self.ln_1 = LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = LayerNorm(width)
        self.mlp = MLP(width, round(width * mlp_ratio), act_layer)

    def attention(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.attn(self.ln_1(x), attn_mask)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.ln_2(x))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attention(x, attn_mask)
        return x + self.feed_forward(x)

    def forward_with_qkv(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> BlockOutput:
        """The stock forward, also returning this block's q, k and v (no second pass)."""
        q, k, v = self.attn.project_qkv(self.ln_1(x))
        x = x + self.attn.attend(q, k, v, attn_mask)
        x = x + self.feed_forward(x)
        return BlockOutput(x, q, k, v)


def take_indices(num_blocks: int, indices: int | Sequence[int]) -> list[int]:
    """An int n means the last n blocks; a sequence lists block indices (negative allowed)."""
    if isinstance(indices, int):
        if not 0 < indices <= num_blocks:
            raise ValueError(f"asked for the last {indices} blocks of a {num_blocks}-block transformer")
        return list(range(num_blocks - indices, num_blocks))
    taken = []
    for i in indices:
        j = i + num_blocks if i < 0 else i
        if not 0 <= j < num_blocks:
            raise ValueError(f"block index {i} is out of range for a {num_blocks}-block transformer")
        taken.append(j)
    return sorted(set(taken))


class Transformer(nn.Module):
    """A stack of residual attention blocks under the OpenAI name `resblocks`."""

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        mlp_ratio: float = 4.0,
        act_layer: type[nn.Module] = QuickGELU,
        block_fn: Callable[..., nn.Module] = ResidualAttentionBlock,
    ):
        super().__init__()
        self.width = width
        self.layers = layers
        self.grad_checkpointing = False
        self.resblocks = nn.ModuleList(
            block_fn(width=width, heads=heads, mlp_ratio=mlp_ratio, act_layer=act_layer, index=i)
            for i in range(layers)
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, **block_kwargs) -> torch.Tensor:
        """(B, L, C) -> (B, L, C). `block_kwargs` (e.g. num_frames) go to every block."""
        for block in self.resblocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, attn_mask, use_reentrant=False, **block_kwargs)
            else:
                x = block(x, attn_mask, **block_kwargs)
        return x

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int],
        attn_mask: torch.Tensor | None = None,
        stop_early: bool = False,
        **block_kwargs,
    ) -> tuple[torch.Tensor, list[BlockOutput]]:
        """Run the stack once, returning the final tokens and a BlockOutput per requested block.

        With `stop_early`, blocks after the last requested one are skipped and the returned
        tokens are that block's output. `block_kwargs` (e.g. num_frames) go to every block, tapped
        or not. A tapped block runs its own `forward_with_qkv`; a subclass that changes `forward`
        must provide one too (checked here), else the tap would silently run the stock block.
        """
        wanted = take_indices(len(self.resblocks), indices)
        last = wanted[-1] if stop_early else len(self.resblocks) - 1
        taps = []
        for i, block in enumerate(self.resblocks[: last + 1]):
            step = block
            if i in wanted:
                check_tappable(block)
                step = block.forward_with_qkv
            if self.grad_checkpointing and torch.is_grad_enabled():
                out = checkpoint(step, x, attn_mask, use_reentrant=False, **block_kwargs)
            else:
                out = step(x, attn_mask, **block_kwargs)
            if i in wanted:
                taps.append(out)
                out = out.out
            x = out
        return x, taps


def check_tappable(block: nn.Module) -> None:
    """A block whose forward differs from the stock one must also define forward_with_qkv."""
    cls = type(block)
    own_forward = getattr(cls, "forward", None) is not ResidualAttentionBlock.forward
    own_taps = getattr(cls, "forward_with_qkv", None) not in (None, ResidualAttentionBlock.forward_with_qkv)
    if not hasattr(block, "forward_with_qkv") or (own_forward and not own_taps):
        raise TypeError(
            f"{cls.__name__} overrides forward but not forward_with_qkv, so forward_intermediates cannot tap it "
            "without skipping its changes; give it a forward_with_qkv that returns BlockOutput(out, q, k, v) "
            "from the same pass"
        )
