"""Which frames make a clip.

Conventions (all samplers):

- ``n`` is the number of frames of the video and frame indices are 0-based in presentation order
  (for rawframes, file number = index + ``start_index``). Every function returns int64 indices in
  ``[0, n)``, in increasing temporal order, ``num_frames`` of them per clip.
- **Dense** (EVL, AIM, MMAction2 ``T x stride``): a clip covers ``span = (T - 1) * stride + 1``
  frames, ``start + k * stride`` for ``k < T``.
  - train: ``start`` uniform in ``[0, n - span]`` (inclusive);
  - test: ``num_clips`` starts placed at the centres of ``num_clips`` equal parts of
    ``[0, n - span]``: ``start_c = floor((c + 0.5) * (n - span + 1) / num_clips)``. One clip is the
    centred clip; several clips spread evenly over the video.
  - a video shorter than ``span`` starts at 0 and the indices past the end are handled by
    ``out_of_bounds``: ``"clamp"`` repeats the last frame (EVL), ``"loop"`` wraps modulo ``n``
    (MMAction2/AIM).
- **Segment** (TSN: X-CLIP, Text4Vis, FROSTER's 8-frame uniform, AIM's SSv2): the video is cut into
  ``T`` equal segments ``[floor(k * n / T), floor((k + 1) * n / T))``.
  - train: one uniformly random frame in each segment;
  - test: clip ``c`` of ``num_clips`` takes the frame at fraction ``(c + 0.5) / num_clips`` of each
    segment, so one clip takes the segment centres.
  - ``n < T``: segments would be empty, so frame ``k`` is ``floor(k * n / T)`` (each frame repeated
    about ``T / n`` times, still in order) in train and test.

Randomness comes from ``torch`` (a ``torch.Generator`` when given, else the global generator,
which DataLoader seeds differently in every worker).
"""

from __future__ import annotations

import torch

SAMPLINGS = ("dense", "segment")
OUT_OF_BOUNDS = ("clamp", "loop")


def _randint(low: int, high: int, size, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform integers in [low, high] (inclusive), elementwise when ``high`` is a tensor."""
    return low + (torch.rand(size, generator=generator) * (torch.as_tensor(high) - low + 1)).long()


def _fit(indices: torch.Tensor, num_video_frames: int, out_of_bounds: str) -> torch.Tensor:
    if out_of_bounds == "clamp":
        return indices.clamp(max=num_video_frames - 1)
    if out_of_bounds == "loop":
        return indices % num_video_frames
    raise ValueError(f"out_of_bounds must be one of {OUT_OF_BOUNDS}, got {out_of_bounds!r}")


def dense_train_indices(
    num_video_frames: int,
    num_frames: int,
    frame_stride: int,
    out_of_bounds: str = "clamp",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(T,) one dense clip at a uniformly random start."""
    _check(num_video_frames, num_frames)
    span = (num_frames - 1) * frame_stride + 1
    start = int(_randint(0, max(num_video_frames - span, 0), (), generator))
    return _fit(start + frame_stride * torch.arange(num_frames), num_video_frames, out_of_bounds)


def dense_test_indices(
    num_video_frames: int, num_frames: int, frame_stride: int, num_clips: int = 1, out_of_bounds: str = "clamp"
) -> torch.Tensor:
    """(num_clips, T) dense clips centred in ``num_clips`` equal parts of the valid start range."""
    _check(num_video_frames, num_frames)
    span = (num_frames - 1) * frame_stride + 1
    num_starts = max(num_video_frames - span, 0) + 1
    starts = ((torch.arange(num_clips) + 0.5) * num_starts / num_clips).long()  # (C,)
    indices = starts[:, None] + frame_stride * torch.arange(num_frames)[None, :]  # (C, T)
    return _fit(indices, num_video_frames, out_of_bounds)


def _segment_bounds(num_video_frames: int, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.arange(num_frames)
    return (k * num_video_frames) // num_frames, ((k + 1) * num_video_frames) // num_frames


def segment_train_indices(
    num_video_frames: int, num_frames: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(T,) one random frame from each of T equal segments."""
    _check(num_video_frames, num_frames)
    lower, upper = _segment_bounds(num_video_frames, num_frames)
    if num_video_frames < num_frames:
        return lower
    return _randint(0, upper - lower - 1, (num_frames,), generator) + lower


def segment_test_indices(num_video_frames: int, num_frames: int, num_clips: int = 1) -> torch.Tensor:
    """(num_clips, T) clip c takes the point at fraction (c + 0.5) / num_clips of every segment."""
    _check(num_video_frames, num_frames)
    lower, upper = _segment_bounds(num_video_frames, num_frames)
    if num_video_frames < num_frames:
        return lower.expand(num_clips, num_frames).clone()
    fraction = (torch.arange(num_clips, dtype=torch.float64) + 0.5) / num_clips  # (C,)
    offsets = (fraction[:, None] * (upper - lower)[None, :].double()).long()  # (C, T)
    return lower[None, :] + offsets


def _check(num_video_frames: int, num_frames: int) -> None:
    if num_video_frames < 1:
        raise ValueError(f"cannot sample from a video with {num_video_frames} frames")
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")


class FrameSampler:
    """Picks frame indices for one video: ``train(n)`` -> (T,), ``test(n, num_clips)`` -> (C, T).

    ``sampling`` is ``"dense"`` (``frame_stride`` frames apart) or ``"segment"`` (TSN; the stride
    is unused). See the module docstring for the exact conventions.
    """

    def __init__(self, num_frames: int, sampling: str = "dense", frame_stride: int = 1, out_of_bounds: str = "clamp"):
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if out_of_bounds not in OUT_OF_BOUNDS:
            raise ValueError(f"out_of_bounds must be one of {OUT_OF_BOUNDS}, got {out_of_bounds!r}")
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be positive, got {frame_stride}")
        self.num_frames = num_frames
        self.sampling = sampling
        self.frame_stride = frame_stride
        self.out_of_bounds = out_of_bounds

    def train(self, num_video_frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.sampling == "dense":
            return dense_train_indices(
                num_video_frames, self.num_frames, self.frame_stride, self.out_of_bounds, generator
            )
        return segment_train_indices(num_video_frames, self.num_frames, generator)

    def test(self, num_video_frames: int, num_clips: int = 1) -> torch.Tensor:
        if self.sampling == "dense":
            return dense_test_indices(
                num_video_frames, self.num_frames, self.frame_stride, num_clips, self.out_of_bounds
            )
        return segment_test_indices(num_video_frames, self.num_frames, num_clips)

    def __repr__(self) -> str:
        detail = f", frame_stride={self.frame_stride}" if self.sampling == "dense" else ""
        return f"FrameSampler(num_frames={self.num_frames}, sampling={self.sampling!r}{detail})"
