"""Multi-head self-attention with nn.MultiheadAttention's parameter names.

Keeping `in_proj_weight`, `in_proj_bias` and `out_proj` means OpenAI and open_clip CLIP weights
load without renaming. The two public steps, `project_qkv` and `attend`, are what methods
override or reuse (FROSTER builds its own keys/values between them; EVL reads q and k).
"""

import torch
import torch.nn.functional as F
from torch import nn


# Below this many keys, reduced-precision attention runs as two batched matmuls and a softmax:
# CPU SDPA's flash kernel pays a fixed cost per (sequence, head) that dominates at AIM's 8-frame
# temporal attention (measured 3.1 vs 1.3 ms for 197 x 12 sequences of 8 in bf16).
SHORT_KEYS = 32


def scaled_dot_product_attention(q, k, v, attn_mask=None):
    """F.scaled_dot_product_attention, with a matmul path for short bf16/fp16 key sequences on CPU."""
    if q.dtype != torch.float32 and q.device.type == "cpu" and k.shape[-2] <= SHORT_KEYS and attn_mask is None:
        scores = torch.matmul(q, k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B, H, Lq, Lk)
        return torch.matmul(scores.softmax(dim=-1), v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


class Attention(nn.Module):
    """Batch-first multi-head self-attention: (B, L, C) -> (B, L, C)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"attention width {width} is not divisible by heads={heads}")
        self.width = width
        self.heads = heads
        self.head_dim = width // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, C) -> q, k, v each (B, heads, L, head_dim); biases included, q not scaled."""
        batch, length, _ = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3C)
        qkv = qkv.view(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]  # each (B, H, L, d)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scaled dot-product attention, heads merged, out-projection: -> (B, Lq, C).

        k and v may hold more positions than q (keys from neighbouring frames, message tokens).
        `attn_mask` is additive (float, -inf blocks) or boolean (True keeps), as in SDPA.
        """
        out = scaled_dot_product_attention(q, k, v, attn_mask)  # (B, H, Lq, d)
        batch, _, length, _ = out.shape
        out = out.transpose(1, 2).reshape(batch, length, self.width)
        return self.out_proj(out)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.project_qkv(x)
        return self.attend(q, k, v, attn_mask)
