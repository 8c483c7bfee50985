"""The temporal transformer shared by the methods that fuse per-frame CLIP embeddings.

The frozen baseline (`temporal: transformer`), X-CLIP's multi-frame integration transformer (MIT)
and Text4Vis's `Transf` fusion do the same thing to the T frame embeddings of a video: add a
temporal position to each, run pre-LN self-attention blocks over time, add the frame embeddings
(without positions) back, and average over time. `FrameTransformer` is that computation, once.

What differs is only the position table (its shape, its initialisation, what happens for another
T), so each method keeps its own table beside a `FrameTransformer`, in the layout of its official
checkpoint:

- frozen: `temporal.positional_embedding` (T, E), blocks `temporal.transformer.resblocks.i`; another T
  is an error.
- X-CLIP: `mit.positional_embedding` (1, T, E), blocks `mit.resblocks.i` (the MIT subclasses
  `FrameTransformer`); another T interpolates the table.
- Text4Vis: `fusion_model.frame_position_embeddings.weight` (77, E), blocks
  `fusion_model.transformer.resblocks.i`; the first T rows are used.
"""

import torch

from ..clip import QuickGELU, Transformer


class FrameTransformer(Transformer):
    """(B, T, E) frame embeddings + temporal positions -> (B, E): mean over T of blocks(f + P) + f.

    A CLIP `Transformer` (blocks under `resblocks`, OpenAI names) run over the time axis, no mask.
    `ln_eps` sets the blocks' LayerNorm epsilon (Text4Vis: 1e-12; CLIP and X-CLIP: 1e-5).
    """

    def __init__(self, width: int, layers: int, heads: int, act_layer=QuickGELU, ln_eps: float = 1e-5):
        super().__init__(width, layers, heads, act_layer=act_layer)
        for block in self.resblocks:
            block.ln_1.eps = block.ln_2.eps = ln_eps

    def forward(self, frames: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """frames (B, T, E); positions (T, E) or (1, T, E) -> video embedding (B, E)."""
        x = super().forward(frames + positions.to(frames.dtype))  # (B, T, E)
        # The outer residual adds the frame embeddings without the positions (all three seeds).
        return (x + frames).mean(dim=1)

