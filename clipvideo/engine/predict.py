"""`clipvideo predict`: top-k labels for video files, sampling over the whole video.

A checkpoint brings its model, class names, data settings and test views (`--set data.X=..
test.Y=..` overrides them); `--backbone CLIP.pt --classes` gives the frozen-CLIP zero-shot
baseline with your own class names, no training needed. Views: the file's test views
(num_clips x num_crops) when it records them; otherwise, with segment sampling one clip of T
segments spans the video, and with dense sampling C clips of T frames every `frame_stride` are
spread evenly over it (C = enough to cover it, <= 10). `--num-clips` overrides C.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import data as video_data
from ..clip import CheckpointError
from . import checkpoint as ckpt
from .config import ConfigError, DataConfig, TestConfig, _floats_from_strings, from_dict, merge, parse_overrides
from .data import normalization
from .precision import autocast, resolve_precision

MAX_DENSE_CLIPS = 10


@dataclass
class Prediction:
    video: str
    top: list[dict]  # [{"label": name, "score": probability}], best first
    views: str  # e.g. "8 frames x 4 clips x 1 crop"
    num_views: int
    num_frames_in_video: int
    error: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Predictor:
    model: torch.nn.Module
    data: DataConfig
    class_names: list[str]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    num_clips: int | None = None  # views per video (None: enough clips to cover it)
    num_crops: int = 1  # 1 centre crop or 3 crops per clip


def parse_classes(classes) -> list[str]:
    """A list, a comma-separated string, or a class-name file."""
    if classes is None:
        return []
    if isinstance(classes, (list, tuple)):
        names = [str(c).strip() for c in classes]
    elif Path(classes).is_file():
        names = video_data.read_class_names(classes)
    else:
        names = [c.strip() for c in str(classes).split(",")]
    names = [n for n in names if n]
    if not names:
        raise ConfigError(f"--classes {classes!r}: no class names given")
    return names


def apply_overrides(data: DataConfig, test: TestConfig, overrides: list[str] | None):
    """`--set data.short_side=256 test.num_clips=3`: the user's word over the checkpoint's settings."""
    if not overrides:
        return data, test
    values = _floats_from_strings(parse_overrides(overrides))
    for section in values:
        if section not in ("data", "test"):
            raise ConfigError(f"--set {section}...: predict takes only data.* and test.* settings")
    data = from_dict(DataConfig, merge(dataclasses.asdict(data), values.get("data", {})), "--set data")
    test = from_dict(TestConfig, merge(dataclasses.asdict(test), values.get("test", {})), "--set test")
    return data, test

def class_texts(classes, model) -> list[str] | None:
    """A class file's "Name: description" entries for models that classify with descriptions (FROSTER)."""
    if getattr(model, "uses_descriptions", False) and isinstance(classes, (str, Path)) and Path(classes).is_file():
        from .data import read_class_texts

        return read_class_texts(DataConfig(class_names=str(classes)))
    return None


def load_predictor(checkpoint=None, classes=None, backbone=None, device="cpu", precision="auto",
                   num_frames: int = 8, heads: int | None = None, text_heads: int | None = None,
                   overrides: list[str] | None = None) -> Predictor:
    device = torch.device(device)
    names = parse_classes(classes)
    views = {}
    if checkpoint:
        payload = ckpt.read_checkpoint(checkpoint)
        model = ckpt.model_from_payload(payload, checkpoint)
        # The file's own data settings (every native model file records them; older ones may not).
        data, test = ckpt.stored_settings(payload, checkpoint)
        if "num_frames" not in ((payload.get("config") or {}).get("data") or {}):
            data.num_frames = getattr(model.config, "num_frames", data.num_frames)
        data, test = apply_overrides(data, test, overrides)
        if (payload.get("config") or {}).get("test") or overrides and any(o.startswith("test.") for o in overrides):
            views = {"num_clips": test.num_clips, "num_crops": test.num_crops}
        if names:
            if not getattr(model, "uses_text", False):
                raise ConfigError(
                    f"{checkpoint}: a {payload['method']} model classifies with a trained head and cannot take "
                    "--classes; use a text-based model (frozen, xclip, text4vis, froster) for zero-shot"
                )
            model.set_class_names(class_texts(classes, model) or names)
        names = list(model.class_names or [])
        if not names:
            raise CheckpointError(f"{checkpoint}: the checkpoint has no class names; pass --classes")
    elif backbone:
        if not names:
            raise ConfigError("zero-shot prediction with --backbone needs --classes \"a,b,c\" (or a class file)")
        from ..methods import frozen
        from ..methods.base import BackboneConfig

        config = frozen.Config(backbone=BackboneConfig(pretrained=str(backbone), heads=heads, text_heads=text_heads),
                               num_frames=num_frames, temporal="mean", classifier="text")
        model = frozen.build(config, len(names), names)
        resolution = model.clip.config.image_resolution
        data = DataConfig(num_frames=num_frames, sampling="segment", input_size=resolution,
                          short_side=round(resolution * 256 / 224))
        data, test = apply_overrides(data, TestConfig(), overrides)
        if overrides and any(o.startswith("test.") for o in overrides):
            views = {"num_clips": test.num_clips, "num_crops": test.num_crops}
    else:
        raise ConfigError("give --checkpoint CKPT, or --backbone CLIP.pt with --classes \"a,b,c\"")
    if views.get("num_crops", 1) not in (1, 3):
        raise ConfigError(f"test.num_crops: 1 (centre) or 3 (three crops), got {views['num_crops']}")
    model = model.to(device).eval()
    return Predictor(model, data, names, device, resolve_precision(precision, device, "--precision"), **views)


def clip_indices(num_frames_in_video: int, data: DataConfig, num_clips: int | None = None,
                 fps: float | None = None) -> list[list[int]]:
    """Frame indices (0-based) of each view's clip, spread over the whole video.

    Segment sampling: one clip of T segment centres spans the video. Dense sampling: enough
    clips of span (T - 1) * stride + 1 to cover it (at most 10), evenly spaced. Positions follow
    data.sampling_protocol (`fps`: the video's frame rate, for protocols that resample to one).
    """
    if num_clips is None:
        span = (data.num_frames - 1) * data.frame_stride + 1
        num_clips = 1 if data.sampling == "segment" else max(1, min(MAX_DENSE_CLIPS, math.ceil(num_frames_in_video / span)))
    sampler = video_data.FrameSampler(data.num_frames, data.sampling, data.frame_stride, data.out_of_bounds,
                                      data.sampling_protocol)
    return sampler.test(num_frames_in_video, num_clips, fps=fps).tolist()


@torch.no_grad()
def predict_video(predictor: Predictor, path: str, top_k: int = 5, num_clips: int | None = None,
                  on_frames=None) -> Prediction:
    """`on_frames(views, indices, frames)`, if given, sees the sampled frames: the clips' frame
    indices, the sorted unique indices and their decoded uint8 (F, H, W, 3) frames (`clipvideo serve`)."""
    data = predictor.data
    num_clips = num_clips or predictor.num_clips
    try:
        total = video_data.video_num_frames(str(path), backend=data.backend)
        if total <= 0:
            raise video_data.VideoDecodeError(str(path), "no frames")
        fps = video_data.video_fps(str(path), backend=data.backend) if data.sampling_protocol == "froster" else None
        views = clip_indices(total, data, num_clips, fps)
        mean, std = normalization(data)
        crop = "three" if predictor.num_crops == 3 else "center"
        transform = video_data.build_test_transform(size=data.input_size, short_side=data.short_side, crop=crop,
                                                    mean=mean, std=std)
        all_indices = sorted({i for clip in views for i in clip})
        decoded = video_data.decode_frames(str(path), all_indices, backend=data.backend)  # (F, H, W, 3)
        if on_frames is not None:
            on_frames(views, all_indices, decoded)
        position = {frame: row for row, frame in enumerate(all_indices)}
        clips = []
        for clip in views:
            frames = decoded[[position[i] for i in clip]].permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
            clips.append(transform(frames))
        batch = torch.stack(clips)  # (C, T, 3, h, w); one view per clip
        batch = batch.flatten(0, 1) if batch.dim() == 6 else batch  # three-crop transforms add an axis
    except video_data.VideoDecodeError as error:
        return Prediction(str(path), [], "", 0, 0, error=str(error))
    description = video_data.views_text(data.num_frames, len(views), predictor.num_crops)
    try:
        with autocast(predictor.device, predictor.precision):
            logits = predictor.model(batch.to(predictor.device))  # (V, K)
    except Exception as error:  # one line for this video; the other videos still run
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return Prediction(str(path), [], description, 0, total,
                          error=f"the model failed on this video ({description}, {tuple(batch.shape[-2:])} px): {first}")
    probabilities = logits.float().softmax(dim=-1).mean(dim=0)
    top = probabilities.topk(min(top_k, len(probabilities)))
    names = predictor.class_names
    return Prediction(
        str(path),
        [{"label": names[int(c)] if int(c) < len(names) else str(int(c)), "score": round(float(s), 6)}
         for s, c in zip(top.values, top.indices)],
        description,
        len(batch),
        total,
    )


def predict(videos, checkpoint=None, classes=None, backbone=None, top_k: int = 5, num_clips: int | None = None,
            device="cpu", precision="auto", **options):
    """Python API: a list of {"label", "score"} for one path, or a list of such lists."""
    predictor = load_predictor(checkpoint, classes, backbone, device, precision, **options)
    single = isinstance(videos, (str, Path))
    results = [predict_video(predictor, str(v), top_k, num_clips) for v in ([videos] if single else videos)]
    for result in results:
        if result.error:
            raise ValueError(result.error)
    tops = [r.top for r in results]
    return tops[0] if single else tops
