"""Autocast contexts, the CPU default precision for inference, and fp16 on CPUs that lack it.

What this CPU computes natively, and the fp16 -> bf16/fp32 rule for CPUs without native fp16,
live in `clip/cpu_precision.py` (methods use them too); this module applies them to the
`train.precision` / `test.precision` settings.
"""

import contextlib

import torch

# Re-exported for code written against this module; patch cpu_flags in clip.cpu_precision, where it is read.
from ..clip.cpu_precision import (  # noqa: F401
    cpu_flags,
    cpu_supports_bf16,
    cpu_supports_fp16,
    fp16_on_cpu,
    native_precisions,
)

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16", "fp16!")


def resolve_precision(precision: str, device: torch.device, what: str = "precision") -> str:
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_supports_bf16() else "fp32"
    if device.type == "cpu":
        return fp16_on_cpu(precision, what)
    return "fp16" if precision == "fp16!" else precision


def autocast(device: torch.device, precision: str):
    """bf16/fp16 autocast, or nothing for fp32. Use with torch.no_grad(), not inference_mode():
    in torch 2.14 inference_mode plus CPU bf16 autocast is 7-17x slower."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
