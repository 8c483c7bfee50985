"""`clipvideo prepare`: turn a list of videos into a store that a few cores can feed an accelerator from.

What the store is (chosen by measurement, see ``benchmarks/data_loading.py`` and docs/data.md):
every listed video re-encoded once as H.264, resized to a short side of 256, in closed GOPs of
``gop`` frames (default 16): an intra frame, then B-frames that nothing references, anchored by
P-frames. Beside each video a packet table (``<video>.packets``, :mod:`clipvideo.data.packets`)
records each packet's byte range, flags and CRC, so the loader reads any frame with at most three
packet decodes (keyframe, anchor, the frame itself) and no demuxing or seeking, while the cheap
B-frames keep the store small (1.3x the source on the benchmark videos). Decoding time is mostly
the keyframes (one per sampled frame), so everything that makes them cheaper is on: x264's
``fastdecode`` tuning (CAVLC, no deblocking: half the decoding time), keyframes at the quality of
the P-frames (``ipratio`` 1.0, not 1.4) and no psychovisual tuning (``psy`` off: it spends bits
on keeping grain). Every decoded frame is kept, in order, so frame ``i`` of the store is frame
``i`` of the source and frame-index based protocols are unchanged.

    STORE/store.json              settings and provenance ("format": "clipvideo-store")
    STORE/videos/<listed path>    the re-encoded video, under the path the list gives
    STORE/videos/<listed path>.packets   its packet table
    STORE/parts/part-K-of-N.jsonl one JSON line per finished video of shard K (resume + merge)
    STORE/manifest.jsonl          all parts merged, in list order; STORE/report.json; failures.txt

The same list files read the store: set ``data.store: STORE`` in a recipe (``data.root`` is then
the store's ``videos/`` folder and the ``store`` backend decodes). A video that cannot be decoded
is listed in the report and in ``failures.txt``, never silently dropped; the loader treats it (or
a store file damaged later: its size or a packet CRC no longer matches) as any bad video:
counted, reported, replaced in training and scored wrong in evaluation.

Work is resumable (finished videos are recorded as they complete and skipped on a rerun), runs
over ``workers`` local processes, and shards across machines with ``shard=(k, n)`` (video ``i`` of
the list belongs to shard ``i % n``); ``merge_store`` joins the parts into the same store one
run would have written.
"""

from __future__ import annotations

import ctypes
import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import av

from .annotations import read_video_list
from .decode import VideoDecodeError
from .packets import table_path, write_packet_table

STORE_FORMAT = "clipvideo-store"
STORE_VERSION = 2  # 2: B-frame GOPs with packet tables; 1 (short all-P GOPs) is no longer read
MAX_BFRAMES = 15  # B-frames per run between anchors (x264 allows 16)


class StoreError(ValueError):
    """A store folder that is missing, not a store, or prepared with other settings."""


@dataclass
class StoreSettings:
    short_side: int = 256  # shrink so the shorter side is at most this many pixels (aspect kept, even sizes)
    upscale: bool = False  # also enlarge videos whose short side is smaller (more bytes, no more detail)
    gop: int = 16  # a keyframe every `gop` frames; a frame needs its keyframe, the anchors before it and itself
    crf: int = 26  # x264 constant rate factor (lower = larger, closer to the source)
    preset: str = "medium"  # x264 speed preset: encoding time and size (decoding cost comes from `tune`)
    tune: str = "fastdecode"  # no CABAC, no deblocking: about half the decoding time
    ipratio: float = 1.0  # keyframe vs P-frame quality; x264's 1.4 makes the keyframes every clip decodes larger
    psy: bool = False  # x264's psychovisual tuning keeps grain at the cost of bits (and of decoding time)


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


def check_settings(settings: StoreSettings) -> None:
    """StoreError naming the first setting out of range (before any video is touched)."""
    if settings.gop < 1:
        raise StoreError(f"--gop {settings.gop}: expected a keyframe interval of at least 1 frame")
    if not 0 <= settings.crf <= 51:
        raise StoreError(f"--crf {settings.crf}: expected 0 (lossless) to 51")
    if settings.short_side < 2:
        raise StoreError(f"--short-side {settings.short_side}: expected at least 2 pixels")
    if settings.preset not in X264_PRESETS:
        raise StoreError(f"--preset {settings.preset!r}: expected one of {', '.join(X264_PRESETS)}")


def x264_params(settings: StoreSettings) -> str:
    """The GOP structure of the store (:mod:`clipvideo.data.packets`): fixed closed GOPs, runs of
    non-reference B-frames (no pyramid, no adaptive placement), no scene-cut keyframes."""
    bframes = min(settings.gop - 1, MAX_BFRAMES)
    return (f"keyint={settings.gop}:min-keyint={settings.gop}:scenecut=0:open-gop=0:bframes={bframes}"
            f":b-adapt=0:b-pyramid=none:ipratio={settings.ipratio}:psy={int(settings.psy)}")


@dataclass
class VideoRecordOut:
    """One line of a part / the manifest."""

    index: int  # position in the list
    path: str  # as listed
    status: str  # "ok" | "failed"
    error: str = ""
    frames: int = 0
    fps: float = 0.0
    seconds: float = 0.0
    width: int = 0
    height: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def output_size(width: int, height: int, short_side: int, upscale: bool = True) -> tuple[int, int]:
    """(width, height) with the short side = short_side, aspect kept, both even (yuv420p); without
    `upscale`, a video whose short side is already at most short_side keeps its size (made even)."""
    if not upscale and min(width, height) <= short_side:
        return max(2, width - width % 2), max(2, height - height % 2)
    if width <= height:
        return _even(short_side), _even(height * short_side / width)
    return _even(width * short_side / height), _even(short_side)


def _decoded_frames(container, stream, source: str):
    """The source's frames; decoding errors become VideoDecodeError (encoding errors stay as they are)."""
    count = 0
    try:
        for frame in container.decode(stream):
            count += 1
            yield frame
    except (av.FFmpegError, OSError) as error:
        detail = (str(error).splitlines() or [type(error).__name__])[0]
        if count == 0:
            raise VideoDecodeError(source, "unreadable", detail) from None
        raise VideoDecodeError(source, "truncated", f"decoding stopped after {count} frames: {detail}") from None


_M_PERTURB = -6  # glibc mallopt parameter


@contextmanager
def _deterministic_heap():
    """Fill fresh heap blocks with a fixed byte while encoding (glibc's M_PERTURB).

    With B-frames and macroblock-tree rate control, this libx264/FFmpeg build reads heap memory it
    never wrote: the same video encodes to different bytes depending on what the process encoded
    before (measured: 4 different outputs in 6 runs), and a fresh process gives yet another. With
    the heap's leftovers fixed, the output depends only on the input and the settings, so shards
    and reruns write identical files. Outside glibc this is a no-op (outputs are then still valid,
    only not byte-reproducible)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        yield
        return
    mallopt(_M_PERTURB, 0x5A)
    try:
        yield
    finally:
        mallopt(_M_PERTURB, 0)


def encode_video(source: str, destination: str, settings: StoreSettings) -> dict:
    """Decode every frame of `source` and write it re-encoded to `destination` (atomically).

    Returns frames, fps, seconds, width, height. Raises VideoDecodeError for an unreadable source.
    """
    tmp = f"{destination}.{os.getpid()}.part.mp4"
    os.makedirs(os.path.dirname(destination) or ".", exist_ok=True)
    try:
        container = av.open(source)
    except (av.FFmpegError, OSError) as error:
        raise VideoDecodeError(source, "unreadable", str(error).splitlines()[0] if str(error) else "") from None
    frames = 0
    try:
        if not container.streams.video:
            raise VideoDecodeError(source, "unreadable", "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        out = av.open(tmp, mode="w", format="mp4")
        try:
            width, height = output_size(stream.codec_context.width, stream.codec_context.height, settings.short_side,
                                        settings.upscale)
            options = {"crf": str(settings.crf), "preset": settings.preset, "tune": settings.tune,
                       "x264-params": x264_params(settings)}
            encoder = out.add_stream("libx264", rate=rate, options=options)
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            # One encoder thread: the output is byte-identical however the work is sharded.
            encoder.codec_context.thread_count = 1
            frame_time_base = Fraction(1) / rate
            for frame in _decoded_frames(container, stream, source):
                # Frames are re-timed 0, 1, 2, ...: the store keeps order and count, not timestamps.
                resized = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
                resized.pts, resized.time_base = frames, frame_time_base
                # The decoder tags frames with the source's I/P/B types, which x264 would obey.
                resized.pict_type = av.video.frame.PictureType.NONE
                frames += 1
                for packet in encoder.encode(resized):
                    out.mux(packet)
            if frames == 0:
                raise VideoDecodeError(source, "zero frames")
            for packet in encoder.encode():
                out.mux(packet)
        finally:
            out.close()
        os.replace(tmp, destination)
    finally:
        container.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"frames": frames, "fps": float(rate), "seconds": frames / float(rate), "width": width, "height": height}


def _prepare_one(job: tuple) -> VideoRecordOut:
    index, listed, source, destination, settings = job
    record = VideoRecordOut(index=index, path=listed, status="failed")
    try:
        record.bytes_in = os.path.getsize(source)
        with _deterministic_heap():
            info = encode_video(source, destination, settings)
        table = write_packet_table(destination)
        if table.num_frames != info["frames"]:
            raise VideoDecodeError(destination, "truncated", f"{table.num_frames} packets for {info['frames']} frames")
        record.bytes_out = table.video_bytes + os.path.getsize(table_path(destination))
        record.status = "ok"
        for key, value in info.items():
            setattr(record, key, value)
    except (VideoDecodeError, OSError) as error:
        # The record names the listed path already: keep the reason, not the full source path again.
        plain_os_error = isinstance(error, OSError) and not isinstance(error, VideoDecodeError) and error.strerror
        record.error = error.strerror if plain_os_error else str(error).removeprefix(f"{source}: ")
    return record


def _store_meta(settings: StoreSettings, list_file: str, root: str, separator: str | None) -> dict:
    return {"format": STORE_FORMAT, "version": STORE_VERSION, "settings": asdict(settings),
            "source_list": os.path.abspath(list_file), "separator": separator,
            "source_root": os.path.abspath(root) if root else ""}


def open_store(store: str | os.PathLike) -> dict:
    """The store's metadata; StoreError when `store` is not a prepared store."""
    meta_path = Path(store) / "store.json"
    if not meta_path.is_file():
        raise StoreError(f"{store}: not a clipvideo store (no store.json); create it with `clipvideo prepare`")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != STORE_FORMAT:
        raise StoreError(f"{meta_path}: not a clipvideo store (format {meta.get('format')!r})")
    if meta.get("version") != STORE_VERSION:
        raise StoreError(f"{meta_path}: store version {meta.get('version')}, this clipvideo reads version "
                         f"{STORE_VERSION}; prepare the videos again into a new folder")
    return meta


def _read_records(path: Path) -> list[VideoRecordOut]:
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(VideoRecordOut(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line cut by an interruption: that video is simply done again
    return records


def prepare_store(
    list_file: str,
    out: str,
    root: str = "",
    settings: StoreSettings | None = None,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    separator: str | None = None,
    progress: bool = True,
    on_record: Callable[[VideoRecordOut], None] | None = None,
) -> dict:
    """Prepare this shard's videos of `list_file` into `out`; returns the shard's summary.

    Videos already recorded in this shard's part file are skipped (resume). With one shard the
    store is merged at the end; with several, run `merge_store(out)` once all shards are done.
    """
    settings = settings or StoreSettings()
    check_settings(settings)
    k, n = shard
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"--shard {k}/{n}: expected K/N with 0 <= K < N")
    # multi_label accepts one or more labels per line: any list a dataset reads (not rawframes)
    records = read_video_list(list_file, separator=separator, multi_label=True)
    out_path = Path(out)
    meta = _store_meta(settings, list_file, root, separator)
    meta_file = out_path / "store.json"
    if meta_file.is_file():
        existing = open_store(out_path)
        if existing["settings"] != meta["settings"]:
            raise StoreError(f"{meta_file}: prepared with {existing['settings']}, not {meta['settings']}; "
                             "use another output folder or the same settings")
    else:
        out_path.mkdir(parents=True, exist_ok=True)
        tmp = meta_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, meta_file)
    part_file = out_path / "parts" / f"part-{k}-of-{n}.jsonl"
    part_file.parent.mkdir(exist_ok=True)
    done = {r.index for r in _read_records(part_file)}
    jobs = [
        (i, r.path, os.path.join(root, r.path), str(out_path / "videos" / r.path), settings)
        for i, r in enumerate(records) if i % n == k and i not in done
    ]
    skipped = sum(1 for i in range(len(records)) if i % n == k) - len(jobs)
    from tqdm import tqdm

    start = time.perf_counter()
    finished: list[VideoRecordOut] = []
    bar = tqdm(total=len(jobs), desc=f"prepare {k}/{n}", disable=None if progress else True, dynamic_ncols=True)
    with open(part_file, "a") as part:
        def record_one(record: VideoRecordOut) -> None:
            part.write(json.dumps(asdict(record)) + "\n")
            part.flush()
            os.fsync(part.fileno())
            finished.append(record)
            bar.update(1)
            if on_record is not None:
                on_record(record)

        if workers <= 1:
            for job in jobs:
                record_one(_prepare_one(job))
        else:
            with get_context("spawn").Pool(workers) as pool:
                for record in pool.imap_unordered(_prepare_one, jobs):
                    record_one(record)
    bar.close()
    elapsed = time.perf_counter() - start
    summary = _summarize(finished, elapsed)
    summary["skipped_already_done"] = skipped
    if n == 1:
        summary["store"] = merge_store(out_path)
    return summary


def resolve_shard(text: str | None, environ=os.environ) -> tuple[int, int, str]:
    """``--shard`` -> (k, n, launcher): "K/N" as given; "auto" (or nothing, under a multi-process
    torchrun) from torchrun's RANK/WORLD_SIZE or a Slurm job array's task id and count."""
    world = int(environ.get("WORLD_SIZE", "1") or 1)
    if text is None and world > 1:
        text = "auto"  # every torchrun process preparing every video into one store would collide
    if text is None:
        return 0, 1, ""
    if text == "auto":
        if "RANK" in environ and "WORLD_SIZE" in environ:
            return int(environ["RANK"]), world, "torchrun"
        if "SLURM_ARRAY_TASK_ID" in environ and "SLURM_ARRAY_TASK_COUNT" in environ:
            first = int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
            return int(environ["SLURM_ARRAY_TASK_ID"]) - first, int(environ["SLURM_ARRAY_TASK_COUNT"]), "slurm"
        raise StoreError("--shard auto: no torchrun (RANK, WORLD_SIZE) or Slurm job array "
                         "(SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) in the environment; give --shard K/N")
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit()):
        raise StoreError(f"--shard {text!r}: expected K/N (e.g. 0/4) or auto")
    return int(k), int(n), ""


def merge_after_every_rank(store: str | os.PathLike, rank: int, world_size: int) -> dict | None:
    """Under torchrun: wait until every process has finished its shard, then the first one merges
    (returns the store report there, None elsewhere). Preparing can take hours: a week's timeout."""
    import datetime

    import torch.distributed as dist

    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(days=7))
    try:
        dist.barrier()
        report = merge_store(store) if rank == 0 else None
        dist.barrier()  # nobody leaves before the merged report exists
    finally:
        dist.destroy_process_group()
    return report


def _summarize(records: list[VideoRecordOut], elapsed: float | None = None) -> dict:
    ok = [r for r in records if r.status == "ok"]
    summary = {
        "videos": len(records),
        "prepared": len(ok),
        "failed": len(records) - len(ok),
        "hours": round(sum(r.seconds for r in ok) / 3600, 4),
        "bytes_in": sum(r.bytes_in for r in records),
        "bytes_out": sum(r.bytes_out for r in ok),
    }
    if elapsed:
        summary.update(seconds=round(elapsed, 2), videos_per_s=round(len(records) / elapsed, 3),
                       realtime_factor=round(sum(r.seconds for r in ok) / elapsed, 1))
    return summary


def merge_store(store: str | os.PathLike) -> dict:
    """Join every part of `store` into manifest.jsonl (list order), report.json and failures.txt."""
    store = Path(store)
    meta = open_store(store)
    by_index: dict[int, VideoRecordOut] = {}
    for part in sorted((store / "parts").glob("part-*-of-*.jsonl")):
        for record in _read_records(part):
            by_index[record.index] = record  # a later line (a retried video) wins
    records = [by_index[i] for i in sorted(by_index)]
    with open(store / "manifest.jsonl.tmp", "w") as f:
        for record in records:
            f.write(json.dumps(asdict(record)) + "\n")
    os.replace(store / "manifest.jsonl.tmp", store / "manifest.jsonl")
    failures = [r for r in records if r.status != "ok"]
    (store / "failures.txt").write_text("".join(f"{r.path}\t{r.error}\n" for r in failures))
    listed = None
    if os.path.isfile(meta["source_list"]):
        listed = len(read_video_list(meta["source_list"], separator=meta.get("separator"), multi_label=True))
    report = {**_summarize(records), "listed": listed, "missing": None if listed is None else listed - len(records)}
    (store / "report.json").write_text(json.dumps(report, indent=1))
    return report


def format_report(summary: dict) -> str:
    """The final report as a few readable lines."""
    store = summary.get("store", summary)
    lines = [
        f"videos: {store['prepared']} prepared, {store['failed']} failed"
        + (f", {summary['skipped_already_done']} already done (skipped)" if summary.get("skipped_already_done") else ""),
        f"video hours: {store['hours']:.3f}",
        f"bytes: {store['bytes_in'] / 1e6:.1f} MB in -> {store['bytes_out'] / 1e6:.1f} MB out"
        + (f" ({store['bytes_out'] / store['bytes_in']:.2f}x)" if store["bytes_in"] else ""),
    ]
    if "seconds" in summary:
        lines.append(f"this run: {summary['videos']} videos in {summary['seconds']:.1f} s "
                     f"({summary['videos_per_s']:.2f} videos/s, {summary['realtime_factor']}x real time)")
    if store.get("missing"):
        lines.append(f"not prepared yet: {store['missing']} listed videos (other shards, or rerun to resume)")
    return "\n".join(lines)
