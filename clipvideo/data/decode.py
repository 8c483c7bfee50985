"""The PyAV keyframe-index decoder: decode exactly the frames a clip needs.

Frame-index convention (every backend, see also :mod:`clipvideo.data.readers`): frame ``i`` is
the ``i``-th frame of the first video stream in presentation order, counting from 0, with no fps
resampling.

Per video we demux the packets once, without decoding, to learn every frame's timestamp and
which frames are keyframes (:class:`KeyframeIndex`, cached per process and optionally on disk).
A clip then seeks to the last keyframe at or before each needed frame, decodes forward and stops
after the last needed frame. It seeks again whenever a keyframe lies between the current position
and the next needed frame, so sparse (TSN) clips skip the gaps. Only wanted frames are converted
to RGB, non-reference frames that are not wanted are not decoded at all, and frames are matched
by timestamp, so the result equals decoding every frame and indexing (tested). Anything the index
did not predict (a seek that lands late, missing timestamps) falls back to decoding from the start.

Every failure (missing file, not a video, zero frames, truncated stream) raises
:class:`VideoDecodeError` with the path and a short reason, which the datasets catch.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
import re
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Union

import av
import numpy as np
from av.video.reformatter import VideoReformatter

# A video is a filesystem path or the bytes of a file (e.g. a member of an uncompressed tar).
VideoSource = Union[str, os.PathLike, bytes]


class VideoDecodeError(RuntimeError):
    """A video could not be decoded. ``reason`` is a short category used in bad-video reports."""

    def __init__(self, path: str, reason: str, detail: str = ""):
        self.path = path
        self.reason = reason
        detail = _plain_detail(str(detail), str(path))
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\]\s*")


def _plain_detail(detail: str, path: str) -> str:
    """FFmpeg's message without its raw error number (`[Errno 1094995529]`, an FFmpeg tag, not an
    errno) and without the path, which the message already starts with; first line only."""
    detail = _ERRNO_PREFIX.sub("", (detail.strip().splitlines() or [""])[0])
    if path:
        for quoted in (f"'{path}'", f'"{path}"'):
            detail = detail.replace(quoted, "")
        detail = detail.removesuffix(path)
    return detail.strip(" :;")


def source_name(source: VideoSource) -> str:
    """The path, or ``<N bytes>`` for in-memory data, for messages."""
    return f"<{len(source)} bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source)


def _open_container(source: VideoSource) -> av.container.InputContainer:
    name = source_name(source)
    if not isinstance(source, (bytes, bytearray)) and not os.path.exists(source):
        raise VideoDecodeError(name, "missing file")
    try:
        container = av.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else os.fspath(source))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoDecodeError(name, "unreadable", str(error)) from error
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(name, "no video stream")
    return container


# ---------------------------------------------------------------------------------------------
# Keyframe index
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyframeIndex:
    """Timestamps of every frame and the positions of keyframes, from demuxing (no decoding).

    frame_pts: (N,) int64, sorted; frame ``i`` is the decoded frame whose pts is ``frame_pts[i]``.
    keyframes: (K,) int64, sorted frame indices of keyframes (where decoding can start).
    Empty ``frame_pts`` with ``num_frames > 0`` means the stream has no usable timestamps; such
    videos are decoded sequentially from the start.
    """

    num_frames: int
    frame_pts: np.ndarray
    keyframes: np.ndarray

    @property
    def seekable(self) -> bool:
        return len(self.frame_pts) == self.num_frames and len(self.keyframes) > 0

    def to_json(self) -> str:
        return json.dumps(
            {"num_frames": self.num_frames, "frame_pts": self.frame_pts.tolist(), "keyframes": self.keyframes.tolist()}
        )

    @classmethod
    def from_json(cls, text: str) -> "KeyframeIndex":
        data = json.loads(text)
        return cls(
            int(data["num_frames"]),
            np.asarray(data["frame_pts"], dtype=np.int64),
            np.asarray(data["keyframes"], dtype=np.int64),
        )


def build_keyframe_index(source: VideoSource) -> KeyframeIndex:
    """Demux every packet of the first video stream (no decoding) and index frames and keyframes."""
    container = _open_container(source)
    try:
        stream = container.streams.video[0]
        pts, key_pts, num_packets, missing_pts = [], [], 0, False
        try:
            for packet in container.demux(stream):
                # The demuxer ends with an empty flush packet; packets flagged "discard" (cut by an
                # edit list) are decoded but never output, so neither is a frame.
                if packet.size == 0 or packet.is_discard:
                    continue
                num_packets += 1
                if packet.pts is None:
                    missing_pts = True
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    key_pts.append(packet.pts)
        except (av.FFmpegError, OSError) as error:
            # A damaged tail: keep what was demuxed; decoding will report missing frames if needed.
            if num_packets == 0:
                raise VideoDecodeError(source_name(source), "unreadable", str(error)) from error
    finally:
        container.close()
    if num_packets == 0:
        raise VideoDecodeError(source_name(source), "zero frames")
    frame_pts = np.sort(np.asarray(pts, dtype=np.int64))
    if missing_pts or len(np.unique(frame_pts)) != len(frame_pts):
        return KeyframeIndex(num_packets, np.zeros(0, np.int64), np.zeros(0, np.int64))
    keyframes = np.searchsorted(frame_pts, np.asarray(sorted(key_pts), dtype=np.int64))
    return KeyframeIndex(num_packets, frame_pts, keyframes.astype(np.int64))


class KeyframeIndexCache:
    """An LRU of keyframe indices per process (each DataLoader worker has its own copy), optionally
    backed by one small JSON file per video in ``directory`` so later runs skip demuxing."""

    def __init__(self, max_entries: int = 100_000, directory: str | os.PathLike | None = None):
        self.max_entries = max_entries
        self.directory = os.fspath(directory) if directory is not None else None
        self._entries: OrderedDict[str, KeyframeIndex] = OrderedDict()

    @staticmethod
    def key_for(source: VideoSource) -> str | None:
        """A key that changes when the file changes; ``None`` for in-memory bytes (not cached)."""
        if isinstance(source, (bytes, bytearray)):
            return None
        try:
            stat = os.stat(source)
        except OSError:
            return None
        return f"{os.path.abspath(source)}|{stat.st_size}|{stat.st_mtime_ns}"

    def get(self, source: VideoSource, key: str | None = None) -> KeyframeIndex:
        key = key if key is not None else self.key_for(source)
        if key is None:
            return build_keyframe_index(source)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        index = self._load(key)
        if index is None:
            index = build_keyframe_index(source)
            self._save(key, index)
        self._entries[key] = index
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return index

    def clear(self) -> None:
        self._entries.clear()

    def forget(self, source: VideoSource) -> None:
        """Drop the entry of a file about to be deleted (a long-running server's uploads)."""
        key = self.key_for(source)
        if key is not None:
            self._entries.pop(key, None)

    def _file(self, key: str) -> str:
        return os.path.join(self.directory, hashlib.sha1(key.encode()).hexdigest() + ".json")

    def _load(self, key: str) -> KeyframeIndex | None:
        if self.directory is None:
            return None
        try:
            with open(self._file(key)) as f:
                return KeyframeIndex.from_json(f.read())
        except (OSError, ValueError, KeyError):
            return None

    def _save(self, key: str, index: KeyframeIndex) -> None:
        if self.directory is None:
            return
        try:
            os.makedirs(self.directory, exist_ok=True)
            # Write then rename, so concurrent workers never read a half-written file.
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(index.to_json())
            os.replace(tmp, self._file(key))
        except OSError:
            pass  # a read-only cache directory (shared, or on a read-only mount): the index stays in memory only


DEFAULT_INDEX_CACHE = KeyframeIndexCache()


# ---------------------------------------------------------------------------------------------
# PyAV decoders
# ---------------------------------------------------------------------------------------------


def _configure(stream, num_threads: int) -> None:
    codec = stream.codec_context
    # PyAV otherwise picks a thread count per CPU; one thread per DataLoader worker is the most
    # efficient use of cores, and frame threading adds a frame of latency per thread.
    codec.thread_count = num_threads
    codec.thread_type = "SLICE" if num_threads == 1 else "AUTO"


class _RGBConverter:
    """One swscale context for all frames of a clip. ``frame.to_ndarray(format='rgb24')`` builds a
    new multi-threaded context per frame, which costs more than decoding the frame."""

    def __init__(self):
        self._reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        return self._reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()


class _Restart(Exception):
    """The seek-based decoder met something its index did not predict; decode sequentially."""


def _decode_with_index(container, stream, index: KeyframeIndex, wanted: list[int], skip_nonref: bool) -> dict:
    """Seek/decode loop. ``wanted``: sorted unique frame indices. Returns {frame index: HWC array}."""
    codec = stream.codec_context
    convert = _RGBConverter()
    frame_pts, keyframes = index.frame_pts, index.keyframes.tolist()
    pts_to_frame = {int(p): i for i, p in enumerate(frame_pts)}
    wanted_pts = {int(frame_pts[i]) for i in wanted}
    out: dict[int, np.ndarray] = {}
    next_wanted = 0  # position in `wanted` of the first frame not decoded yet

    def keyframe_before(frame: int) -> int:
        return keyframes[max(bisect.bisect_right(keyframes, frame) - 1, 0)]

    while next_wanted < len(wanted):
        target = wanted[next_wanted]
        start = keyframe_before(target)
        container.seek(int(frame_pts[start]), backward=True, any_frame=False, stream=stream)
        position = -1  # index of the last frame the decoder returned since the seek
        reseek = False
        for packet in container.demux(stream):
            if skip_nonref:
                # Frames nobody references and we do not want need not be decoded at all.
                codec.skip_frame = "DEFAULT" if packet.pts in wanted_pts or packet.pts is None else "NONREF"
            for frame in codec.decode(packet):
                if frame.pts not in pts_to_frame:
                    raise _Restart(f"decoded pts {frame.pts} not in the index")
                position = pts_to_frame[frame.pts]
                if position > target and target not in out:
                    # We are past a wanted frame that never came out: the seek landed too late (a
                    # demuxer seeking by dts, a keyframe flag that lied) or a skipped frame was
                    # wanted after all. Retry on the safe path.
                    raise _Restart(f"seek to frame {start} overshot frame {target}")
                if frame.pts in wanted_pts and position not in out:
                    out[position] = convert(frame)
                while next_wanted < len(wanted) and wanted[next_wanted] in out:
                    next_wanted += 1
                if next_wanted == len(wanted):
                    return out
                target = wanted[next_wanted]
                if keyframe_before(target) > position + 1:
                    reseek = True  # a keyframe closer to the next wanted frame: jump there
                    break
            if reseek:
                break
        if not reseek:
            break  # end of stream
    if skip_nonref and len(out) < len(wanted):
        raise _Restart("frames missing with non-reference skipping")
    return out


def _decode_sequential(container, stream, wanted: list[int]) -> tuple[dict, int]:
    """Decode from the start, counting frames; stop after the last wanted frame."""
    convert = _RGBConverter()
    wanted_set, last = set(wanted), wanted[-1]
    out, count = {}, 0
    for frame in container.decode(stream):
        if count in wanted_set:
            out[count] = convert(frame)
        count += 1
        if count > last:
            break
    return out, count


def decode_with_keyframe_index(source: VideoSource, wanted: list[int], num_threads: int, index: KeyframeIndex) -> dict:
    """Decode the sorted unique frame indices ``wanted``; {frame index: (H, W, 3) uint8 array}.
    Frames the stream does not deliver are absent from the result."""
    container = _open_container(source)
    try:
        stream = container.streams.video[0]
        _configure(stream, num_threads)
        if index.seekable:
            # Skipping non-reference frames is only safe to switch per packet without frame threads.
            for skip in ((True, False) if num_threads == 1 else (False,)):
                try:
                    return _decode_with_index(container, stream, index, wanted, skip_nonref=skip)
                except _Restart:
                    stream.codec_context.skip_frame = "DEFAULT"
            container.seek(0, backward=True, any_frame=False, stream=stream)
        out, _ = _decode_sequential(container, stream, wanted)
        return out
    except (av.FFmpegError, OSError) as error:
        raise VideoDecodeError(source_name(source), "decode error", str(error)) from error
    finally:
        container.close()


def decode_every_frame(source: VideoSource, num_threads: int) -> list[np.ndarray]:
    """Every frame as an RGB (H, W, 3) array, the EVL way: decode all, convert all."""
    container = _open_container(source)
    try:
        stream = container.streams.video[0]
        _configure(stream, num_threads)
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except (av.FFmpegError, OSError) as error:
        raise VideoDecodeError(source_name(source), "decode error", str(error)) from error
    finally:
        container.close()
