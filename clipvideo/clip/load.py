"""Read CLIP weights from local files: OpenAI TorchScript archives, plain state dicts,
open_clip checkpoints and safetensors. Nothing is downloaded and no pickled code is run.

OpenAI publishes TorchScript archives, which torch refuses under `weights_only=True`. We read
their tensors with a restricted unpickler that only knows how to rebuild tensors: TorchScript
module objects become plain attribute bags and no code in the archive is executed.
"""

import io
import pickle
import re
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from .model import CLIP, CLIPConfig
from .transformer import ResidualAttentionBlock
from .vision import resize_positional_embedding


class CheckpointError(ValueError):
    """A weights file that cannot be used; the message is one line naming the file."""


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


# TorchScript wraps typed lists and tagged values in these helpers; all of them are plain data.
_JIT_LIST_BUILDERS = {
    "build_intlist": list,
    "build_doublelist": list,
    "build_boollist": list,
    "build_tensorlist": list,
    "build_genericlist": list,
    "restore_type_tag": lambda value, type_name=None: value,
}


class _ScriptObject:
    """Stands in for a TorchScript module object: just remembers its attributes."""

    def __setstate__(self, state):
        self.attributes = state if isinstance(state, dict) else {}


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return torch.as_strided(storage, size, stride, offset)


class _TorchScriptUnpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, prefix: str, data: bytes):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix
        self.storages: dict[str, torch.Tensor] = {}

    def find_class(self, module, name):
        if module.startswith("__torch__"):
            return _ScriptObject
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "torch.jit._pickle" and name in _JIT_LIST_BUILDERS:
            return _JIT_LIST_BUILDERS[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a TorchScript archive")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if key not in self.storages:
            raw = bytearray(self.archive.read(f"{self.prefix}/data/{key}"))
            flat = torch.frombuffer(raw, dtype=storage_type.dtype) if raw else torch.empty(0, dtype=storage_type.dtype)
            self.storages[key] = flat[:numel]
        return self.storages[key]


def _collect_tensors(obj: _ScriptObject, prefix: str, out: dict[str, torch.Tensor]) -> None:
    for name, value in obj.attributes.items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value.clone()
        elif isinstance(value, _ScriptObject):
            _collect_tensors(value, f"{prefix}{name}.", out)


def _is_torchscript(archive: zipfile.ZipFile) -> tuple[bool, str]:
    names = archive.namelist()
    pkl = next((n for n in names if n.endswith("/data.pkl") and n.count("/") == 1), None)
    if pkl is None:
        return False, ""
    prefix = pkl.split("/")[0]
    return any(n.startswith(f"{prefix}/code/") for n in names), prefix


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors held by the modules of a TorchScript archive, keyed by attribute path."""
    with zipfile.ZipFile(path) as archive:
        is_script, prefix = _is_torchscript(archive)
        if not is_script:
            raise CheckpointError(f"{path}: not a TorchScript archive")
        root = _TorchScriptUnpickler(archive, prefix, archive.read(f"{prefix}/data.pkl")).load()
    if not isinstance(root, _ScriptObject):
        raise CheckpointError(f"{path}: TorchScript archive without a module at its root")
    tensors: dict[str, torch.Tensor] = {}
    _collect_tensors(root, "", tensors)
    return tensors


def _is_tensor_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(obj, path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the state dict inside a training checkpoint and strip DDP / torch.compile prefixes."""
    if not _is_tensor_dict(obj):
        inner = None
        if isinstance(obj, dict):
            for key in ("state_dict", "model", "module", "model_state", "model_state_dict"):
                if _is_tensor_dict(obj.get(key)):
                    inner = obj[key]
                    break
        if inner is None:
            found = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(f"{path}: no state dict of tensors found (found {found})")
        obj = inner
    out = {}
    for key, value in obj.items():
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: .safetensors, torch.save'd dict, or TorchScript archive."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        if path.suffix == ".safetensors" or (len(head) > 8 and head[8:9] == b"{"):
            from safetensors.torch import load_file

            return load_file(str(path))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                is_script, _ = _is_torchscript(archive)
            if is_script:
                return read_torchscript_tensors(path)
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as error:
        from ..errors import safe_load_reason  # one line, never torch's advice to load unsafely

        raise CheckpointError(
            f"{path}: not a loadable weights file ({safe_load_reason(error)}); expected a PyTorch .pt/.pth "
            "state dict, an OpenAI CLIP TorchScript archive or a .safetensors file"
        ) from None
    except Exception as error:  # torch/zip/safetensors raise many types for damaged files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path}: cannot read weights, the file is truncated or not a checkpoint ({first_line[:200]}); "
            "expected a PyTorch .pt/.pth state dict, an OpenAI CLIP TorchScript archive or a .safetensors file"
        ) from None
    return unwrap_state_dict(obj, path)


# Entries of OpenAI/open_clip files that are not weights of our modules.
_NON_WEIGHT_KEYS = re.compile(r"^(input_resolution|context_length|vocab_size)$|(^|\.)attn_mask$")


def clip_state_dict(state_dict: dict[str, torch.Tensor], path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """Normalise a CLIP state dict to OpenAI key names, in fp32; vision-only dicts get `visual.`."""
    sd = {k: v for k, v in state_dict.items() if not _NON_WEIGHT_KEYS.search(k)}
    if "visual.conv1.weight" not in sd and "conv1.weight" in sd:
        sd = {f"visual.{k}" if not k.startswith("visual.") else k: v for k, v in sd.items()}
    if "visual.conv1.weight" not in sd:
        sample = ", ".join(sorted(sd)[:3])
        raise CheckpointError(
            f"{path}: not a CLIP ViT checkpoint: no 'visual.conv1.weight' key (found {len(sd)} keys such as "
            f"{sample}); expected OpenAI CLIP or open_clip weights with OpenAI key names"
        )
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def _count_blocks(sd: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}resblocks\.(\d+)\.attn\.in_proj_weight$")
    return len({m.group(1) for k in sd if (m := pattern.match(k))})


def config_from_state_dict(
    sd: dict[str, torch.Tensor],
    heads: int | None = None,
    text_heads: int | None = None,
    quick_gelu: bool = True,
    path: str | Path = "checkpoint",
) -> CLIPConfig:
    """Read every architecture number off tensor shapes; heads default to width // 64."""
    conv = sd["visual.conv1.weight"]
    width, patch = conv.shape[0], conv.shape[-1]
    grid = int(round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5))
    layers = _count_blocks(sd, "visual.transformer.")
    if layers == 0:
        raise CheckpointError(f"{path}: CLIP checkpoint has no vision blocks (visual.transformer.resblocks.*)")
    mlp_ratio = sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width
    has_text = "token_embedding.weight" in sd
    if "visual.proj" in sd:
        embed_dim = sd["visual.proj"].shape[1]
    elif has_text:
        embed_dim = sd["text_projection"].shape[1]
    else:
        embed_dim = width
    config = CLIPConfig(
        embed_dim=embed_dim,
        image_resolution=patch * grid,
        vision_width=width,
        vision_layers=layers,
        vision_heads=heads or max(1, width // 64),
        vision_patch_size=patch,
        mlp_ratio=mlp_ratio,
        quick_gelu=quick_gelu,
    )
    if has_text:
        text_width = sd["ln_final.weight"].shape[0]
        config = replace(
            config,
            context_length=sd["positional_embedding"].shape[0],
            vocab_size=sd["token_embedding.weight"].shape[0],
            text_width=text_width,
            text_layers=_count_blocks(sd, "transformer."),
            text_heads=text_heads or max(1, text_width // 64),
        )
    for name, w, h in (("heads", width, config.vision_heads), ("text_heads", config.text_width, config.text_heads)):
        if w % h:
            raise CheckpointError(f"{path}: {name}={h} does not divide the width {w}; pass a divisor of {w}")
    return config


def load_weights(
    model: nn.Module,
    sd: dict[str, torch.Tensor],
    new_keys: Callable[[str], bool] = lambda key: False,
    path: str | Path = "checkpoint",
) -> None:
    """Strict load, except parameters that `new_keys` marks as the method's own (left as built).

    Raises CheckpointError naming unexpected keys, missing keys and shape mismatches.
    """
    own = model.state_dict()
    mismatched = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise CheckpointError(f"{path}: shape mismatch for {len(mismatched)} tensors, e.g. {mismatched[0]} (file vs model)")
    result = model.load_state_dict(sd, strict=False)
    missing = [k for k in result.missing_keys if not new_keys(k)]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{path}: weights do not fit the model: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]})"
        )


def load_clip(
    path: str | Path,
    *,
    heads: int | None = None,
    text_heads: int | None = None,
    quick_gelu: bool = True,
    image_resolution: int | None = None,
    with_text: bool = True,
    vision_output_dim: int | None | bool = True,
    vision_block: Callable[..., nn.Module] = ResidualAttentionBlock,
    new_keys: Callable[[str], bool] = lambda key: False,
) -> CLIP:
    """Build a CLIP model whose architecture is read from the file's tensor shapes, and load it.

    heads / text_heads: override width // 64 (tiny or unusual models). image_resolution: resize
    the positional embedding once at load time. with_text=False skips the text tower and
    vision_output_dim=None drops the image projection (those weights are ignored).
    vision_block / new_keys: a method's block class and a predicate for the parameters it adds.
    """
    sd = clip_state_dict(read_state_dict(path), path)
    config = config_from_state_dict(sd, heads, text_heads, quick_gelu, path)
    if image_resolution and image_resolution != config.image_resolution:
        grid = image_resolution // config.vision_patch_size
        sd["visual.positional_embedding"] = resize_positional_embedding(sd["visual.positional_embedding"], (grid, grid))
        config = replace(config, image_resolution=image_resolution)
    if with_text and "token_embedding.weight" not in sd:
        raise CheckpointError(f"{path}: has no text tower (token_embedding.weight), but this model needs one")
    model = CLIP(config, vision_block=vision_block, with_text=with_text, vision_output_dim=vision_output_dim)
    if not with_text:
        sd = {k: v for k, v in sd.items() if k.startswith("visual.")}
    if vision_output_dim is not True:
        sd.pop("visual.proj", None)
    load_weights(model, sd, new_keys, path)
    return model
