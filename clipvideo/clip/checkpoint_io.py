"""Read torch.save'd training files that pickle more than tensors, without running their code.

Official training checkpoints pickle objects next to the weights (X-CLIP: a yacs `CfgNode`),
which `torch.load(weights_only=True)` rejects. `read_checkpoint` reads them with a restricted unpickler: tensors are rebuilt from the
archive, a few containers are allowed, and every other class becomes a `PickledObject` (plain
data: its class path, arguments, state and items). Nothing from the file is imported or run.
"""

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

from .load import CheckpointError, _TorchScriptUnpickler


class PickledObject(dict):
    """Stand-in for an object of a class that is not imported: a dict of its pickled items, plus
    `pickled_class` ("module.Name"), `args` (constructor arguments), `state` and `list_items`."""

    pickled_class = "?"

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.state, obj.list_items = args, None, []
        return obj

    def __init__(self, *args, **kwargs):  # arguments are data, kept in `args` by __new__
        pass

    def __setstate__(self, state):
        self.state = state

    def append(self, item):
        self.list_items.append(item)

    def extend(self, items):
        self.list_items.extend(items)

    def __reduce__(self):  # pickles back as a plain dict
        return dict, (dict(self),)


_PLACEHOLDERS: dict[str, type] = {}


def _placeholder(module: str, name: str) -> type:
    path = f"{module}.{name}"
    if path not in _PLACEHOLDERS:
        _PLACEHOLDERS[path] = type(name, (PickledObject,), {"pickled_class": path})
    return _PLACEHOLDERS[path]


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _CheckpointUnpickler(_TorchScriptUnpickler):
    """Tensors and storages as in the backbone's archive reader; containers from `_ALLOWED`;
    anything else becomes a PickledObject subclass named after it."""

    def find_class(self, module, name):
        if module == "__builtin__":  # protocol-2 files name Python 2's module
            module = "builtins"
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch._utils" and name == "_rebuild_tensor_v2" or module == "torch" and name.endswith("Storage"):
            try:
                return super().find_class(module, name)
            except pickle.UnpicklingError:
                pass
        return _placeholder(module, name)


def read_checkpoint(path: str | Path):
    """Everything in a torch.save'd file (zip format), without importing or running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a torch.save zip archive (legacy or damaged file)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") and n.count("/") == 1), None)
        if pkl is None:
            raise CheckpointError(f"{path}: zip archive without data.pkl: not a torch.save file")
        prefix = pkl.split("/")[0]
        if f"{prefix}/byteorder" in names and archive.read(f"{prefix}/byteorder").strip() != b"little":
            raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
        try:
            return _CheckpointUnpickler(archive, prefix, archive.read(pkl)).load()
        except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError) as error:
            raise CheckpointError(f"{path}: cannot read the checkpoint ({type(error).__name__}: {error})") from None


def plain(obj):
    """Recursively turn PickledObjects (e.g. a yacs CfgNode) and OrderedDicts into dicts."""
    if isinstance(obj, dict):
        return {key: plain(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(value) for value in obj)
    return obj


__all__ = ["PickledObject", "plain", "read_checkpoint"]
