"""The fast inference path: a loaded model made ready for bf16/fp16 inference, and optionally compiled.

Under plain autocast a bf16 model keeps fp32 weights and an fp32 residual stream: every matmul
casts its weight again, every LayerNorm casts the stream to fp32 and back, and QuickGELU makes
three passes over the widest activation. Measured on a 2-core AMX Xeon (EVL B/16, 8 frames,
batch 4), only a third of the time went to matrix multiplies. `prepare_for_inference`:

1. folds QuickGELU's 1.702 into the surrounding linear layers, leaving one in-place SiLU
   (`clip.layers.fold_quick_gelu`), done in fp32 before any rounding;
2. casts every weight to the inference dtype except normalisation layers, which keep fp32 weights
   and compute their statistics in fp32 inside the kernel (`LayerNorm.native_reduced_precision`),
   and scalars such as CLIP's logit scale;
3. runs `model(...)` with its floating inputs cast to that dtype, under autocast of it (the
   commands' own autocast does the same for `forward_features`);
4. with `compile=True`, compiles the model's forward in place with `torch.compile` (the first
   call compiles; `timed_first_call` measures it, and the commands report it).

Attention already runs through one kernel, `scaled_dot_product_attention`, and the CLIP towers
keep the fused qkv projection of the OpenAI layout. The result is for inference only: its
parameters no longer equal the checkpoint's (the fold), so `state_dict()` refuses, and it cannot be
trained. fp32 leaves the weights alone. Parity against fp32 is tested per method in
tests/engine/test_fastpath.py with the tolerance measured there.
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from ..clip.layers import MLP, LayerNorm, QuickGELU, fold_quick_gelu

log = logging.getLogger("clipvideo")

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


class PreparedModelError(RuntimeError):
    pass


def fold_activations(model: nn.Module) -> int:
    """Fold every Linear -> QuickGELU (-> Dropout/Identity ...) -> Linear pattern; returns how many."""
    folded = 0
    for module in list(model.modules()):
        children = list(module.named_children())
        for i, (name, child) in enumerate(children):
            if not isinstance(child, QuickGELU) or i == 0:
                continue
            first = children[i - 1][1]
            rest = [c for _, c in children[i + 1:]]
            # skip what the eval-mode forward passes through unchanged between the activation and the second linear
            while rest and isinstance(rest[0], (nn.Dropout, nn.Identity)):
                rest.pop(0)
            second = rest[0] if rest else None
            if isinstance(first, nn.Linear) and isinstance(second, nn.Linear) and _sequential_order(module):
                setattr(module, name, fold_quick_gelu(first, second))
                folded += 1
    return folded


def _sequential_order(module: nn.Module) -> bool:
    """Children run in registration order: nn.Sequential, or CLIP's MLP (c_fc, gelu, c_proj)."""
    return isinstance(module, (nn.Sequential, MLP))


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def cast_weights(model: nn.Module, dtype: torch.dtype) -> None:
    """Floating parameters and buffers to `dtype`, except those of normalisation layers and scalars
    (CLIP's logit_scale: exp() of its bf16 rounding scales every logit by up to 1.6%)."""
    for module in model.modules():
        if isinstance(module, NORM_TYPES):
            if isinstance(module, LayerNorm):
                module.native_reduced_precision = True
            continue
        for name, param in module.named_parameters(recurse=False):
            if param.is_floating_point() and param.ndim > 0:
                param.data = param.data.to(dtype)
        for name, buffer in module.named_buffers(recurse=False):
            if buffer.is_floating_point() and buffer.ndim > 0:
                setattr(module, name, buffer.to(dtype))


def _run_in_dtype(model: nn.Module, dtype: torch.dtype) -> None:
    """`model(...)` casts floating inputs to `dtype` and runs under autocast of it, so the places a
    method computes in fp32 on purpose (`.float()` before a temporal head) meet bf16 weights safely."""
    forward = model.forward

    def forward_in_dtype(*args, **kwargs):
        cast = lambda a: a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a  # noqa: E731
        args, kwargs = [cast(a) for a in args], {k: cast(v) for k, v in kwargs.items()}
        device = next((a.device for a in [*args, *kwargs.values()] if isinstance(a, torch.Tensor)), torch.device("cpu"))
        with torch.autocast(device.type, dtype=dtype):
            return forward(*args, **kwargs)

    model.forward = forward_in_dtype  # the instance attribute shadows the class's forward


def _refuse_state_dict(module, *args, **kwargs):
    raise PreparedModelError(
        f"this {type(module).__name__} was prepared for fast inference (QuickGELU folded into its weights, "
        "weights cast); save or train the model before prepare_for_inference, not after")


def prepare_for_inference(model: nn.Module, precision: str = "bf16", compile: bool = False,
                          cast: bool = True) -> nn.Module:
    """`model` in place, ready for inference in `precision` (fp32 | bf16 | fp16); returns it.

    cast=False keeps fp32 weights (autocast does the casting, the slower, closer-to-fp32 path).
    """
    model.eval().requires_grad_(False)
    dtype = DTYPES.get(precision)
    if dtype is not None and cast and not getattr(model, "inference_dtype", None):
        fold_activations(model)
        cast_weights(model, dtype)
        _run_in_dtype(model, dtype)
        if getattr(model, "uses_text", False) and model.vocabulary is not None:
            # cached class embeddings came from the old weights; new vocabularies will use these ones
            with torch.no_grad(), torch.autocast(_device_of(model).type, dtype=dtype):
                model.vocabulary_changed()
        model.register_state_dict_pre_hook(_refuse_state_dict)
        model.inference_dtype = dtype
    if compile and not getattr(model, "compiled", False):
        # Freezing (weights as constants, prepacked for the matmul library) is what makes compiling
        # pay on a CPU. It is read when a graph compiles, at the first call and at every recompile
        # for a new shape, so it is set for the process (it applies only to graphs compiled without
        # gradients, i.e. inference); passed as a compile option it did not take effect (measured).
        from torch._inductor import config as inductor_config  # only when compiling: importing it costs a second

        inductor_config.freezing = True
        model.compile()  # in place: every holder of the module sees the compiled forward
        model.compiled = True
    return model


def timed_first_call(model: nn.Module, example: torch.Tensor, device: torch.device, precision: str) -> float:
    """Run `model` once on `example` (compiling it, for a compiled model) and return the seconds it took."""
    from .precision import autocast

    start = time.perf_counter()
    with torch.no_grad(), autocast(device, precision):
        model(example.to(device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def compile_or_explain(model: nn.Module, example: torch.Tensor, device: torch.device, precision: str) -> float:
    """`timed_first_call` for a compiled model, with a one-line error when compiling fails."""
    try:
        seconds = timed_first_call(model, example, device, precision)
    except Exception as error:  # noqa: BLE001 -- inductor raises many types (no compiler, unsupported op)
        from .config import ConfigError

        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"torch.compile failed ({type(error).__name__}: {first}); run without --compile "
                          "(test.compile: false)") from error
    log.info("torch.compile: the first call took %.1f s (compiling included)", seconds)
    return seconds
