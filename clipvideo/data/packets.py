"""Direct packet decoding for the videos of a prepared store (``clipvideo prepare``).

A store video is H.264 in MP4 with a fixed structure: closed GOPs of ``gop`` frames, each an
intra frame followed by runs of B-frames that no other frame references, anchored by P-frames
(at most 15 B-frames per run). With the default GOP of 16::

    display order   I0 B1 B2 ... B14 P15 | I16 B17 ...
    decode order    I0 P15 B1 ... B14    | I16 ...

A frame then depends only on its GOP's keyframe and the reference frames (P) decoded before it:
with GOP 16 any frame costs at most three packet decodes (I, P, B), while the B-frames, most of
the video, stay small on disk. A :class:`PacketTable` written beside each video at preparation
(``<video>.packets``) records every packet's byte range, timestamp, flags and CRC-32 and the
decoder's setup bytes, so reading a clip needs no demuxer and no seek: read the needed byte
ranges, check their CRCs, feed them to a fresh H.264 decoder in decode order, flush, and keep the
wanted frames (matched by timestamp). The frames are bit-identical to decoding the whole file.

Any mismatch (a video whose size changed since preparation, a CRC that fails, a frame the
decoder does not return) raises :class:`~clipvideo.data.decode.VideoDecodeError`, so a damaged
store entry is counted and replaced like any bad video.
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from dataclasses import dataclass

import av
import numpy as np

from .decode import VideoDecodeError, _RGBConverter

TABLE_SUFFIX = ".packets"
TABLE_FORMAT = "clipvideo-packets"
TABLE_VERSION = 1
KEY, REFERENCE = 1, 2  # bits of PacketTable.flags


def _arrays_to_text(**arrays: np.ndarray) -> dict:
    return {name: [str(a.dtype), base64.b64encode(zlib.compress(np.ascontiguousarray(a).tobytes())).decode()]
            for name, a in arrays.items()}


def _text_to_array(item) -> np.ndarray:
    dtype, data = item
    return np.frombuffer(zlib.decompress(base64.b64decode(data)), dtype=np.dtype(dtype))


@dataclass(frozen=True)
class PacketTable:
    """Every packet of a store video, in decode order.

    position/size: byte range in the file; pts: presentation timestamp; flags: KEY | REFERENCE;
    crc: CRC-32 of the packet bytes. ``frame_pts`` (sorted pts) maps frame ``i`` to its packet.
    """

    video_bytes: int  # size of the file the table describes
    codec: str
    extradata: bytes
    fps: float
    position: np.ndarray  # (N,) int64
    size: np.ndarray  # (N,) uint32
    pts: np.ndarray  # (N,) int64
    flags: np.ndarray  # (N,) uint8
    crc: np.ndarray  # (N,) uint32

    @property
    def num_frames(self) -> int:
        return len(self.pts)

    def to_json(self) -> str:
        return json.dumps({
            "format": TABLE_FORMAT, "version": TABLE_VERSION, "video_bytes": self.video_bytes, "codec": self.codec,
            "extradata": base64.b64encode(self.extradata).decode(), "fps": self.fps,
            **_arrays_to_text(position=self.position, size=self.size, pts=self.pts, flags=self.flags, crc=self.crc),
        })

    @classmethod
    def from_json(cls, text: str) -> PacketTable:
        data = json.loads(text)
        if data.get("format") != TABLE_FORMAT or data.get("version") != TABLE_VERSION:
            raise ValueError(f"not a version {TABLE_VERSION} packet table")
        arrays = {name: _text_to_array(data[name]) for name in ("position", "size", "pts", "flags", "crc")}
        if len({len(a) for a in arrays.values()}) != 1:
            raise ValueError("packet arrays differ in length")
        return cls(int(data["video_bytes"]), data["codec"], base64.b64decode(data["extradata"]), float(data["fps"]),
                   **arrays)


def _is_reference(packet: bytes) -> bool:
    """nal_ref_idc of the first slice NAL unit of an MP4 (length-prefixed) H.264 packet."""
    offset = 0
    while offset + 5 <= len(packet):
        length = int.from_bytes(packet[offset:offset + 4], "big")
        header = packet[offset + 4]
        if header & 0x1F in (1, 5):  # a coded slice (non-IDR / IDR)
            return bool(header >> 5 & 3)
        offset += 4 + length
    return True  # no slice found: treat it as needed by what follows


def build_packet_table(path: str | os.PathLike) -> PacketTable:
    """Demux a store video once and record its packets (VideoDecodeError if it cannot be read)."""
    path = os.fspath(path)
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as error:
        raise VideoDecodeError(path, "unreadable", str(error)) from None
    try:
        stream = container.streams.video[0]
        if stream.codec_context.name != "h264":
            raise VideoDecodeError(path, "unreadable", f"store videos are H.264, this is {stream.codec_context.name}")
        rows = []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            data = bytes(packet)
            if packet.pts is None or packet.pos is None or packet.pos < 0:
                raise VideoDecodeError(path, "unreadable", "a packet without timestamp or file position")
            flags = (KEY if packet.is_keyframe else 0) | (REFERENCE if _is_reference(data) else 0)
            rows.append((packet.pos, packet.size, packet.pts, flags, zlib.crc32(data)))
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        extradata = bytes(stream.codec_context.extradata or b"")
    except av.FFmpegError as error:
        raise VideoDecodeError(path, "unreadable", str(error)) from None
    finally:
        container.close()
    if not rows:
        raise VideoDecodeError(path, "zero frames")
    if not rows[0][3] & KEY:
        raise VideoDecodeError(path, "unreadable", "the first packet is not a keyframe")
    position, size, pts, flags, crc = (np.asarray(column) for column in zip(*rows))
    if len(np.unique(pts)) != len(pts):
        raise VideoDecodeError(path, "unreadable", "repeated packet timestamps")
    return PacketTable(os.path.getsize(path), "h264", extradata, fps, position.astype(np.int64),
                       size.astype(np.uint32), pts.astype(np.int64), flags.astype(np.uint8), crc.astype(np.uint32))


def table_path(video: str | os.PathLike) -> str:
    return os.fspath(video) + TABLE_SUFFIX


def write_packet_table(video: str | os.PathLike) -> PacketTable:
    """Build the table of ``video`` and write it beside it (atomically)."""
    table = build_packet_table(video)
    target = table_path(video)
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(table.to_json())
    os.replace(tmp, target)
    return table


def read_packet_table(video: str | os.PathLike) -> PacketTable:
    """The table beside ``video``; VideoDecodeError when it is missing, damaged or out of date."""
    video = os.fspath(video)
    try:
        with open(table_path(video)) as f:
            table = PacketTable.from_json(f.read())
    except FileNotFoundError:
        if not os.path.exists(video):
            raise VideoDecodeError(video, "missing file") from None
        raise VideoDecodeError(video, "unreadable", f"no {TABLE_SUFFIX} table beside it; prepare the store again") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise VideoDecodeError(video, "unreadable", f"damaged {TABLE_SUFFIX} table ({error}); prepare it again") from None
    try:
        actual = os.path.getsize(video)
    except OSError:
        raise VideoDecodeError(video, "missing file") from None
    if actual != table.video_bytes:
        raise VideoDecodeError(video, "truncated", f"{actual} bytes, {table.video_bytes} when prepared; prepare it again")
    return table


class PacketDecoder:
    """Decode chosen frames of one store video through its packet table."""

    def __init__(self, path: str | os.PathLike, table: PacketTable):
        self.path = os.fspath(path)
        self.table = table
        self.packet_of_frame = np.argsort(table.pts, kind="stable")  # decode position of frame i's packet
        self.frame_pts = table.pts[self.packet_of_frame]  # frame i of the video has pts frame_pts[i]
        keys = np.flatnonzero(table.flags & KEY)
        # the keyframe each packet's GOP starts from (decode positions)
        self.key_of_packet = keys[np.searchsorted(keys, np.arange(len(table.pts)), side="right") - 1]
        self.is_reference = (table.flags & REFERENCE).astype(bool)

    def packets_for(self, frames: list[int]) -> list[int]:
        """Decode positions to feed, in decode order: for each frame its keyframe, the reference
        packets between them, and its own packet."""
        needed: set[int] = set()
        for frame in frames:
            packet = int(self.packet_of_frame[frame])
            key = int(self.key_of_packet[packet])
            needed.add(key)
            needed.add(packet)
            needed.update((key + 1 + np.flatnonzero(self.is_reference[key + 1:packet])).tolist())
        return sorted(needed)

    def decode(self, frames: list[int]) -> dict[int, np.ndarray]:
        """{frame index: (H, W, 3) uint8 RGB} for the sorted unique ``frames``."""
        table = self.table
        wanted = {int(self.frame_pts[f]): f for f in frames}
        codec = av.CodecContext.create(table.codec, "r")
        codec.extradata = table.extradata
        codec.thread_count = 1  # one DataLoader worker, one core
        convert = _RGBConverter()
        out: dict[int, np.ndarray] = {}

        def keep(decoded) -> None:
            for frame in decoded:
                index = wanted.get(frame.pts)
                if index is not None and index not in out:
                    out[index] = convert(frame)

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as error:
            raise VideoDecodeError(self.path, "missing file" if isinstance(error, FileNotFoundError) else "unreadable",
                                   str(error)) from None
        try:
            for j in self.packets_for(frames):
                data = os.pread(fd, int(table.size[j]), int(table.position[j]))
                if len(data) != table.size[j] or zlib.crc32(data) != int(table.crc[j]):
                    raise VideoDecodeError(self.path, "decode error",
                                           f"packet {j} does not match its CRC; the file was damaged after preparation")
                packet = av.Packet(data)
                packet.pts = int(table.pts[j])
                keep(codec.decode(packet))
            keep(codec.decode(None))  # flush the reorder buffer
        except av.FFmpegError as error:
            raise VideoDecodeError(self.path, "decode error", str(error)) from None
        finally:
            os.close(fd)
        return out
