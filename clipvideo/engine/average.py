"""`clipvideo average RUN --epochs A-B OUT`: uniform weight averaging of a run's epoch checkpoints.

The run must have been trained with `train.keep_epoch_checkpoints: true` (files
`checkpoint_epoch{N:03d}.pt`: model files with the run's config, no optimiser state). Every
floating-point weight is the plain mean over epochs A..B (accumulated in float64, stored in the
checkpoint's dtype), as FROSTER's released models are made (its epochs 2..last). Modules a method lists in `training_only_prefixes` (a frozen teacher)
are not averaged and not written. The output is a native model file with the method config,
class names and the run's config (data settings), so predict/test/load need no flags.
"""

import re
from pathlib import Path

import torch

from ..clip import CheckpointError
from . import checkpoint as ckpt


def parse_epochs(text: str) -> list[int]:
    """"2-22" -> [2, ..., 22]; "5" -> [5]."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(text))
    if not match:
        raise ValueError(f"--epochs {text!r}: expected A-B (e.g. 2-22) or one epoch number")
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    if first < 1 or last < first:
        raise ValueError(f"--epochs {text!r}: need 1 <= A <= B")
    return list(range(first, last + 1))


def epoch_checkpoint(run_dir: str | Path, epoch: int) -> Path:
    return Path(run_dir) / f"checkpoint_epoch{epoch:03d}.pt"


def average_checkpoints(paths: list[Path]) -> dict:
    """The payload of the last file with its "model" replaced by the mean over all files."""
    sums: dict[str, torch.Tensor] = {}
    reference = None
    for path in paths:
        payload = ckpt.read_checkpoint(path)
        if "model" not in payload or "method" not in payload:
            raise CheckpointError(f"{path}: not a clipvideo training checkpoint (no 'model'/'method' entry)")
        state = payload["model"]
        if reference is None:
            reference = (payload["method"], {k: (v.shape, v.dtype) for k, v in state.items()})
        elif payload["method"] != reference[0] or {k: (v.shape, v.dtype) for k, v in state.items()} != reference[1]:
            extra = sorted(set(state) ^ set(reference[1]))[:3]
            raise CheckpointError(f"{path}: weights differ in method, names or shapes from {paths[0]} (e.g. {extra}); "
                                  "average checkpoints of one run only")
        for key, value in state.items():
            if value.is_floating_point():
                sums[key] = sums[key] + value.double() if key in sums else value.double()
        last = payload
    averaged = {}
    for key, value in last["model"].items():
        averaged[key] = (sums[key] / len(paths)).to(value.dtype) if value.is_floating_point() else value
    return {**last, "model": averaged}


def average_run(run_dir: str | Path, epochs: str | list[int], output: str | Path) -> dict:
    """Average `run_dir`'s epoch checkpoints `epochs` ("A-B" or a list) into a model file `output`."""
    run_dir = Path(run_dir)
    numbers = parse_epochs(epochs) if isinstance(epochs, str) else list(epochs)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    paths = [epoch_checkpoint(run_dir, n) for n in numbers]
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        kept = sorted(p.name for p in run_dir.glob("checkpoint_epoch*.pt"))
        raise FileNotFoundError(
            f"{run_dir}: no {', '.join(absent[:4])}{' ...' if len(absent) > 4 else ''} (kept: {', '.join(kept) or 'none'}); "
            "train with train.keep_epoch_checkpoints=true to keep one checkpoint per epoch"
        )
    payload = average_checkpoints(paths)
    # Rebuilding checks that the averaged weights fit the recorded model; saving drops teachers.
    model = ckpt.model_from_payload(payload, paths[-1])
    extra = {"config": payload["config"]} if payload.get("config") else {}
    ckpt.save_model(model, output, averaged_epochs=numbers, **extra)
    return {"epochs": numbers, "output": str(output), "method": payload["method"]}
