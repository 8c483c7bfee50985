"""Which reduced precisions this CPU computes natively, and what a requested "fp16" runs as on it.

On a CPU without native fp16 arithmetic (no AVX512-FP16/AMX-FP16 on x86, no FP16 vector unit on
Arm) an fp16 matmul is emulated: measured 0.9 GFLOP/s on an AMD Zen 4, where `clipvideo test` with
an fp16 EVL backbone took 7.2 s per clip against 1.0 s in bf16. There, a requested "fp16" runs as
bf16 (fp32 without native bf16 either) with a one-line notice; "fp16!" forces fp16 anyway.
Methods (EVL's frozen fp16 backbone) and the engine's autocast both ask here.
"""

import functools
import logging
import platform
from pathlib import Path

import torch

log = logging.getLogger("clipvideo")

# /proc/cpuinfo flags (x86 "flags", Arm "Features") that mean native arithmetic in that type.
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}
NATIVE_FP16_FLAGS = {"avx512_fp16", "amx_fp16", "asimdhp", "fphp"}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (Linux), or None where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def native_precisions(flags) -> set[str]:
    """{"bf16", "fp16"} subset that a CPU with these feature flags computes natively."""
    flags = set(flags)
    found = set()
    if flags & NATIVE_BF16_FLAGS:
        found.add("bf16")
    if flags & NATIVE_FP16_FLAGS:
        found.add("fp16")
    return found


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 (AVX512-BF16 / AMX), where bf16 runs 3-4x faster than fp32."""
    flags = cpu_flags()
    if flags is not None:
        return "bf16" in native_precisions(flags)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_supports_fp16() -> bool:
    """True on CPUs with native fp16 arithmetic (AVX512-FP16 / AMX-FP16, Arm FP16 vectors)."""
    flags = cpu_flags()
    if flags is not None:
        return "fp16" in native_precisions(flags)
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return True  # every Apple silicon core has FP16 vectors
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        return False


def fp16_on_cpu(precision: str, what: str) -> str:
    """The precision to use on this CPU for a requested one: "fp16" -> bf16/fp32 when the CPU has
    no native fp16 (with a one-line notice), "fp16!" -> fp16 always; others unchanged."""
    if precision == "fp16!":
        return "fp16"
    if precision != "fp16" or cpu_supports_fp16():
        return precision
    instead = "bf16" if cpu_supports_bf16() else "fp32"
    log.warning("%s: this CPU has no native fp16 (emulated fp16 is ~10x slower); using %s instead "
                "(write fp16! to force fp16)", what, instead)
    return instead


__all__ = ["cpu_flags", "cpu_supports_bf16", "cpu_supports_fp16", "fp16_on_cpu", "native_precisions"]
