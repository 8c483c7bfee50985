"""Read torch.save'd training files that pickle more than tensors, without running their code.

Official training checkpoints pickle objects next to the weights (X-CLIP: a yacs `CfgNode`),
which `torch.load(weights_only=True)` rejects. `read_checkpoint` reads them with a restricted unpickler: tensors are rebuilt from the
archive, a few containers are allowed, and every other class becomes a `PickledObject` (plain
data: its class path, arguments, state and items). Nothing from the file is imported or run.
"""

import math
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

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


# A file is untrusted input: its pickle names the sizes it wants, so every read is bounded by
# what the archive actually holds, and nothing inflates without limit (a zip bomb).
MAX_PICKLE_BYTES = 256 * 2**20  # data.pkl of a training file is kilobytes (a yacs config and key names)
MAX_INFLATION = 64  # a deflated member may expand to 64x its compressed size ...
MIN_INFLATION_BOUND = 64 * 2**20  # ... or to 64 MiB, whichever is larger (zero tensors compress very well)


def _read_member(archive: zipfile.ZipFile, name: str, size: int | None = None, path="checkpoint") -> bytes:
    """Exactly `size` bytes of a member (all of it when None), read in a bounded way: never more than
    the member declares, and a compressed member never more than MAX_INFLATION times its compressed size."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CheckpointError(f"{path}: archive member {name} is missing (a damaged or incomplete file)") from None
    wanted = info.file_size if size is None else size
    if wanted > info.file_size:
        raise CheckpointError(f"{path}: {name} holds {info.file_size} bytes but the file's index asks for {wanted} "
                              "(a damaged or crafted file)")
    if info.compress_type != zipfile.ZIP_STORED and wanted > max(MIN_INFLATION_BOUND, MAX_INFLATION * info.compress_size):
        raise CheckpointError(f"{path}: {name} would inflate from {info.compress_size} to {wanted} bytes; refused as a "
                              "possible zip bomb (torch.save stores tensors uncompressed)")
    with archive.open(name) as member:
        data = member.read(wanted)  # a bounded read: the zip stream is decompressed only this far
    if len(data) != wanted:
        raise CheckpointError(f"{path}: {name} ends after {len(data)} of {wanted} bytes (a truncated file)")
    return data


def _checked_rebuild_tensor(storage, offset, size, stride, *unused):
    """`_rebuild_tensor_v2` for untrusted sizes: every element the view reaches must lie in its storage."""
    if not (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride))):
        raise pickle.UnpicklingError(f"tensor with invalid size {size!r}, stride {stride!r} or offset {offset!r}")
    elements = math.prod(size)
    if elements:
        last = offset + sum((length - 1) * step for length, step in zip(size, stride))
        if last >= storage.numel() or elements > storage.numel():
            raise pickle.UnpicklingError(f"tensor of size {list(size)}, stride {list(stride)} at offset {offset} does not "
                                         f"fit its storage of {storage.numel()} elements")
    return torch.as_strided(storage, size, stride, offset)


class _CheckpointUnpickler(_TorchScriptUnpickler):
    """Tensors and storages as in the backbone's archive reader, with sizes checked against what
    the archive holds; containers from `_ALLOWED`; anything else becomes a PickledObject subclass."""

    def find_class(self, module, name):
        if module == "__builtin__":  # protocol-2 files name Python 2's module
            module = "builtins"
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _checked_rebuild_tensor
        if module == "torch" and name.endswith("Storage"):
            try:
                return super().find_class(module, name)
            except pickle.UnpicklingError:
                pass
        return _placeholder(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        kind, storage_type, key, _location, numel = pid
        if kind != "storage" or not hasattr(storage_type, "dtype") or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if key not in self.storages:
            dtype = storage_type.dtype
            itemsize = torch.empty((), dtype=dtype).element_size()
            raw = bytearray(_read_member(self.archive, f"{self.prefix}/data/{key}", numel * itemsize, self.path))
            self.storages[key] = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return self.storages[key]


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
        if f"{prefix}/byteorder" in names and _read_member(archive, f"{prefix}/byteorder", path=path).strip() != b"little":
            raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
        if archive.getinfo(pkl).file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(f"{path}: {pkl} is {archive.getinfo(pkl).file_size} bytes, more than a checkpoint's "
                                  f"index ever needs ({MAX_PICKLE_BYTES}); refused")
        unpickler = _CheckpointUnpickler(archive, prefix, _read_member(archive, pkl, path=path))
        unpickler.path = path
        try:
            return unpickler.load()
        except CheckpointError:
            raise
        except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError, RuntimeError, IndexError,
                OverflowError, MemoryError, AttributeError) as error:
            # crafted or damaged pickles fail in many ways; each is one line naming the file
            raise CheckpointError(f"{path}: cannot read the checkpoint ({type(error).__name__}: {error})") from None


def plain(obj):
    """Recursively turn PickledObjects (e.g. a yacs CfgNode) and OrderedDicts into dicts."""
    if isinstance(obj, dict):
        return {key: plain(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(value) for value in obj)
    return obj


__all__ = ["PickledObject", "plain", "read_checkpoint"]
