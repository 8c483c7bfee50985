"""Checkpoints: a plain dict with fixed keys, written atomically, loaded with weights_only=True.

Keys: model, optimizer, scheduler, scaler, ema, epoch, step, step_in_epoch, method,
model_config, config, class_names, rng, metrics, version. `load_model(path)` rebuilds a ready
model from the file alone: the method config inside records the resolved CLIP architecture.
"""

import dataclasses
import os
import random
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..clip import CheckpointError
from ..errors import safe_load_reason


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        # mkstemp makes the file 0600; a model file is shared like any other output (0644 under umask 022).
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": [torch.from_numpy(np.asarray(x)) if isinstance(x, np.ndarray) else x for x in np.random.get_state()],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _swap_arrays(value, to_numpy: bool):
    """Tensors <-> numpy arrays, recursively: all_gather_object cannot unpickle tensors here."""
    if isinstance(value, dict):
        return {k: _swap_arrays(v, to_numpy) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_swap_arrays(v, to_numpy) for v in value)
    if to_numpy and isinstance(value, torch.Tensor):
        return value.cpu().numpy()
    if not to_numpy and isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return value


def gather_rng_states() -> list[dict]:
    """Every process's rng_state(), in rank order (collective: all ranks must call it)."""
    from .distributed import all_gather_objects

    return [_swap_arrays(s, to_numpy=False) for s in all_gather_objects(_swap_arrays(rng_state(), to_numpy=True))]


def set_rng_state(state: dict) -> None:
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    numpy_state = [x.numpy() if isinstance(x, torch.Tensor) else x for x in state["numpy"]]
    np.random.set_state(tuple(numpy_state))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def model_payload(model) -> dict:
    """What a checkpoint needs to rebuild `model` with nothing else."""
    from ..methods import METHODS

    method = next((name for name, module in METHODS.items() if isinstance(model.config, module.Config)), None)
    if method is None:
        raise ValueError(f"{type(model).__name__} has a config of unknown method type {type(model.config).__name__}")
    skip = tuple(model.training_only_prefixes)  # a frozen teacher is not saved
    return {
        "method": method,
        "model_config": dataclasses.asdict(model.config),
        "class_names": list(model.class_names) if model.class_names else None,
        "model": {k: v for k, v in model.state_dict().items() if not (skip and k.startswith(skip))},
        "version": __version__,
    }


def _plain(settings) -> dict:
    return dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else dict(settings)


def inference_settings(model, data=None, test=None) -> dict:
    """{"data": ..., "test": ...}: how `model` must be fed, stored in every model file.

    The model's own record (`input_config()`), overridden field by field by `data`/`test`: the
    run's DataConfig/TestConfig (or dicts of their fields), so a run's choices win.
    """
    record = model.input_config()
    return {"data": {**record.get("data", {}), **(_plain(data) if data is not None else {})},
            "test": {**record.get("test", {}), **(_plain(test) if test is not None else {})}}


def save_model(model, path: str | Path, data=None, test=None, **extra) -> None:
    """A native clipvideo checkpoint for inference (what `fit` and `clipvideo convert` write).

    It always carries `config: {data, test}` (see `inference_settings`), which predict/test/load use.
    """
    config = {**inference_settings(model, data, test), **extra.pop("config", {})}
    atomic_save({**model_payload(model), **extra, "config": config}, path)


def stored_settings(payload: dict, path: str | Path = "checkpoint", model=None):
    """(DataConfig, TestConfig) recorded in a checkpoint, over the model's own record
    (`input_config()`, when `model` is given: older files may lack fields), over the defaults."""
    from .config import DataConfig, TestConfig, from_dict

    config = payload.get("config") or {}
    record = model.input_config() if model is not None else {}
    data = {**record.get("data", {}), **(config.get("data") or {})}
    test = {**record.get("test", {}), **(config.get("test") or {})}
    return (from_dict(DataConfig, data, f"{path}: config.data"), from_dict(TestConfig, test, f"{path}: config.test"))


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing a file
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {safe_load_reason(error)}; expected a clipvideo "
                              "model.pt or checkpoint_last.pt (official releases: `clipvideo convert`)") from None


def model_from_payload(payload: dict, path: str | Path = "checkpoint", num_classes: int | None = None):
    """Rebuild the model recorded in a checkpoint dict, weights loaded, in eval mode."""
    from ..methods import METHODS
    from .config import method_config

    for key in ("method", "model_config", "model"):
        if key not in payload:
            raise CheckpointError(
                f"{path}: not a clipvideo checkpoint (no {key!r} entry); official checkpoints load with "
                "clipvideo.load_official(method, path) or `clipvideo convert`"
            )
    method = payload["method"]
    if method not in METHODS:
        raise CheckpointError(f"{path}: checkpoint of unknown method {method!r}")
    config = method_config(method, payload["model_config"], f"{path}: model_config")
    # The recorded architecture rebuilds the backbone; the weights come from this file.
    config.backbone.pretrained = None
    if hasattr(METHODS[method], "inference_config"):  # e.g. FROSTER: no teacher for inference
        config = METHODS[method].inference_config(config)
    state = payload["model"]
    class_names = payload.get("class_names")
    if num_classes is None:
        num_classes = len(class_names) if class_names else _num_classes_from_state(state)
    model = METHODS[method].build(config, num_classes, class_names)
    load_model_state(model, state, path)
    return model.eval()


def load_model_state(model, state: dict, path: str | Path = "checkpoint") -> None:
    """Load weights strictly, except keys under the model's `training_only_prefixes` (a frozen
    teacher): model files leave them out, so they may be missing (or absent from the model)."""
    skip = tuple(model.training_only_prefixes)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (skip and k.startswith(skip))]
    unexpected = [k for k in unexpected if not (skip and k.startswith(skip))]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit the recorded model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )


def _num_classes_from_state(state: dict) -> int:
    # Linear heads: the last 2-D weight whose name says head/proj/fc.
    for key in reversed(list(state)):
        if key.endswith("weight") and state[key].ndim == 2 and any(t in key for t in ("head", "fc_cls", "proj.2")):
            return state[key].shape[0]
    return 1


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """`clipvideo.load`: a ready model (eval mode) from a native clipvideo checkpoint.

    `model.data_config` / `model.test_config` say how it was fed (frames, sampling, stride, input
    size, short side, normalisation, views), as recorded in the file.
    """
    payload = read_checkpoint(path)
    model = model_from_payload(payload, path)
    model.data_config, model.test_config = stored_settings(payload, path, model)
    return model.to(device)


def find_latest(run_dir: str | Path) -> Path | None:
    path = Path(run_dir) / "checkpoint_last.pt"
    return path if path.is_file() else None
