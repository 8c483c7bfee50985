"""Small building blocks shared by the CLIP towers."""

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.LayerNorm):
    """LayerNorm that always normalises in fp32 and returns the input dtype.

    OpenAI CLIP does this so fp16/bf16 towers keep fp32-accurate statistics.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        orig_dtype = x.dtype
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        x = F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return x.to(orig_dtype)


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the activation OpenAI CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    """Linear(C -> hidden) -> activation -> Linear(hidden -> C), OpenAI key names `c_fc`, `c_proj`."""

    def __init__(self, width: int, hidden: int, act_layer: type[nn.Module] = QuickGELU):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = act_layer()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))
