"""Class embeddings encoded once: a small in-memory LRU per model and a persistent store on disk.

A text method's class embeddings depend only on the text-tower weights, the CLIP architecture
(head counts, activation: the same tensors with other heads give other embeddings), the prompt
tokens (the vocabulary, the templates and the prompt sets they make), how the method reduces them,
the weights' dtype, the autocast dtype and the device type. `ClassEmbeddingCache.get` keys on
exactly those:
- in memory, the weights are tracked by their in-place version counters (optimiser steps,
  `load_state_dict`, weight patching bump them), so a weight change re-encodes; a few entries are
  kept (LRU), so one model called alternately in fp32 and bf16 encodes once per dtype;
- on disk (`persist=True`, only for a model in eval mode without gradients: a model being trained
  never reads stored embeddings), the weights are identified by a blake2b digest of the text
  tower's tensors, computed once per load and again only after the weights change in place.

Disk store: `CLIPVIDEO_TEXT_CACHE` = `0`/`off` turns it off, a folder path moves it; by default
`<cache>/text_embeddings` (`CLIPVIDEO_CACHE`, else the user cache folder, as the zoo). One
safetensors file per entry, written to a temporary name then renamed (atomic), least recently
used files evicted beyond `CLIPVIDEO_TEXT_CACHE_MB` (default 1024). Every file is disposable: a
missing file is a miss, a damaged one is logged, deleted and rewritten, never an error.
"""

import hashlib
import json
import logging
import os
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

MEMORY_ENTRIES = 4  # per model: fp32 and bf16 of two vocabularies
# In every disk key: raise it when a change to the text encoding code changes its results, so files
# written by the older code are never read.
FORMAT = 1
DEFAULT_MAX_MB = 1024
_OFF = ("0", "off", "false", "no")


def user_cache_dir() -> Path:
    """CLIPVIDEO_CACHE, else the user cache folder of the platform (as platformdirs would pick):
    the zoo's downloads and the stored class embeddings."""
    if os.environ.get("CLIPVIDEO_CACHE"):
        return Path(os.environ["CLIPVIDEO_CACHE"]).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "clipvideo" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "clipvideo"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clipvideo"


def text_cache_dir() -> Path | None:
    """The folder of stored class embeddings, or None when CLIPVIDEO_TEXT_CACHE turns it off."""
    setting = os.environ.get("CLIPVIDEO_TEXT_CACHE", "").strip()
    if setting.lower() in _OFF:
        return None
    if setting and setting.lower() not in ("1", "on", "true", "yes"):
        return Path(setting).expanduser()
    return user_cache_dir() / "text_embeddings"


def max_cache_bytes() -> int:
    setting = os.environ.get("CLIPVIDEO_TEXT_CACHE_MB", "").strip()
    try:
        megabytes = float(setting) if setting else DEFAULT_MAX_MB
    except ValueError:
        raise ValueError(f"CLIPVIDEO_TEXT_CACHE_MB={setting!r}: expected a size in MiB, e.g. 1024") from None
    return int(megabytes * 2**20)


def tensor_digest(tensors: Sequence[torch.Tensor]) -> str:
    """blake2b over the tensors' dtypes, shapes and bytes (the weights' identity on disk)."""
    digest = hashlib.blake2b(digest_size=20)
    for tensor in tensors:
        tensor = tensor.detach()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)};".encode())
        # A uint8 view hashes any dtype (bf16 included) without a copy beyond the one to the CPU.
        digest.update(tensor.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def version(tensor: torch.Tensor) -> int:
    """The in-place version counter; inference tensors have none (and cannot change outside
    inference mode), so they count as version 0."""
    return 0 if tensor.is_inference() else tensor._version


def text_weights(clip) -> list[torch.Tensor]:
    """Every tensor a CLIP's text embeddings depend on: the text tower and its projection."""
    return [*clip.token_embedding.parameters(), clip.positional_embedding, *clip.transformer.parameters(),
            *clip.ln_final.parameters(), clip.text_projection]


def encode_by_length(encode: Callable[[torch.Tensor], torch.Tensor], tokens: torch.Tensor,
                     batch: int = 256) -> torch.Tensor:
    """(N, L) ids -> encode(...) rows in the same order, in batches of prompts of similar length,
    each cut after its longest prompt's end token. Under CLIP's causal mask nothing after a
    prompt's end token reaches its feature, so the cut changes no result but skips the padding.
    256 prompts (thousands of token rows) keep the matrix multiplies at full speed while short
    prompts are not padded to the longest one of the vocabulary."""
    ends = tokens.argmax(dim=-1)  # the end-of-text token has the largest id
    order = torch.argsort(ends, stable=True)
    pieces = []
    for start in range(0, len(order), batch):
        rows = order[start: start + batch]
        pieces.append(encode(tokens[rows, : int(ends[rows].max()) + 1]))
    out = torch.cat(pieces)
    return out[torch.argsort(order)]


class ClassEmbeddingCache:
    """Class embeddings of one model: `get(clip, tokens, encode, persist)`; see the module doc."""

    def __init__(self, method: str, entries: int = MEMORY_ENTRIES):
        self.method = method  # in the disk key: methods reduce the same tokens differently
        self.entries = entries
        self.memory: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._tokens_digest: tuple[torch.Tensor, int, str] | None = None  # (tokens, version, digest)
        self._weights_digest: tuple[tuple, str] | None = None  # (weights state, digest)

    def clear(self) -> None:
        self.memory.clear()

    def tokens_digest(self, tokens: torch.Tensor) -> str:
        if (self._tokens_digest is None or self._tokens_digest[0] is not tokens
                or self._tokens_digest[1] != version(tokens)):
            self._tokens_digest = (tokens, version(tokens), tensor_digest([tokens]))
        return self._tokens_digest[2]

    def weights_digest(self, weights: Sequence[torch.Tensor], state: tuple) -> str:
        if self._weights_digest is None or self._weights_digest[0] != state:
            self._weights_digest = (state, tensor_digest(weights))
        return self._weights_digest[1]

    def get(self, clip, tokens: torch.Tensor, encode: Callable[[], torch.Tensor], persist: bool) -> torch.Tensor:
        """The embeddings `encode()` gives for this CLIP's text tower and these prompt tokens, from
        memory, else from disk (when `persist` and the store is on), else encoded and stored."""
        weights = text_weights(clip)
        device = weights[0].device
        autocast = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
        # Version counters and storage addresses: any in-place change or replaced tensor shows.
        state = tuple((p.data_ptr(), version(p)) for p in weights)
        setting = (str(weights[0].dtype), str(autocast), str(device))
        key = (state, self.tokens_digest(tokens), setting)
        if key in self.memory:
            self.memory.move_to_end(key)
            return self.memory[key]
        folder = text_cache_dir() if persist else None
        path = None
        if folder is not None:
            name = hashlib.blake2b(digest_size=20)
            architecture = json.dumps(clip.config.to_dict(), sort_keys=True)
            for part in (f"format {FORMAT}", self.method, architecture, self.weights_digest(weights, state), key[1],
                         *setting[:2], device.type):
                name.update(part.encode() + b"\0")
            path = folder / f"{name.hexdigest()}.safetensors"
        embeddings = self._read(path, tokens) if path is not None else None
        if embeddings is None:
            with torch.no_grad():
                embeddings = encode()
            if path is not None:
                self._write(path, embeddings)
        embeddings = embeddings.to(device)
        self.memory[key] = embeddings
        while len(self.memory) > self.entries:
            self.memory.popitem(last=False)
        return embeddings

    def _read(self, path: Path, tokens: torch.Tensor) -> torch.Tensor | None:
        if not path.is_file():
            return None
        try:
            embeddings = load_file(path)["embeddings"]
            if embeddings.ndim != 2 or embeddings.shape[0] != tokens.shape[-2]:
                raise ValueError(f"shape {tuple(embeddings.shape)} for {tokens.shape[-2]} classes")
        except (SafetensorError, OSError, KeyError, ValueError) as error:
            logger.warning("%s: damaged class-embedding cache file (%s); encoding again and replacing it",
                           path, error)
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used: evicted last
        return embeddings

    def _write(self, path: Path, embeddings: torch.Tensor) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
            os.close(handle)
            try:
                save_file({"embeddings": embeddings.detach().cpu().contiguous()}, temporary,
                          metadata={"method": self.method})
                os.replace(temporary, path)
            finally:
                Path(temporary).unlink(missing_ok=True)
            evict(path.parent, max_cache_bytes())
        except OSError as error:  # a read-only or full cache folder costs speed, never the run
            logger.warning("%s: could not store class embeddings (%s); they will be encoded again next time",
                           path.parent, error)


def evict(folder: Path, max_bytes: int) -> None:
    """Delete the least recently used stored embeddings until the folder holds at most max_bytes."""
    files = []
    for path in folder.glob("*.safetensors"):
        try:
            stat = path.stat()
        except FileNotFoundError:  # another process evicted it
            continue
        files.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
