"""`clipvideo predict VIDEO --timeline`: when each action happens in a long video.

Windows of `window` seconds every `stride` seconds cover the video (the last one ends at the
video's end, so the tail is never dropped). Each window is sampled as the model was trained: the
model file's frames, sampling, protocol, size and normalisation, through the data pipeline's
FrameSampler (one test view per window, as if the window were a trimmed clip) and test transform.

Decoding is streamed: windows are decoded `batch_size` at a time and dropped after the model has
seen them, so memory stays flat with the video's length (benchmarks/timeline_memory.py).

Per-window class probabilities can be smoothed over `smooth` neighbouring windows (a moving
average); each window then takes its best class, runs no longer than `min_segment` (default: one
window) go to their neighbours, and runs of windows with the same class merge into segments. A window stands for the time around its centre, so a boundary falls halfway
between the centres of the last window of one class and the first of the next: a boundary is
found within one stride when the windows on either side of it are labelled by their majority.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import data as video_data
from .config import ConfigError
from .data import normalization
from .precision import autocast


@dataclass
class Segment:
    start: float  # seconds
    end: float
    label: str
    score: float  # mean probability of `label` over the segment's windows

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Timeline:
    video: str
    duration: float  # seconds
    fps: float
    num_frames_in_video: int
    window: float  # seconds, as used (whole frames)
    stride: float
    class_names: list[str]
    windows: list[dict] = field(default_factory=list)  # {"start", "end", "top": [{"label", "score"}]}
    segments: list[Segment] = field(default_factory=list)
    probabilities: torch.Tensor | None = None  # (num_windows, K), after smoothing
    error: str | None = None

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("probabilities", "segments", "class_names")}
        out["segments"] = [s.to_dict() for s in self.segments]
        return out


def window_starts(num_frames: int, window_frames: int, stride_frames: int) -> list[int]:
    """First frame of every window: every `stride_frames`, plus one ending at the last frame."""
    starts = list(range(0, num_frames - window_frames + 1, stride_frames))
    if starts[-1] + window_frames < num_frames:
        starts.append(num_frames - window_frames)
    return starts


def smooth_probabilities(probabilities: torch.Tensor, smooth: int) -> torch.Tensor:
    """Moving average over `smooth` neighbouring windows (odd; the ends average what exists)."""
    if smooth <= 1 or len(probabilities) < 2:
        return probabilities
    kernel = torch.ones(1, 1, smooth, dtype=probabilities.dtype)
    columns = probabilities.t().unsqueeze(1)  # (K, 1, N)
    total = torch.nn.functional.conv1d(columns, kernel, padding=smooth // 2)
    count = torch.nn.functional.conv1d(torch.ones_like(columns[:1]), kernel, padding=smooth // 2)
    return (total / count).squeeze(1).t()


def window_labels(probabilities: torch.Tensor, centres: list[float], duration: float,
                  min_segment: float = 0.0) -> list[int]:
    """Each window's best class, then runs no longer than `min_segment` seconds given to their
    neighbours (the first half of the run to the run before, the rest to the run after), shortest
    (then least confident) first. A window that straddles two actions often looks like neither; the windows that straddle
    one boundary span at most one window length, so with `min_segment` = the window such a blip
    goes, while an action of more than twice the window keeps windows of its own."""
    labels = probabilities.argmax(dim=1).tolist()
    while True:
        runs = _runs(labels)
        if len(runs) < 2:
            return labels
        spans = [_span(centres, duration, first, end) for first, end in runs]
        short = [i for i, (start, stop) in enumerate(spans) if stop - start <= min_segment + 1e-9]
        if not short:
            return labels
        # the shortest first; among equally short ones the least confident
        i = min(short, key=lambda i: (round(spans[i][1] - spans[i][0], 6),
                                      float(probabilities[runs[i][0]:runs[i][1], labels[runs[i][0]]].mean())))
        first, end = runs[i]
        middle = first + (end - first) // 2 if 0 < i < len(runs) - 1 else (end if i > 0 else first)
        for w in range(first, end):
            labels[w] = labels[first - 1] if w < middle else labels[end]


def _runs(labels: list[int]) -> list[tuple[int, int]]:
    """[(first, end)] of runs of equal labels (end exclusive)."""
    runs, first = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[first]:
            runs.append((first, i))
            first = i
    return runs


def _span(centres: list[float], duration: float, first: int, end: int) -> tuple[float, float]:
    """Seconds covered by windows first..end-1: boundaries halfway between neighbouring centres."""
    start = 0.0 if first == 0 else (centres[first - 1] + centres[first]) / 2
    stop = duration if end == len(centres) else (centres[end - 1] + centres[end]) / 2
    return start, stop


def merge_segments(centres: list[float], probabilities: torch.Tensor, class_names: list[str],
                   duration: float, min_segment: float = 0.0) -> list[Segment]:
    """Runs of windows with the same class -> segments covering [0, duration] (see `window_labels`)."""
    labels = window_labels(probabilities, centres, duration, min_segment)
    segments = []
    for first, end in _runs(labels):
        start, stop = _span(centres, duration, first, end)
        label = labels[first]
        score = float(probabilities[first:end, label].mean())
        segments.append(Segment(round(start, 3), round(stop, 3), _name(class_names, label), round(score, 6)))
    return segments


def _name(class_names: list[str], index: int) -> str:
    return class_names[index] if index < len(class_names) else str(index)


def plan_windows(num_frames: int, fps: float, window: float, stride: float, path: str) -> tuple[int, int]:
    """(window_frames, stride_frames), or a one-line error when they do not fit the video."""
    if window <= 0 or stride <= 0:
        raise ConfigError(f"--window and --stride must be > 0 seconds, got {window} and {stride}")
    window_frames = max(1, round(window * fps))
    stride_frames = max(1, round(stride * fps))
    if window_frames > num_frames:
        raise ConfigError(f"{path}: --window {window:g} s is longer than the video ({num_frames / fps:.2f} s); "
                          "give a shorter --window")
    return window_frames, stride_frames


@dataclass
class WindowPlan:
    """Where the windows of one video lie, in frames, and how each is sampled."""

    reader: object  # the open VideoReader
    fps: float
    num_frames: int
    window_frames: int
    stride_frames: int
    starts: list[int]
    offsets: list[int]  # frame offsets of the model's clip inside a window

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def bounds(self, start: int) -> tuple[float, float]:
        return round(start / self.fps, 3), round((start + self.window_frames) / self.fps, 3)


def plan_video(data, path: str, window: float, stride: float) -> WindowPlan:
    """Open `path` and place its windows; each is sampled by the data pipeline's FrameSampler as a
    trimmed clip of `window` seconds would be (one test view)."""
    reader = video_data.open_video(str(path), backend=data.backend)
    num_frames = reader.num_frames
    if num_frames <= 0:
        raise video_data.VideoDecodeError(str(path), "no frames")
    fps = reader.fps or 30.0  # rawframes declare no rate: the FROSTER protocol's default too
    window_frames, stride_frames = plan_windows(num_frames, fps, window, stride, str(path))
    sampler = video_data.FrameSampler(data.num_frames, data.sampling, data.frame_stride, data.out_of_bounds,
                                      data.sampling_protocol)
    # Every window has the same length, so its frames are one offset pattern shifted along.
    offsets = sampler.test(window_frames, 1, fps=fps if sampler.needs_fps else None)[0].tolist()
    return WindowPlan(reader, fps, num_frames, window_frames, stride_frames,
                      window_starts(num_frames, window_frames, stride_frames), offsets)


def window_batches(plan: WindowPlan, data, batch_size: int = 8, progress: bool = False, name: str = ""):
    """Yield (starts, clips (W, T, 3, h, w) normalised) for `batch_size` windows at a time. Only
    one batch of frames is ever decoded and held: memory does not grow with the video."""
    from tqdm import tqdm

    mean, std = normalization(data)
    transform = video_data.build_test_transform(size=data.input_size, short_side=data.short_side, crop="center",
                                                mean=mean, std=std)
    with tqdm(total=len(plan.starts), desc=name, unit="window", disable=not progress, leave=False) as bar:
        for first in range(0, len(plan.starts), batch_size):
            chunk = plan.starts[first:first + batch_size]
            wanted = [start + offset for start in chunk for offset in plan.offsets]
            frames = plan.reader.get_frames(wanted).permute(0, 3, 1, 2)  # (W*T, 3, H, W) uint8
            yield chunk, torch.stack([transform(clip) for clip in frames.split(len(plan.offsets))])
            bar.update(len(chunk))


@torch.no_grad()
def video_timeline(predictor, path: str, window: float = 2.0, stride: float = 1.0, top_k: int = 5,
                   smooth: int = 1, batch_size: int = 8, progress: bool = False,
                   min_segment: float | None = None) -> Timeline:
    """Sliding-window predictions and merged segments for one video (see the module docstring).
    `min_segment`: seconds; runs no longer go to their neighbours (default: the window length)."""
    if smooth < 1 or smooth % 2 == 0:
        raise ConfigError(f"--smooth must be an odd number of windows >= 1, got {smooth}")
    plan = plan_video(predictor.data, path, window, stride)
    rows = []
    for _, clips in window_batches(plan, predictor.data, batch_size, progress, Path(path).name):
        with autocast(predictor.device, predictor.precision):
            logits = predictor.model(clips.to(predictor.device))
        rows.append(logits.float().softmax(dim=-1).cpu())
    probabilities = smooth_probabilities(torch.cat(rows), smooth)
    centres = [(start + plan.window_frames / 2) / plan.fps for start in plan.starts]
    names = predictor.class_names
    windows = []
    for start, row in zip(plan.starts, probabilities):
        top = row.topk(min(top_k, len(row)))
        begin, end = plan.bounds(start)
        windows.append({"start": begin, "end": end,
                        "top": [{"label": _name(names, int(c)), "score": round(float(s), 6)}
                                for s, c in zip(top.values, top.indices)]})
    return Timeline(str(path), round(plan.duration, 3), plan.fps, plan.num_frames, plan.window_frames / plan.fps,
                    plan.stride_frames / plan.fps, list(names), windows,
                    merge_segments(centres, probabilities, names, plan.duration,
                                   plan.window_frames / plan.fps if min_segment is None else min_segment),
                    probabilities)


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def format_table(timeline: Timeline) -> str:
    lines = [f"{timeline.video}  ({timeline.duration:.1f} s, {len(timeline.windows)} windows of "
             f"{timeline.window:g} s every {timeline.stride:g} s)"]
    width = max([len(s.label) for s in timeline.segments] + [5])
    lines.append(f"  {'start':>9}  {'end':>9}  {'label':<{width}}  score")
    for s in timeline.segments:
        lines.append(f"  {_clock(s.start):>9}  {_clock(s.end):>9}  {s.label:<{width}}  {s.score:.4f}")
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f"{int(minutes)}:{seconds:06.3f}" if minutes < 60 else f"{int(minutes // 60)}:{int(minutes % 60):02d}:{seconds:06.3f}"


def segments_csv(timelines: list[Timeline]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["video", "start", "end", "label", "score"])
    for timeline in timelines:
        for s in timeline.segments:
            writer.writerow([timeline.video, s.start, s.end, s.label, s.score])
    return out.getvalue()


def plot_timeline(timeline: Timeline, path: str | Path, max_classes: int = 20) -> Path:
    """A PNG: class probabilities against time (the classes that ever win, up to `max_classes`),
    with the merged segments as a coloured bar above."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probabilities = timeline.probabilities
    shown = sorted(set(probabilities.argmax(dim=1).tolist()) |
                   set(probabilities.max(dim=0).values.topk(min(max_classes, probabilities.shape[1])).indices.tolist()))
    shown = shown[:max_classes]
    labels = [_name(timeline.class_names, c) for c in shown]
    starts = [w["start"] for w in timeline.windows]
    height = 1.5 + 0.3 * len(shown)
    fig, (bar, heat) = plt.subplots(2, 1, figsize=(10, height), sharex=True,
                                    gridspec_kw={"height_ratios": [0.6, len(shown)]})
    colours = {label: plt.cm.tab20(i % 20) for i, label in enumerate(labels)}
    for s in timeline.segments:
        bar.barh(0, s.end - s.start, left=s.start, color=colours.get(s.label, "grey"), edgecolor="white")
        if s.end - s.start > timeline.duration / 40:
            bar.text((s.start + s.end) / 2, 0, s.label, ha="center", va="center", fontsize=7, clip_on=True)
    bar.set_yticks([])
    bar.set_title(Path(timeline.video).name)
    edges = starts + [timeline.duration]
    heat.pcolormesh(edges, range(len(shown) + 1), probabilities[:, shown].t().numpy(), cmap="viridis",
                    vmin=0, vmax=1, shading="flat")
    heat.set_yticks([i + 0.5 for i in range(len(shown))], labels, fontsize=7)
    heat.set_xlabel("seconds")
    heat.set_xlim(0, timeline.duration)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def png_path(png: str, video: str, count: int) -> Path:
    """One PNG per video: the name as given for one video, NAME.<video stem>.png for several."""
    png = Path(png)
    return png if count == 1 else png.with_name(f"{png.stem}.{Path(video).stem}{png.suffix or '.png'}")


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def timeline(video, checkpoint=None, classes=None, backbone=None, window: float = 2.0, stride: float = 1.0,
             top_k: int = 5, smooth: int = 1, device="cpu", precision="auto", progress: bool = False,
             min_segment: float | None = None, **options) -> dict:
    """Python API (`clipvideo.timeline`): {"video", "duration", "windows": [...], "segments":
    [{"start", "end", "label", "score"}], ...} for one video."""
    from .predict import load_predictor

    predictor = load_predictor(checkpoint, classes, backbone, device, precision, **options)
    return video_timeline(predictor, str(video), window, stride, top_k, smooth, progress=progress,
                          min_segment=min_segment).to_dict()


def run_cli(args, predictor) -> int:
    """`clipvideo predict ... --timeline`: a segment table, --json or --csv on stdout, --png files."""
    import json
    import sys

    results = []
    for video in args.videos:
        try:
            results.append(video_timeline(predictor, video, args.window, args.stride, args.top_k, args.smooth,
                                          progress=sys.stderr.isatty(), min_segment=args.min_segment))
        except video_data.VideoDecodeError as error:
            results.append(Timeline(str(video), 0.0, 0.0, 0, args.window, args.stride, [], error=str(error)))
    good = [t for t in results if not t.error]
    if args.png:
        for t in good:
            plot_timeline(t, png_path(args.png, t.video, len(args.videos)))
    if args.json:
        print(json.dumps([t.to_dict() for t in results], indent=2))
    elif args.csv:
        sys.stdout.write(segments_csv(good))
    else:
        for t in results:
            print(f"{t.video}: ERROR {t.error}" if t.error else format_table(t))
    return 1 if len(good) < len(results) else 0

