"""Synthetic videos written as real H.264 mp4 files, for tests, the demo and benchmarks.

``make_motion_dataset`` renders shapes moving or rotating over a textured background. Several class
pairs differ *only in frame order*: every "moving left" video is a time-reversed draw of the
"moving right" process (likewise up/down and clockwise/counter-clockwise), so the set of frames
has the same distribution in both classes and only a model that looks at frame order can separate
them. The "still ..." classes differ in appearance and are solvable from a single frame.

``INDEPENDENT_CLASSES`` is a second, separately drawn frame-order set (a disc moving up or down, a
ring growing or shrinking, a triangle turning clockwise or counter-clockwise), for checking that a
result on the first set is not a property of its renderer. Pass it as ``classes``.

``write_benchmark_video`` makes the 10 s, 340x256, 30 fps clips used to measure decoding speed.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import av
import numpy as np
import torch
import torch.nn.functional as F
from av.video.reformatter import VideoReformatter

# name -> how it is rendered. A class whose name is in TEMPORAL_PAIRS as the second member is the
# first member's process played backwards.
MOTION_CLASSES = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "rotating clockwise",
    "rotating counter-clockwise",
    "still red square",
    "still green circle",
    "still blue triangle",
)
TEMPORAL_PAIRS = (
    ("moving right", "moving left"),
    ("moving down", "moving up"),
    ("rotating clockwise", "rotating counter-clockwise"),
)
# The independent set: three pairs, each second member the first one's process played backwards.
INDEPENDENT_CLASSES = (
    "disc moving up",
    "disc moving down",
    "ring growing",
    "ring shrinking",
    "shape turning clockwise",
    "shape turning counter-clockwise",
)
INDEPENDENT_PAIRS = (
    ("disc moving down", "disc moving up"),
    ("ring growing", "ring shrinking"),
    ("shape turning clockwise", "shape turning counter-clockwise"),
)
ALL_CLASSES = MOTION_CLASSES + INDEPENDENT_CLASSES
ALL_PAIRS = TEMPORAL_PAIRS + INDEPENDENT_PAIRS


@dataclass
class MotionDataset:
    """What ``make_motion_dataset`` wrote. Paths in the lists are relative to ``root``."""

    root: str
    train_list: str
    val_list: str
    class_names_file: str
    class_names: list[str]
    # (label a, label b) pairs that differ only in frame order
    temporal_pairs: list[tuple[int, int]] = field(default_factory=list)
    static_classes: list[int] = field(default_factory=list)
    num_frames: int = 0
    size: tuple[int, int] = (0, 0)  # (W, H)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: int = 30,
    crf: int = 23,
    gop: int | None = None,
    bframes: int | None = None,
    preset: str | None = None,
    faststart: bool = False,
) -> None:
    """Encode uint8 RGB frames (H, W, 3) as H.264 (yuv420p) in an mp4 with libx264.

    ``gop=None`` keeps x264's default keyframe placement (every 250 frames plus scene cuts);
    a number fixes the GOP and turns scene-cut keyframes off. ``faststart`` puts the index first.
    """
    options = {"crf": str(crf)}
    if gop is not None:
        options.update(g=str(gop), keyint_min=str(gop), sc_threshold="0")
    if bframes is not None:
        options["bf"] = str(bframes)
    if preset is not None:
        options["preset"] = preset
    container_options = {"movflags": "+faststart"} if faststart else {}
    container = av.open(os.fspath(path), mode="w", format="mp4", options=container_options)
    to_yuv = VideoReformatter()
    try:
        stream = None
        for number, frame in enumerate(frames):
            if stream is None:
                height, width = frame.shape[:2]
                if width % 2 or height % 2:
                    raise ValueError(f"yuv420p needs even frame sizes, got {width}x{height}")
                stream = container.add_stream("libx264", rate=fps, options=options)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.codec_context.thread_count = 1  # many small videos: threads would only add overhead
            yuv = to_yuv.reformat(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"),
                                  format="yuv420p", threads=1)
            yuv.pts = number  # in the stream's 1/fps time base
            yuv.time_base = Fraction(1, fps)
            for packet in stream.encode(yuv):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    finally:
        container.close()


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _texture(rng: np.random.Generator, height: int, width: int, low: float = 60, high: float = 190) -> np.ndarray:
    """Smooth colour noise at a few scales, uint8 (H, W, 3)."""
    image = torch.zeros(1, 3, height, width)
    for cells, weight in ((4, 0.6), (12, 0.3), (32, 0.1)):
        coarse = torch.from_numpy(rng.random((1, 3, cells, cells), dtype=np.float32))
        image += weight * F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    image = low + (high - low) * image[0].permute(1, 2, 0)
    return image.clamp(0, 255).to(torch.uint8).numpy()


def _paint(image: np.ndarray, alpha: np.ndarray, colour) -> None:
    """Blend a colour into ``image`` in place with coverage ``alpha`` (H, W) in [0, 1]."""
    alpha = alpha[..., None]
    image[:] = (image * (1 - alpha) + np.asarray(colour, np.float32) * alpha).astype(np.uint8)


def _disc(xx, yy, cx, cy, radius):
    # 1-pixel soft edge so motion is smooth at sub-pixel speeds
    return np.clip(radius - np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) + 0.5, 0, 1)


def _segment(xx, yy, x0, y0, x1, y1, half_width):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    distance = np.sqrt((xx - x0 - t * dx) ** 2 + (yy - y0 - t * dy) ** 2)
    return np.clip(half_width - distance + 0.5, 0, 1)


def _static_shape(name: str, xx, yy, cx, cy, size):
    if "square" in name:
        return np.clip(size - np.maximum(abs(xx - cx), abs(yy - cy)) + 0.5, 0, 1), (220, 40, 40)
    if "circle" in name:
        return _disc(xx, yy, cx, cy, size), (40, 200, 60)
    # upward triangle: inside three half-planes
    inside = (yy <= cy + size * 0.7) & (abs(xx - cx) * 1.7 <= (yy - (cy - size)))
    return inside.astype(np.float32), (40, 80, 230)


def render_motion_clip(name: str, num_frames: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (T, H, W, 3) frames of one video of class ``name`` (one of ``ALL_CLASSES``)."""
    reversed_of = {second: first for first, second in ALL_PAIRS}
    canonical = reversed_of.get(name, name)
    background = _texture(rng, height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    short = min(width, height)
    colour = rng.integers(200, 256, size=3)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    size = short * rng.uniform(0.08, 0.12)
    if canonical.startswith("moving"):
        horizontal = canonical == "moving right"
        length = width if horizontal else height
        # travel 40-60% of the frame along the axis, at a random position across it
        travel = length * rng.uniform(0.4, 0.6)
        start = rng.uniform(size, length - size - travel)
        across = rng.uniform(size, (height if horizontal else width) - size)
        for t in range(num_frames):
            along = start + travel * t / max(num_frames - 1, 1)
            cx, cy = (along, across) if horizontal else (across, along)
            frames[t] = background
            _paint_disc(frames[t], cx, cy, size, colour)
    elif canonical.startswith("rotating"):
        # a clock hand: a bar from the centre with a knob at its tip, so direction is visible
        cx, cy = rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height
        arm = short * rng.uniform(0.22, 0.3)
        angle, step = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(8, 14))
        for t in range(num_frames):
            theta = angle + step * t  # clockwise on screen, since image y points down
            tip_x, tip_y = cx + arm * math.sin(theta), cy - arm * math.cos(theta)
            frames[t] = background
            _paint(frames[t], np.maximum(_segment(xx, yy, cx, cy, tip_x, tip_y, short * 0.035),
                                         _disc(xx, yy, tip_x, tip_y, short * 0.07)), colour)
    elif canonical.startswith("still"):
        cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
        alpha, shape_colour = _static_shape(canonical, xx, yy, cx, cy, short * rng.uniform(0.15, 0.22))
        frames[:] = background
        _paint(frames[0], alpha, shape_colour)
        frames[1:] = frames[0]
    elif canonical in INDEPENDENT_CLASSES:
        _render_independent(canonical, frames, rng)
    else:
        raise ValueError(f"unknown motion class {name!r}; choose from {ALL_CLASSES}")
    return frames[::-1].copy() if canonical != name else frames


def _render_independent(name: str, frames: np.ndarray, rng: np.random.Generator) -> None:
    """Fill ``frames`` (T, H, W, 3) with the forward process of an ``INDEPENDENT_CLASSES`` name.

    Drawn apart from ``render_motion_clip``'s classes: a two-tone background instead of the texture,
    and each state (height, radius, angle) sweeps its range linearly over the clip.
    """
    num_frames, height, width = frames.shape[:3]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    short = min(width, height)
    # a vertical gradient between two dull colours plus fine grain (stays below 191, as the texture)
    top, bottom = rng.uniform(40, 150, size=3), rng.uniform(40, 150, size=3)
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    background = top + (bottom - top) * ramp + rng.normal(0, 6, size=(height, width, 3))
    background = np.clip(background, 0, 190).astype(np.uint8)
    colour = rng.integers(200, 256, size=3)
    progress = np.linspace(0, 1, num_frames)
    if name == "disc moving down":
        radius = short * rng.uniform(0.07, 0.1)
        travel = height * rng.uniform(0.4, 0.6)
        start = rng.uniform(radius, height - radius - travel)
        cx = rng.uniform(radius, width - radius)
        for t in range(num_frames):
            frames[t] = background
            _paint_disc(frames[t], cx, start + travel * progress[t], radius, colour)
    elif name == "ring growing":
        cx, cy = rng.uniform(0.4, 0.6) * width, rng.uniform(0.4, 0.6) * height
        small, large = short * rng.uniform(0.06, 0.1), short * rng.uniform(0.28, 0.34)
        thickness = short * 0.04
        for t in range(num_frames):
            radius = small + (large - small) * progress[t]
            distance = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
            frames[t] = background
            _paint(frames[t], np.clip(thickness - abs(distance - radius) + 0.5, 0, 1), colour)
    else:  # "shape turning clockwise": a thin isosceles triangle spinning about its centre
        cx, cy = rng.uniform(0.4, 0.6) * width, rng.uniform(0.4, 0.6) * height
        length = short * rng.uniform(0.22, 0.28)
        angle, sweep = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(150, 250))
        for t in range(num_frames):
            theta = angle + sweep * progress[t]  # clockwise on screen, since image y points down
            apex = (cx + length * math.sin(theta), cy - length * math.cos(theta))
            base = [(cx + 0.5 * length * math.sin(theta + side), cy - 0.5 * length * math.cos(theta + side))
                    for side in (math.radians(150), math.radians(-150))]
            frames[t] = background
            _paint(frames[t], _triangle(xx, yy, apex, *base), colour)


def _triangle(xx, yy, a, b, c):
    """Coverage (H, W) of the triangle abc (either winding), with a 1-pixel soft edge."""
    edges = []
    sign = np.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
    for (x0, y0), (x1, y1) in ((a, b), (b, c), (c, a)):
        # signed distance to the edge's line, positive inside
        edges.append(sign * ((x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0)) / math.hypot(x1 - x0, y1 - y0))
    return np.clip(np.minimum.reduce(edges) + 0.5, 0, 1)


def _write_one(job) -> None:
    path, name, num_frames, width, height, fps, seed_key, gop = job
    rng = np.random.default_rng(seed_key)
    write_video(path, render_motion_clip(name, num_frames, width, height, rng), fps=fps, crf=20, gop=gop)


def make_motion_dataset(
    root: str | os.PathLike,
    num_videos_per_class: int = 8,
    num_val_per_class: int | None = None,
    num_frames: int = 16,
    size: tuple[int, int] = (64, 64),
    fps: int = 10,
    seed: int = 0,
    classes: Sequence[str] = MOTION_CLASSES,
    gop: int | None = None,
) -> MotionDataset:
    """Write ``train.txt``/``val.txt`` (``<relative path> <label>``), ``classes.csv`` (``id,name``)
    and the videos under ``root/videos/<class>/``.

    ``classes``: names from ``MOTION_CLASSES`` (the default) or ``INDEPENDENT_CLASSES``.
    ``num_videos_per_class`` training videos per class and ``num_val_per_class`` validation
    videos (default: a quarter as many, at least 1). ``size`` is (W, H), both even. The frames
    of each video depend only on (seed, class, number); x264 occasionally encodes identical input
    a little differently from run to run. About 20-30 ms per 24-frame 96x96 video on one core.
    """
    root = os.fspath(root)
    width, height = size
    unknown = [name for name in classes if name not in ALL_CLASSES]
    if unknown:
        raise ValueError(f"unknown motion classes {unknown}; choose from {ALL_CLASSES}")
    num_val = num_val_per_class if num_val_per_class is not None else max(1, num_videos_per_class // 4)
    jobs, lines = [], {"train": [], "val": []}
    for label, name in enumerate(classes):
        slug = name.replace(" ", "_")
        os.makedirs(os.path.join(root, "videos", slug), exist_ok=True)
        for number in range(num_videos_per_class + num_val):
            relative = f"videos/{slug}/{slug}_{number:04d}.mp4"
            split = "train" if number < num_videos_per_class else "val"
            lines[split].append(f"{relative} {label}")
            seed_key = [seed, ALL_CLASSES.index(name), number]
            jobs.append((os.path.join(root, relative), name, num_frames, width, height, fps, seed_key, gop))
    for job in jobs:
        _write_one(job)

    paths = {split: os.path.join(root, f"{split}.txt") for split in ("train", "val")}
    for split, path in paths.items():
        with open(path, "w") as f:
            f.write("\n".join(lines[split]) + "\n")
    class_file = os.path.join(root, "classes.csv")
    with open(class_file, "w") as f:
        f.write("id,name\n" + "".join(f"{i},{name}\n" for i, name in enumerate(classes)))
    label_of = {name: i for i, name in enumerate(classes)}
    return MotionDataset(
        root=root,
        train_list=paths["train"],
        val_list=paths["val"],
        class_names_file=class_file,
        class_names=list(classes),
        temporal_pairs=[(label_of[a], label_of[b]) for a, b in ALL_PAIRS if a in label_of and b in label_of],
        static_classes=[label_of[name] for name in classes if name.startswith("still")],
        num_frames=num_frames,
        size=(width, height),
    )


def write_benchmark_video(
    path: str | os.PathLike,
    seconds: float = 10.0,
    size: tuple[int, int] = (340, 256),
    fps: int = 30,
    gop: int | None = None,
    seed: int = 0,
    bframes: int | None = None,
) -> None:
    """A panning multi-scale texture with moving discs and light noise (x264 defaults, CRF 23), the
    kind of clip the decoding numbers in the docs refer to. ``size`` is (W, H). Every frame differs
    from the others, which makes it a good reference for frame-exact decoding tests."""
    width, height = size
    rng = np.random.default_rng(seed)
    texture = _texture(rng, 2 * height, 2 * width, low=20, high=235).astype(np.int16)
    # fine grain baked into the texture, so panning costs real bits (about 0.5 Mbit/s in total)
    texture = np.clip(texture + rng.integers(-24, 25, size=texture.shape), 0, 255).astype(np.uint8)
    discs = [(rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-3, 3), rng.uniform(-2, 2),
              rng.uniform(8, 24), rng.integers(0, 256, 3)) for _ in range(4)]

    def frames():
        for t in range(int(round(seconds * fps))):
            x0, y0 = int(t * 1.5) % width, int(t * 0.7) % height
            image = texture[y0:y0 + height, x0:x0 + width].astype(np.int16)
            image += rng.integers(-6, 7, size=image.shape, dtype=np.int16)
            image = np.clip(image, 0, 255).astype(np.uint8)
            for cx, cy, vx, vy, radius, colour in discs:
                _paint_disc(image, (cx + vx * t) % width, (cy + vy * t) % height, radius, colour)
            yield image

    write_video(path, frames(), fps=fps, crf=23, gop=gop, bframes=bframes)


def _paint_disc(image: np.ndarray, cx: float, cy: float, radius: float, colour) -> None:
    """Draw a soft-edged disc, touching only its bounding box."""
    height, width = image.shape[:2]
    x0, x1 = max(int(cx - radius - 1), 0), min(int(cx + radius + 2), width)
    y0, y1 = max(int(cy - radius - 1), 0), min(int(cy + radius + 2), height)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    _paint(image[y0:y1, x0:x1], _disc(xx, yy, cx, cy, radius), colour)
