"""Datasets: training clips, multi-view test views, and a dummy that skips decoding.

Sample layouts (T frames, S = crop size, C clips, K classes):

- ``VideoClipDataset[i]`` -> ``(clip (T, 3, S, S) float, label, index)``; ``label`` is an int, or
  a float multi-hot ``(K,)`` with ``multi_label=True``.
- ``MultiViewTestDataset[i]`` -> ``(views (C * num_crops, T, 3, S, S), label, index, valid)``.
  Views are **clip-major**: view ``v = clip * num_crops + crop``. ``valid`` is False when the video
  could not be decoded; its views are zeros, so the batch still collates.
- ``DummyVideoDataset[i]`` -> zeros of the same shapes, ``label = i % num_classes``.

Bad input never stops a run. A missing, unreadable, truncated or zero-frame video is logged
(path and reason) and recorded; in training another sample is drawn at random instead (as
PySlowFast does) and the returned ``index`` is the replacement's; in evaluation the sample comes
back with ``valid=False``. Records are kept in shared memory, so ``bad_videos`` and
``bad_video_count()`` in the main process include what DataLoader workers saw.
``reset_bad_videos()`` starts a new count (e.g. per epoch). Counts are per process: sum them across
ranks in distributed runs.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

import torch

from .annotations import TarIndex, VideoRecord, read_video_list
from .decode import KeyframeIndexCache, VideoDecodeError
from .readers import open_video, read_rawframes
from .sampling import FrameSampler
from .transforms import build_test_transform, build_train_transform

log = logging.getLogger(__name__)

# Reasons recorded for bad videos; index 0 means "not bad". Anything else is recorded as "other".
BAD_REASONS = ("", "missing file", "unreadable", "no video stream", "zero frames", "truncated",
               "decode error", "missing frame file", "other")


def views_text(num_frames: int, num_clips: int, num_crops: int) -> str:
    """`8 frames x 4 clips x 1 crop`: the test views, in words."""
    from ..errors import plural

    return f"{plural(num_frames, 'frame')} x {plural(num_clips, 'clip')} x {plural(num_crops, 'crop')}"


class VideoClipDataset(torch.utils.data.Dataset):
    """One clip per video from a list file (formats in :mod:`clipvideo.data.annotations`).

    ``train=True``: random clip position (``FrameSampler.train``), train transform, bad videos
    replaced. ``train=False``: one centred clip (``FrameSampler.test(n, 1)``), test transform, bad
    videos return zeros and are recorded (prefer :class:`MultiViewTestDataset`, which also
    returns a ``valid`` flag).

    Paths are ``os.path.join(data_root, listed path)``; with ``tar_path`` they are members of that
    uncompressed tar (looked up as listed, then by basename). ``start_index`` is the file number
    of frame 0 in rawframes folders (default 1, as MMAction2 and Text4Vis); video frames are
    always 0-based. The default transform is the CLIP-normalised 224 train or test transform.
    ``sampling_protocol`` picks whose frame positions to use (:mod:`clipvideo.data.sampling`).
    """

    def __init__(
        self,
        annotation_file: str | os.PathLike,
        data_root: str | os.PathLike = "",
        num_frames: int = 8,
        sampling: str = "dense",
        frame_stride: int = 1,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        backend: str = "pyav",
        rawframes: bool = False,
        filename_template: str = "img_{:05d}.jpg",
        start_index: int | None = None,
        separator: str | None = None,
        num_classes: int | None = None,
        multi_label: bool = False,
        tar_path: str | os.PathLike | None = None,
        train: bool = True,
        out_of_bounds: str = "clamp",
        num_threads: int = 1,
        index_cache_dir: str | os.PathLike | None = None,
        max_retries: int = 10,
        sampling_protocol: str = "clipvideo",
    ):
        if not rawframes and start_index not in (None, 0):
            raise ValueError("start_index numbers rawframes files; video frames are always 0-based")
        if rawframes and tar_path is not None:
            raise ValueError("tar_path holds video files; it cannot be combined with rawframes")
        self.annotation_file = os.fspath(annotation_file)
        self.records: list[VideoRecord] = read_video_list(
            self.annotation_file, rawframes=rawframes, separator=separator, num_classes=num_classes,
            multi_label=multi_label,
        )
        self.num_classes = num_classes if num_classes is not None else 1 + max(max(r.labels) for r in self.records)
        self.data_root = os.fspath(data_root)
        self.sampler = FrameSampler(num_frames, sampling, frame_stride, out_of_bounds, sampling_protocol)
        self.num_frames = num_frames
        self.train = train
        self.transform = transform if transform is not None else (
            build_train_transform() if train else build_test_transform()
        )
        self.backend = backend
        self.rawframes = rawframes
        self.filename_template = filename_template
        self.start_index = (1 if start_index is None else start_index) if rawframes else 0
        self.multi_label = multi_label
        self.tar = TarIndex(tar_path) if tar_path is not None else None
        self.num_threads = num_threads
        self.index_cache = KeyframeIndexCache(directory=index_cache_dir)
        self.max_retries = max_retries
        # one byte per video, in shared memory so that DataLoader workers' records reach the main process
        self._bad = torch.zeros(len(self.records), dtype=torch.uint8).share_memory_()
        self._blank: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.records)

    # -- bad-video bookkeeping ------------------------------------------------------------------

    @property
    def bad_videos(self) -> list[tuple[str, str]]:
        """(path, reason) of every video that failed since the last ``reset_bad_videos()``."""
        return [(self.video_path(i), BAD_REASONS[int(self._bad[i])]) for i in self._bad.nonzero().flatten().tolist()]

    def bad_video_count(self) -> int:
        return int(self._bad.count_nonzero())

    def reset_bad_videos(self) -> None:
        self._bad.zero_()

    def is_bad(self, index: int) -> bool:
        return bool(self._bad[index])

    def _record_bad(self, index: int, error: Exception) -> None:
        reason = error.reason if isinstance(error, VideoDecodeError) else "unreadable"
        self._bad[index] = BAD_REASONS.index(reason) if reason in BAD_REASONS else BAD_REASONS.index("other")
        log.warning("bad video %s (%s): %s", self.video_path(index), self.records[index].where, error)

    # -- reading --------------------------------------------------------------------------------

    def video_path(self, index: int) -> str:
        """The file (or tar member, as ``archive.tar:member``) behind sample ``index``."""
        listed = self.records[index].path
        if self.tar is not None:
            return f"{self.tar.tar_path}:{self.tar.find(listed) or listed}"
        return os.path.join(self.data_root, listed)

    def read_frames(self, index: int, choose: Callable[..., torch.Tensor]) -> torch.Tensor:
        """Decode the frames ``choose(num_video_frames)`` picks (any shape ``(..., T)``) ->
        uint8 ``(..., T, 3, H, W)``. Raises ``VideoDecodeError`` for bad input. When the sampler
        resamples to a frame rate (``sampler.needs_fps``), ``choose`` also gets ``fps=`` (the
        stream's rate; None for rawframes)."""
        needs_fps = self.sampler.needs_fps
        record = self.records[index]
        if self.rawframes:
            frame_dir = self.video_path(index)
            if record.num_frames == 0:
                raise VideoDecodeError(frame_dir, "zero frames", "the list gives 0 frames")
            indices = choose(record.num_frames, fps=None) if needs_fps else choose(record.num_frames)
            frames = read_rawframes(frame_dir, indices.flatten().tolist(), self.filename_template, self.start_index)
        else:
            if self.tar is not None:
                member = self.tar.find(record.path)
                if member is None:
                    raise VideoDecodeError(self.video_path(index), "missing file", "not in the tar")
                source, cache_key = self.tar.read(member), f"{self.tar.tar_path}:{member}"
            else:
                source, cache_key = self.video_path(index), None
            reader = open_video(source, self.backend, self.num_threads, self.index_cache, cache_key)
            if needs_fps:
                indices = choose(reader.num_frames, fps=reader.fps)
            else:
                indices = choose(reader.num_frames)
            frames = reader.get_frames(indices.flatten().tolist())
        frames = frames.reshape(*indices.shape, *frames.shape[1:])  # (..., T, H, W, 3)
        return frames.movedim(-1, -3)  # (..., T, 3, H, W), a view: no copy

    def target(self, index: int):
        labels = self.records[index].labels
        if not self.multi_label:
            return labels[0]
        target = torch.zeros(self.num_classes)
        target[list(labels)] = 1.0
        return target

    def _blank_like_output(self) -> torch.Tensor:
        """Zeros shaped like one transformed sample, returned for a video that failed in evaluation."""
        if self._blank is None:
            probe = torch.zeros((self.num_frames, 3, 256, 340), dtype=torch.uint8)
            self._blank = torch.zeros_like(self.transform(probe))
        return self._blank.clone()

    def __getitem__(self, index: int):
        last_error = None
        for _ in range(self.max_retries + 1):
            try:
                if self.train:
                    clip = self.read_frames(index, self.sampler.train)  # (T, 3, H, W)
                else:
                    clip = self.read_frames(index, lambda n, **kw: self.sampler.test(n, 1, **kw)[0])
            except (VideoDecodeError, OSError) as error:
                self._record_bad(index, error)
                if not self.train:
                    return self._blank_like_output(), self.target(index), index
                last_error = error
                index = int(torch.randint(len(self), ()))
                continue
            return self.transform(clip), self.target(index), index
        raise RuntimeError(
            f"{self.max_retries + 1} videos in a row could not be read (last: {last_error}); "
            f"check data_root={self.data_root!r} and the list {self.annotation_file}"
        ) from last_error

    def describe(self) -> str:
        return views_text(self.num_frames, 1, 1)

    def __repr__(self) -> str:
        kind = "rawframes" if self.rawframes else f"videos ({self.backend})"
        return (f"{type(self).__name__}({len(self)} {kind} from {self.annotation_file}, {self.sampler}, "
                f"{'train' if self.train else 'test'}, {self.describe()})")


class MultiViewTestDataset(VideoClipDataset):
    """``num_clips`` clips x ``num_crops`` spatial crops per video, for the test protocol.

    Returns ``(views (C * S, T, 3, H, W), label, index, valid)``, views clip-major
    (``v = clip * S + crop``; the seeds differ, see ``docs/data.md``, but averaging ignores the
    order). Clip positions come from ``FrameSampler.test`` (dense: centres of C equal parts of the
    valid start range; segment: C offsets inside each segment). The default transform is the
    short-side resize to ``size`` then a centre crop (``num_crops=1``) or three crops (3).
    """

    def __init__(self, annotation_file, data_root="", num_frames=8, num_clips: int = 1, num_crops: int = 1,
                 transform=None, size: int = 224, **kwargs):
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 (centre) or 3, got {num_crops}")
        if transform is None:
            transform = build_test_transform(size, crop="center" if num_crops == 1 else "three")
        transform_crops = getattr(transform, "num_crops", None)
        if transform_crops is not None and transform_crops != num_crops:
            raise ValueError(f"num_crops={num_crops} but the transform makes {transform_crops} crops")
        kwargs["train"] = False
        super().__init__(annotation_file, data_root, num_frames, transform=transform, **kwargs)
        self.num_clips = num_clips
        self.num_crops = num_crops

    def sample(self, index: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        """(frames in the video, frame indices (C, T), decoded uint8 frames (C, T, 3, H, W)) of
        video ``index``'s clips; raises ``VideoDecodeError``/``OSError`` for bad input."""
        seen = {}

        def choose(num_video_frames, **kwargs):
            seen["total"] = num_video_frames
            seen["indices"] = self.sampler.test(num_video_frames, self.num_clips, **kwargs)
            return seen["indices"]

        frames = self.read_frames(index, choose)
        return seen["total"], seen["indices"], frames

    def views(self, frames: torch.Tensor) -> torch.Tensor:
        """Decoded clips (C, T, 3, H, W) -> transformed views (C * S, T, 3, S, S), clip-major."""
        views = torch.stack([self.transform(clip) for clip in frames])  # (C, [S,] T, 3, S, S)
        if views.dim() == 5:
            views = views.unsqueeze(1)
        return views.flatten(0, 1)

    def __getitem__(self, index: int):
        try:
            _, _, frames = self.sample(index)  # (C, T, 3, H, W)
        except (VideoDecodeError, OSError) as error:
            self._record_bad(index, error)
            return self._blank_like_output(), self.target(index), index, False
        return self.views(frames), self.target(index), index, True  # (C*S, T, 3, S, S)

    def _blank_like_output(self) -> torch.Tensor:
        if self._blank is None:
            probe = torch.zeros((self.num_frames, 3, 256, 340), dtype=torch.uint8)
            one = self.transform(probe)
            one = one.unsqueeze(0) if one.dim() == 4 else one  # (S, T, 3, H, W)
            self._blank = torch.zeros((self.num_clips * one.shape[0], *one.shape[1:]), dtype=one.dtype)
        return self._blank.clone()

    def describe(self) -> str:
        return views_text(self.num_frames, self.num_clips, self.num_crops)


class DummyVideoDataset(torch.utils.data.Dataset):
    """Zeros of the right shape without decoding, to time the model alone (EVL ``--dummy_dataset``).

    ``[i]`` -> ``(zeros (T, 3, size, size), i % num_classes, i)``, or with ``num_views`` ->
    ``(zeros (num_views, T, 3, size, size), i % num_classes, i, True)`` like the test dataset.
    """

    def __init__(self, length: int, num_frames: int = 8, size: int = 224, num_classes: int = 400,
                 num_views: int | None = None):
        self.length, self.num_frames, self.size = length, num_frames, size
        self.num_classes, self.num_views = num_classes, num_views
        shape = (num_frames, 3, size, size) if num_views is None else (num_views, num_frames, 3, size, size)
        self._zeros = torch.zeros(shape)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(index)
        if self.num_views is None:
            return self._zeros, index % self.num_classes, index
        return self._zeros, index % self.num_classes, index, True

    def bad_video_count(self) -> int:
        return 0

    def describe(self) -> str:
        views = self.num_views or 1
        return views_text(self.num_frames, views, 1) + " (dummy)"
