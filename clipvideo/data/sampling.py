"""Which frames make a clip.

Conventions (all samplers):

- ``n`` is the number of frames of the video and frame indices are 0-based in presentation order
  (for rawframes, file number = index + ``start_index``). Every function returns int64 indices in
  ``[0, n)``, ``num_frames`` (``T``) of them per clip, in temporal order.
- ``protocol`` picks whose rules place the frames. ``"clipvideo"`` (the default) is ours, below;
  the others reproduce a seed's official code, so that its released checkpoints are tested (and
  recipes trained) as they were measured.

``protocol="clipvideo"``:

- **Dense** (``T x stride`` clips, as EVL, AIM and FROSTER train): a clip covers
  ``span = (T - 1) * stride + 1`` frames, ``start + k * stride`` for ``k < T``.
  - train: ``start`` uniform in ``[0, n - span]`` (inclusive);
  - test: ``num_clips`` starts placed at the centres of ``num_clips`` equal parts of
    ``[0, n - span]``: ``start_c = floor((c + 0.5) * (n - span + 1) / num_clips)``. One clip is the
    centred clip; several clips spread evenly over the video.
  - a video shorter than ``span`` starts at 0 and the indices past the end are handled by
    ``out_of_bounds``: ``"clamp"`` repeats the last frame (as EVL's test), ``"loop"`` wraps modulo
    ``n`` (as MMAction2/AIM).
- **Segment** (TSN, as X-CLIP, Text4Vis and AIM on SSv2): the video is cut into
  ``T`` equal segments ``[floor(k * n / T), floor((k + 1) * n / T))``.
  - train: one uniformly random frame in each segment;
  - test: clip ``c`` of ``num_clips`` takes the frame at fraction ``(c + 0.5) / num_clips`` of each
    segment, so one clip takes the segment centres.
  - ``n < T``: segments would be empty, so frame ``k`` is ``floor(k * n / T)`` (each frame repeated
    about ``T / n`` times, still in order) in train and test.

The official protocols (``out_of_bounds`` is ignored: each seed has its own rule). ``s`` is the
stride, ``C`` the number of test clips, ``randint(a, b)`` is inclusive:

- ``"evl"`` (dense only; EVL ``video_dataset/dataset.py``): ``span = (T - 1) * s + 1``.
  - train: ``n > span``: ``start = randint(0, n - span)``, frames ``start + k * s``. Otherwise
    frames ``k * s``, and an index ``>= n`` is replaced by the previous index (so it repeats the
    last *sampled* frame, not the last frame of the video).
  - test: the video is padded with its last frame to ``span``; ``slack = max(n, span) - span``;
    one clip starts at ``slack // 2``; ``C > 1`` clips start at ``round(slack / (C - 1) * c)``
    (Python's round, half to even), so the first and last clips touch both ends.
- ``"xclip"`` (segment only; X-CLIP's ``SampleFrames`` with clip_len 1, T clips):
  - train: ``seg = n // T``; ``seg > 0``: frame ``k * seg + randint(0, seg - 1)``, so the last
    ``n - T * seg`` frames are never drawn. ``n < T``: frame ``round(k * (n / T)) % n`` (round half
    to even).
  - test, one clip: ``floor(k * n / T + n / (2T))``, the segment centres (float segments).
  - test, ``C > 1`` clips: ``C`` independent *training* draws, as the official test does; the
    generator is seeded with ``n`` (unless one is given), so a video always gets the same views.
- ``"text4vis"`` (segment only; Text4Vis ``datasets/datasets.py``):
  - train: ``n <= T``: all ``n`` frames plus ``T - n`` frames drawn uniformly (with replacement),
    sorted. Otherwise segment bounds ``floor(k * n / T)`` and one random frame in each.
  - test: ``tick = n / T``; clip starts ``linspace(0, tick - 1, C)`` truncated to integers (the
    NumPy of the seed truncates towards zero); clip ``c`` takes ``int(start_c + tick * k) % n``.
    One clip takes the segment *starts*; this is also Text4Vis's validation during training.
- ``"aim"`` (AIM = MMAction2 0.15 ``SampleFrames``, out_of_bound "loop"):
  - dense: ``span = T * s`` (not ``(T - 1) * s + 1``). train: ``start = randint(0, n - span)``, or
    0 when ``n < span``. test: ``avg = (n - span + 1) / C``, ``start_c = int(c * avg + avg / 2)``
    (all 0 when ``n < span``). Frames ``(start + k * s) % n``.
  - segment (``frame_uniform``, SSv2/Diving-48): ``seg = (n - 1) / T``, segment ``k`` is
    ``[round(seg * k), round(seg * (k + 1))]`` (half to even, inclusive); train draws in it, test
    takes ``(lo + hi) // 2``. Always one clip: ``C`` copies of it when more are asked for.
- ``"froster"`` (dense only; FROSTER/Open-VCLIP = PySlowFast's PyAV path that reads the stream
  duration). ``s`` counts frames at ``target_fps`` (30): at the video's own ``fps`` the clip covers
  ``L = max(1, ceil(s * (T - 1) / 30 * fps))`` frames from a float ``start``; ``max_start =
  max(n - L, 0)``.
  - train: ``start`` uniform in ``[0, max_start]`` (float); test: ``start = max_start * c / C``
    (so the clips never touch the end).
  - the frames ``[ceil(start), min(floor(start + L - 1) + 1, n - 1)]`` are decoded (``m`` of them:
    the decode loop keeps one frame past the window), and frame ``k`` of the clip is ``linspace(0, S - 1, T)[k]`` (float32) clamped to ``m - 1`` and
    truncated, with ``S = max(1, s * T / 30 * fps)``, counted from ``ceil(start)``.
  - PySlowFast selects the decoded frames by timestamp; we use frame numbers (a frame whose
    timestamp rounds across the boundary may differ; on constant-rate videos they agree). A video without a known fps (rawframes) is
    taken to be at 30 fps. The decode-everything fallback (streams without a duration) is not
    reproduced.

Randomness comes from ``torch`` (a ``torch.Generator`` when given, else the global generator,
which DataLoader seeds differently in every worker).
"""

from __future__ import annotations

import math

import torch

SAMPLINGS = ("dense", "segment")
OUT_OF_BOUNDS = ("clamp", "loop")
# sampling_protocol -> the `sampling` kinds it defines
PROTOCOLS = {
    "clipvideo": ("dense", "segment"),
    "evl": ("dense",),
    "xclip": ("segment",),
    "text4vis": ("segment",),
    "aim": ("dense", "segment"),
    "froster": ("dense",),
}
FROSTER_TARGET_FPS = 30.0


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


# ---------------------------------------------------------------------------------------------
# Official protocols (module docstring). Plain Python arithmetic where the seed uses Python or
# float64 NumPy, so rounding matches theirs.


def _as_indices(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int64)


def evl_train_indices(
    num_video_frames: int, num_frames: int, frame_stride: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(T,) EVL training clip: random start; a short video repeats the last sampled index."""
    _check(num_video_frames, num_frames)
    span = (num_frames - 1) * frame_stride + 1
    if span >= num_video_frames:
        indices: list[int] = []
        for k in range(num_frames):
            indices.append(k * frame_stride if k * frame_stride < num_video_frames else indices[-1])
        return _as_indices(indices)
    start = int(_randint(0, num_video_frames - span, (), generator))
    return start + frame_stride * torch.arange(num_frames)


def evl_test_indices(num_video_frames: int, num_frames: int, frame_stride: int, num_clips: int = 1) -> torch.Tensor:
    """(C, T) EVL test clips: one centred clip, or C clips whose starts touch both ends."""
    _check(num_video_frames, num_frames)
    span = (num_frames - 1) * frame_stride + 1
    slack = max(num_video_frames, span) - span  # the video is padded with its last frame to `span`
    if num_clips == 1:
        starts = [slack // 2]
    else:
        starts = [round(slack / (num_clips - 1) * c) for c in range(num_clips)]
    indices = torch.tensor(starts)[:, None] + frame_stride * torch.arange(num_frames)[None, :]  # (C, T)
    return indices.clamp(max=num_video_frames - 1)


def xclip_train_indices(num_video_frames: int, num_frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(T,) X-CLIP training clip: segments of n // T frames (the tail is never drawn)."""
    _check(num_video_frames, num_frames)
    segment = num_video_frames // num_frames
    if segment > 0:
        return torch.arange(num_frames) * segment + _randint(0, segment - 1, (num_frames,), generator)
    ratio = num_video_frames / num_frames
    return _as_indices([round(k * ratio) % num_video_frames for k in range(num_frames)])


def xclip_test_indices(
    num_video_frames: int, num_frames: int, num_clips: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(C, T) X-CLIP test clips: float segment centres for one clip, C seeded training draws else."""
    _check(num_video_frames, num_frames)
    if num_clips == 1:
        tick = num_video_frames / num_frames
        return _as_indices([[int(k * tick + tick / 2.0) % num_video_frames for k in range(num_frames)]])
    if generator is None:
        generator = torch.Generator().manual_seed(num_video_frames)
    return torch.stack([xclip_train_indices(num_video_frames, num_frames, generator) for _ in range(num_clips)])


def text4vis_train_indices(
    num_video_frames: int, num_frames: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(T,) Text4Vis training clip: one random frame per segment; short videos add random frames."""
    _check(num_video_frames, num_frames)
    if num_video_frames <= num_frames:
        extra = _randint(0, num_video_frames - 1, (num_frames - num_video_frames,), generator)
        return torch.cat([torch.arange(num_video_frames), extra]).sort().values
    lower, upper = _segment_bounds(num_video_frames, num_frames)
    return lower + _randint(0, upper - lower - 1, (num_frames,), generator)


def text4vis_test_indices(num_video_frames: int, num_frames: int, num_clips: int = 1) -> torch.Tensor:
    """(C, T) Text4Vis test clips: segment starts shifted by linspace(0, n / T - 1, C)."""
    _check(num_video_frames, num_frames)
    tick = num_video_frames / num_frames
    if num_clips == 1:
        offsets = [0.0]
    else:  # NumPy's linspace: c * step, the last one exactly the end point
        step = (tick - 1) / (num_clips - 1)
        offsets = [c * step for c in range(num_clips - 1)] + [tick - 1]
    starts = [int(offset) for offset in offsets]  # truncation towards zero, as the seed's NumPy did
    return _as_indices([[int(start + tick * k) % num_video_frames for k in range(num_frames)] for start in starts])


def aim_dense_train_indices(
    num_video_frames: int, num_frames: int, frame_stride: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(T,) MMAction2 SampleFrames training clip (span T * stride, indices wrap modulo n)."""
    _check(num_video_frames, num_frames)
    span = num_frames * frame_stride
    start = int(_randint(0, num_video_frames - span, (), generator)) if num_video_frames >= span else 0
    return (start + frame_stride * torch.arange(num_frames)) % num_video_frames


def aim_dense_test_indices(num_video_frames: int, num_frames: int, frame_stride: int, num_clips: int = 1) -> torch.Tensor:
    """(C, T) MMAction2 SampleFrames test clips: starts int(c * avg + avg / 2)."""
    _check(num_video_frames, num_frames)
    span = num_frames * frame_stride
    average = (num_video_frames - span + 1) / num_clips
    if num_video_frames > span - 1:
        starts = [int(c * average + average / 2.0) for c in range(num_clips)]
    else:
        starts = [0] * num_clips
    indices = torch.tensor(starts)[:, None] + frame_stride * torch.arange(num_frames)[None, :]
    return indices % num_video_frames


def _aim_uniform_segments(num_video_frames: int, num_frames: int) -> list[tuple[int, int]]:
    size = (num_video_frames - 1) / num_frames
    return [(round(size * k), round(size * (k + 1))) for k in range(num_frames)]


def aim_uniform_train_indices(
    num_video_frames: int, num_frames: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(T,) AIM's SSv2 "frame_uniform" training clip: a random frame in each inclusive segment."""
    _check(num_video_frames, num_frames)
    lower, upper = (torch.tensor(bounds) for bounds in zip(*_aim_uniform_segments(num_video_frames, num_frames)))
    return lower + _randint(0, upper - lower, (num_frames,), generator)


def aim_uniform_test_indices(num_video_frames: int, num_frames: int, num_clips: int = 1) -> torch.Tensor:
    """(C, T) AIM's "frame_uniform" test clip (segment midpoints), the same for every c."""
    _check(num_video_frames, num_frames)
    clip = [(low + high) // 2 for low, high in _aim_uniform_segments(num_video_frames, num_frames)]
    return _as_indices([clip] * num_clips)


def _froster_lengths(num_frames: int, frame_stride: int, fps: float | None, target_fps: float) -> tuple[float, float]:
    fps = fps or target_fps
    decoded = max(1.0, math.ceil(frame_stride * (num_frames - 1) / target_fps * fps))  # frames decoded
    sampled = max(1.0, frame_stride * num_frames / target_fps * fps)  # length the T frames spread over
    return decoded, sampled


def _froster_clip(num_video_frames: int, num_frames: int, start: float, decoded: float, sampled: float) -> torch.Tensor:
    first = math.ceil(start)
    # PySlowFast's decode loop also keeps the first frame past the window before it stops
    last = min(math.floor(start + decoded - 1) + 1, num_video_frames - 1)
    offsets = torch.linspace(0, sampled - 1, num_frames).clamp(0, last - first).long()  # float32, as PySlowFast
    return first + offsets


def froster_train_indices(
    num_video_frames: int,
    num_frames: int,
    frame_stride: int,
    fps: float | None = None,
    generator: torch.Generator | None = None,
    target_fps: float = FROSTER_TARGET_FPS,
) -> torch.Tensor:
    """(T,) PySlowFast/FROSTER training clip; ``frame_stride`` counts frames at ``target_fps``."""
    _check(num_video_frames, num_frames)
    decoded, sampled = _froster_lengths(num_frames, frame_stride, fps, target_fps)
    max_start = max(num_video_frames - decoded, 0)
    start = float(torch.rand((), generator=generator, dtype=torch.float64)) * max_start
    return _froster_clip(num_video_frames, num_frames, start, decoded, sampled)


def froster_test_indices(
    num_video_frames: int,
    num_frames: int,
    frame_stride: int,
    num_clips: int = 1,
    fps: float | None = None,
    target_fps: float = FROSTER_TARGET_FPS,
) -> torch.Tensor:
    """(C, T) PySlowFast/FROSTER test clips starting at max_start * c / C."""
    _check(num_video_frames, num_frames)
    decoded, sampled = _froster_lengths(num_frames, frame_stride, fps, target_fps)
    max_start = max(num_video_frames - decoded, 0)
    return torch.stack([
        _froster_clip(num_video_frames, num_frames, max_start * c / num_clips, decoded, sampled)
        for c in range(num_clips)
    ])


class FrameSampler:
    """Picks frame indices for one video: ``train(n)`` -> (T,), ``test(n, num_clips)`` -> (C, T).

    ``sampling`` is ``"dense"`` (``frame_stride`` frames apart) or ``"segment"`` (TSN; the stride
    is unused). ``protocol`` is whose rules place the frames (``PROTOCOLS``: ``"clipvideo"`` or a
    seed's name); ``out_of_bounds`` applies to ``"clipvideo"`` only. ``needs_fps`` is True when
    the protocol resamples to a frame rate (``"froster"``): pass the video's ``fps`` to
    ``train``/``test`` then (None: taken as ``target_fps``). See the module docstring for the
    exact conventions.
    """

    def __init__(
        self,
        num_frames: int,
        sampling: str = "dense",
        frame_stride: int = 1,
        out_of_bounds: str = "clamp",
        protocol: str = "clipvideo",
        target_fps: float = FROSTER_TARGET_FPS,
    ):
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if out_of_bounds not in OUT_OF_BOUNDS:
            raise ValueError(f"out_of_bounds must be one of {OUT_OF_BOUNDS}, got {out_of_bounds!r}")
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be positive, got {frame_stride}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"sampling protocol must be one of {tuple(PROTOCOLS)}, got {protocol!r}")
        if sampling not in PROTOCOLS[protocol]:
            raise ValueError(
                f"the {protocol!r} sampling protocol defines {' and '.join(PROTOCOLS[protocol])} sampling only, "
                f"not {sampling!r}"
            )
        self.num_frames = num_frames
        self.sampling = sampling
        self.frame_stride = frame_stride
        self.out_of_bounds = out_of_bounds
        self.protocol = protocol
        self.target_fps = target_fps

    @property
    def needs_fps(self) -> bool:
        return self.protocol == "froster"

    def train(
        self, num_video_frames: int, generator: torch.Generator | None = None, fps: float | None = None
    ) -> torch.Tensor:
        n, t, stride, dense = num_video_frames, self.num_frames, self.frame_stride, self.sampling == "dense"
        if self.protocol == "evl":
            return evl_train_indices(n, t, stride, generator)
        if self.protocol == "xclip":
            return xclip_train_indices(n, t, generator)
        if self.protocol == "text4vis":
            return text4vis_train_indices(n, t, generator)
        if self.protocol == "aim":
            return aim_dense_train_indices(n, t, stride, generator) if dense else aim_uniform_train_indices(n, t, generator)
        if self.protocol == "froster":
            return froster_train_indices(n, t, stride, fps, generator, self.target_fps)
        if dense:
            return dense_train_indices(n, t, stride, self.out_of_bounds, generator)
        return segment_train_indices(n, t, generator)

    def test(
        self,
        num_video_frames: int,
        num_clips: int = 1,
        fps: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if num_clips < 1:
            raise ValueError(f"num_clips must be positive, got {num_clips}")
        n, t, stride, dense = num_video_frames, self.num_frames, self.frame_stride, self.sampling == "dense"
        if self.protocol == "evl":
            return evl_test_indices(n, t, stride, num_clips)
        if self.protocol == "xclip":
            return xclip_test_indices(n, t, num_clips, generator)
        if self.protocol == "text4vis":
            return text4vis_test_indices(n, t, num_clips)
        if self.protocol == "aim":
            return aim_dense_test_indices(n, t, stride, num_clips) if dense else aim_uniform_test_indices(n, t, num_clips)
        if self.protocol == "froster":
            return froster_test_indices(n, t, stride, num_clips, fps, self.target_fps)
        if dense:
            return dense_test_indices(n, t, stride, num_clips, self.out_of_bounds)
        return segment_test_indices(n, t, num_clips)

    def __repr__(self) -> str:
        detail = f", frame_stride={self.frame_stride}" if self.sampling == "dense" else ""
        protocol = f", protocol={self.protocol!r}" if self.protocol != "clipvideo" else ""
        return f"FrameSampler(num_frames={self.num_frames}, sampling={self.sampling!r}{detail}{protocol})"
