"""Open a video with any backend, ask for its frame count, decode chosen frames.

``open_video(source, backend)`` returns a :class:`VideoReader`; ``decode_frames`` and
``video_num_frames`` are one-call shortcuts. Frames come back as uint8 RGB ``(T, H, W, 3)``, one
row per requested index in the order requested (indices may repeat and need not be sorted);
frame ``i`` is the ``i``-th frame in presentation order, from 0.

Backends:

- ``"pyav"`` (default): the keyframe-index decoder of :mod:`clipvideo.data.decode`.
- ``"pyav_all"``: decode and convert every frame, then index (what EVL does); the reference for
  tests and the benchmark's baseline.
- ``"decord"`` and ``"torchcodec"``: used when installed (``available_backends()``).
- ``"store"``: videos of a store written by ``clipvideo prepare``, decoded packet by packet
  through the table beside each file (:mod:`clipvideo.data.packets`); ``data.store`` selects it.

Rawframes folders (one JPEG/PNG per frame) are read with Pillow by :func:`read_rawframes`.
"""

from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np
import torch

from .decode import (
    DEFAULT_INDEX_CACHE,
    KeyframeIndexCache,
    VideoDecodeError,
    VideoSource,
    _open_container,
    decode_every_frame,
    decode_with_keyframe_index,
    source_name,
)
from .packets import PacketDecoder, read_packet_table

BACKENDS = ("pyav", "pyav_all", "decord", "torchcodec", "store")


def _check_indices(name: str, indices: Sequence[int], num_frames: int) -> list[int]:
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("no frame indices requested")
    bad = [i for i in indices if not 0 <= i < num_frames]
    if bad:
        raise IndexError(f"{name}: frame indices {bad[:5]} outside [0, {num_frames})")
    return indices


def _in_requested_order(name: str, frames: dict[int, np.ndarray], indices: list[int]) -> torch.Tensor:
    """{frame index: (H, W, 3)} -> (T, H, W, 3) in the order (and with the repeats) of ``indices``."""
    missing = sorted({i for i in indices if i not in frames})
    if missing:
        raise VideoDecodeError(name, "truncated", f"frames {missing[:5]} could not be decoded")
    return torch.from_numpy(np.stack([frames[i] for i in indices]))


class VideoReader:
    """One video, opened for one clip: ``num_frames`` then ``get_frames(indices)`` ->
    uint8 RGB ``(T, H, W, 3)``. Use :func:`open_video` to make one."""

    def __init__(self, source: VideoSource, num_threads: int = 1):
        self.source = source
        self.name = source_name(source)
        self.num_threads = num_threads

    @property
    def num_frames(self) -> int:
        raise NotImplementedError

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        raise NotImplementedError

    @property
    def fps(self) -> float | None:
        """Frames per second the stream declares (its average rate), or None when it declares none."""
        return _stream_fps(self.source)


class PyAVReader(VideoReader):
    """The keyframe-index decoder (module docstring)."""

    def __init__(self, source, num_threads=1, index_cache=None, cache_key=None):
        super().__init__(source, num_threads)
        self.index = (index_cache or DEFAULT_INDEX_CACHE).get(source, cache_key)

    @property
    def num_frames(self) -> int:
        return self.index.num_frames

    def get_frames(self, indices):
        indices = _check_indices(self.name, indices, self.num_frames)
        frames = decode_with_keyframe_index(self.source, sorted(set(indices)), self.num_threads, self.index)
        return _in_requested_order(self.name, frames, indices)


class StoreReader(VideoReader):
    """A video of a prepared store, read through the packet table beside it
    (:mod:`clipvideo.data.packets`): no demuxing, no seeking, at most a few packet decodes per frame."""

    def __init__(self, source, num_threads=1):
        if isinstance(source, (bytes, bytearray)):
            raise ValueError("the store backend reads files of a prepared store, not bytes")
        super().__init__(source, num_threads)
        self.decoder = PacketDecoder(source, read_packet_table(source))

    @property
    def num_frames(self) -> int:
        return self.decoder.table.num_frames

    @property
    def fps(self) -> float | None:
        return self.decoder.table.fps or None

    def get_frames(self, indices):
        indices = _check_indices(self.name, indices, self.num_frames)
        return _in_requested_order(self.name, self.decoder.decode(sorted(set(indices))), indices)


class DecodeAllReader(VideoReader):
    """Decode and convert every frame, then index: EVL's loader, our reference."""

    def __init__(self, source, num_threads=1):
        super().__init__(source, num_threads)
        self.frames = decode_every_frame(source, num_threads)
        if not self.frames:
            raise VideoDecodeError(self.name, "zero frames")

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def get_frames(self, indices):
        indices = _check_indices(self.name, indices, self.num_frames)
        return torch.from_numpy(np.stack([self.frames[i] for i in indices]))


def _check_exists(source: VideoSource, name: str) -> None:
    if not isinstance(source, (bytes, bytearray)) and not os.path.exists(source):
        raise VideoDecodeError(name, "missing file")


class DecordReader(VideoReader):
    """decord's ``VideoReader.get_batch`` (decord 0.6.0 or decord2); its errors become
    VideoDecodeError."""

    def __init__(self, source, num_threads=1):
        super().__init__(source, num_threads)
        _check_exists(source, self.name)
        decord = _import_backend("decord")
        try:
            src = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else os.fspath(source)
            self._reader = decord.VideoReader(src, ctx=decord.cpu(0), num_threads=num_threads)
        except Exception as error:  # decord raises its own DECORDError or RuntimeError
            raise VideoDecodeError(self.name, "unreadable", str(error)) from error
        if len(self._reader) == 0:
            raise VideoDecodeError(self.name, "zero frames")

    @property
    def num_frames(self) -> int:
        return len(self._reader)

    @property
    def fps(self) -> float | None:
        return float(self._reader.get_avg_fps()) or None

    def get_frames(self, indices):
        indices = _check_indices(self.name, indices, self.num_frames)
        try:
            return torch.from_numpy(self._reader.get_batch(indices).asnumpy())
        except Exception as error:
            raise VideoDecodeError(self.name, "decode error", str(error)) from error


class TorchcodecReader(VideoReader):
    """torchcodec's ``VideoDecoder.get_frames_at`` in exact seek mode; its errors become
    VideoDecodeError."""

    def __init__(self, source, num_threads=1):
        super().__init__(source, num_threads)
        _check_exists(source, self.name)
        decoder_class = _import_backend("torchcodec")
        try:
            data = bytes(source) if isinstance(source, (bytes, bytearray)) else os.fspath(source)
            self._decoder = decoder_class(data, dimension_order="NHWC", num_ffmpeg_threads=num_threads,
                                          seek_mode="exact")
        except Exception as error:  # RuntimeError/ValueError from the C++ core
            raise VideoDecodeError(self.name, "unreadable", str(error)) from error
        if not self._decoder.metadata.num_frames:
            raise VideoDecodeError(self.name, "zero frames")

    @property
    def num_frames(self) -> int:
        return self._decoder.metadata.num_frames

    @property
    def fps(self) -> float | None:
        return self._decoder.metadata.average_fps or None

    def get_frames(self, indices):
        indices = _check_indices(self.name, indices, self.num_frames)
        try:
            return self._decoder.get_frames_at(indices).data
        except Exception as error:
            raise VideoDecodeError(self.name, "decode error", str(error)) from error


def _stream_fps(source: VideoSource) -> float | None:
    container = _open_container(source)
    try:
        rate = container.streams.video[0].average_rate
    finally:
        container.close()
    return float(rate) if rate else None


def _import_backend(name: str):
    if name == "decord":
        import decord

        return decord
    if name == "torchcodec":
        from torchcodec.decoders import VideoDecoder

        try:  # torchcodec imports without FFmpeg's libraries and fails only when decoding; ask early
            from torchcodec._internally_replaced_utils import load_core_libraries
        except ImportError:
            return VideoDecoder
        load_core_libraries()  # RuntimeError when FFmpeg is missing
        return VideoDecoder
    raise ValueError(f"unknown backend {name!r}; choose from {BACKENDS}")


def available_backends() -> list[str]:
    """The backends usable here: ``pyav`` and ``pyav_all`` always, decord/torchcodec if installed."""
    names = ["pyav", "pyav_all"]
    for name in ("decord", "torchcodec"):
        try:
            _import_backend(name)
            names.append(name)
        except (ImportError, RuntimeError, OSError):  # torchcodec fails at import without FFmpeg libs
            pass
    return names


def open_video(
    source: VideoSource,
    backend: str = "pyav",
    num_threads: int = 1,
    index_cache: KeyframeIndexCache | None = None,
    cache_key: str | None = None,
) -> VideoReader:
    """Open a video with one of ``BACKENDS``. ``cache_key`` names in-memory bytes in the keyframe
    index cache (paths are keyed by path, size and mtime automatically)."""
    if backend == "pyav":
        return PyAVReader(source, num_threads, index_cache, cache_key)
    if backend == "pyav_all":
        return DecodeAllReader(source, num_threads)
    if backend == "decord":
        return DecordReader(source, num_threads)
    if backend == "torchcodec":
        return TorchcodecReader(source, num_threads)
    if backend == "store":
        return StoreReader(source, num_threads)
    raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")


def decode_frames(
    source: VideoSource,
    indices: Sequence[int],
    backend: str = "pyav",
    num_threads: int = 1,
    index_cache: KeyframeIndexCache | None = None,
    cache_key: str | None = None,
) -> torch.Tensor:
    """Frames ``indices`` (0-based, presentation order, any order, repeats allowed) of a video as
    uint8 RGB ``(T, H, W, 3)``."""
    return open_video(source, backend, num_threads, index_cache, cache_key).get_frames(indices)


def video_num_frames(source: VideoSource, backend: str = "pyav", index_cache: KeyframeIndexCache | None = None) -> int:
    """Number of frames in the first video stream, as ``backend`` counts them."""
    return open_video(source, backend, index_cache=index_cache).num_frames


# ---------------------------------------------------------------------------------------------
# Rawframes: one image file per frame
# ---------------------------------------------------------------------------------------------


def video_fps(source: VideoSource, backend: str = "pyav") -> float | None:
    """Frames per second the first video stream declares, as ``backend`` reads it (None: unknown)."""
    return open_video(source, backend).fps


def read_rawframes(
    frame_dir: str | os.PathLike,
    indices: Sequence[int],
    filename_template: str = "img_{:05d}.jpg",
    start_index: int = 1,
) -> torch.Tensor:
    """Frames ``indices`` (0-based) of a directory of images named ``filename_template.format(
    index + start_index)``, as uint8 RGB ``(T, H, W, 3)``. Decoded with Pillow (JPEG, PNG, ...)."""
    from PIL import Image, UnidentifiedImageError

    frame_dir = os.fspath(frame_dir)
    if not os.path.isdir(frame_dir):
        raise VideoDecodeError(frame_dir, "missing file", "frame directory not found")
    decoded: dict[int, np.ndarray] = {}
    for index in sorted(set(int(i) for i in indices)):
        path = os.path.join(frame_dir, filename_template.format(index + start_index))
        if not os.path.exists(path):
            raise VideoDecodeError(frame_dir, "missing frame file", os.path.basename(path))
        try:
            with Image.open(path) as image:
                decoded[index] = np.asarray(image.convert("RGB"))  # (H, W, 3)
        except (UnidentifiedImageError, OSError) as error:
            raise VideoDecodeError(frame_dir, "decode error", f"{os.path.basename(path)}: {error}") from error
    sizes = {frame.shape for frame in decoded.values()}
    if len(sizes) > 1:
        raise VideoDecodeError(frame_dir, "decode error", f"frames differ in size: {sorted(sizes)}")
    return torch.from_numpy(np.stack([decoded[int(i)] for i in indices]))
