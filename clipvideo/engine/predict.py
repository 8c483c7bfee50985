"""`clipvideo predict`: top-k labels for video files, scored exactly as `clipvideo test` scores.

A checkpoint brings its model, class names and how the model is fed: the file's recorded `data:`
and `test:` over the model's own record (`input_config()`); `--set data.X=.. test.Y=..` overrides
them, `--num-clips` sets test.num_clips. Each video goes through the evaluation dataset (sampling,
decoding, transforms, views) and `evaluate.score_views` (test.aggregate), so predict gives the
same scores as `clipvideo test` on the same views. `--backbone CLIP.pt --classes` gives the
frozen-CLIP zero-shot baseline with your own class names, no training needed.
"""

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import data as video_data
from ..clip import CheckpointError
from . import checkpoint as ckpt
from .config import ConfigError, DataConfig, TestConfig, _floats_from_strings, from_dict, merge, parse_overrides
from .data import build_eval_dataset, read_class_vocabulary
from .evaluate import check_view_settings, score_views
from .fastpath import compile_or_explain, prepare_for_inference
from .precision import resolve_precision


@dataclass
class Prediction:
    video: str
    top: list[dict]  # [{"label": name, "score": probability}], best first
    views: str  # e.g. "8 frames x 4 clips x 1 crop" (the evaluation dataset's description)
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
    test: TestConfig = field(default_factory=TestConfig)  # views, view aggregation, test short side
    compile_seconds: float | None = None  # the first (compiling) call's time, when test.compile


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


def class_vocabulary(classes):
    """--classes as given to a model: a class file with its descriptions (FROSTER's JSON), or names."""
    if isinstance(classes, (str, Path)) and Path(classes).is_file():
        return read_class_vocabulary(classes)
    return parse_classes(classes)


def load_predictor(checkpoint=None, classes=None, backbone=None, device="cpu", precision="auto",
                   num_frames: int = 8, heads: int | None = None, text_heads: int | None = None,
                   overrides: list[str] | None = None) -> Predictor:
    device = torch.device(device)
    names = parse_classes(classes)
    if checkpoint:
        payload = ckpt.read_checkpoint(checkpoint)
        model = ckpt.model_from_payload(payload, checkpoint)
        data, test = apply_overrides(*ckpt.stored_settings(payload, checkpoint, model), overrides)
        if names:
            if not model.uses_text:
                raise ConfigError(
                    f"{checkpoint}: a {payload['method']} model classifies with a trained head and cannot take "
                    "--classes; use a text-based model (frozen, xclip, text4vis, froster) for zero-shot"
                )
            model.set_classes(class_vocabulary(classes))
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
        record = model.input_config()
        data, test = apply_overrides(from_dict(DataConfig, record["data"], "frozen input_config"),
                                     from_dict(TestConfig, record["test"], "frozen input_config"), overrides)
    else:
        raise ConfigError("give --checkpoint CKPT, or --backbone CLIP.pt with --classes \"a,b,c\"")
    if test.num_crops not in (1, 3):
        raise ConfigError(f"test.num_crops: 1 (centre) or 3 (three crops), got {test.num_crops}")
    check_view_settings(model, test.aggregate, test.views_per_batch)
    model = model.to(device).eval()
    # "auto" defers to the file's test.precision, so predict scores as `clipvideo test` does.
    precision = resolve_precision(test.precision if precision == "auto" else precision, device, "--precision")
    prepare_for_inference(model, precision, compile=test.compile, cast=test.cast_weights)
    predictor = Predictor(model, data, names, device, precision, test)
    if test.compile:
        views = test.num_clips * test.num_crops
        example = torch.zeros(views, data.num_frames, 3, data.input_size, data.input_size)
        predictor.compile_seconds = compile_or_explain(model, example, device, precision)
    return predictor


def video_dataset(path: str, data: DataConfig, test: TestConfig):
    """The `clipvideo test` dataset (MultiViewTestDataset) over one video file at `path`."""
    data = dataclasses.replace(data, root="", store="", tar_path=None, format="video", separator="\t",
                               multi_label=False, num_classes=None, class_names="", dummy=False)
    with tempfile.TemporaryDirectory(prefix="clipvideo-predict-") as folder:
        listing = Path(folder) / "video.txt"
        listing.write_text(f"{Path(path).absolute()}\t0\n")
        return build_eval_dataset(data, test, list_file=str(listing), for_test=True)


@torch.no_grad()
def predict_video(predictor: Predictor, path: str, top_k: int = 5, num_clips: int | None = None,
                  on_frames=None) -> Prediction:
    """`on_frames(views, indices, frames)`, if given, sees the sampled frames: the clips' frame
    indices, the sorted unique indices and their decoded uint8 (F, H, W, 3) frames (`clipvideo serve`)."""
    test = dataclasses.replace(predictor.test, num_clips=num_clips) if num_clips else predictor.test
    if "\t" in str(path) or "\n" in str(path):
        return Prediction(str(path), [], "", 0, 0, error=f"{path!r}: a file name with a tab or new line cannot be read")
    dataset = video_dataset(str(path), predictor.data, test)
    try:
        total, indices, frames = dataset.sample(0)  # (C, T) indices, (C, T, 3, H, W) uint8
        views = dataset.views(frames)  # (V, T, 3, h, w)
    except (video_data.VideoDecodeError, OSError) as error:
        return Prediction(str(path), [], "", 0, 0, error=str(error))
    if total <= 0:
        return Prediction(str(path), [], "", 0, 0, error=str(video_data.VideoDecodeError(str(path), "no frames")))
    if on_frames is not None:
        clips = indices.tolist()
        unique, first = _first_occurrences(indices.flatten())
        on_frames(clips, unique, frames.flatten(0, 1)[first].permute(0, 2, 3, 1))
    description = dataset.describe()
    try:
        scores = score_views(predictor.model, views[None], predictor.device, predictor.precision, test.aggregate,
                             test.views_per_batch)[0]  # (K,)
    except Exception as error:  # one line for this video; the other videos still run
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return Prediction(str(path), [], description, 0, total,
                          error=f"the model failed on this video ({description}, {tuple(views.shape[-2:])} px): {first_line}")
    top = scores.topk(min(top_k, len(scores)))
    names = predictor.class_names
    return Prediction(
        str(path),
        [{"label": names[int(c)] if int(c) < len(names) else str(int(c)), "score": round(float(s), 6)}
         for s, c in zip(top.values, top.indices)],
        description,
        len(views),
        total,
    )


def _first_occurrences(indices: torch.Tensor) -> tuple[list[int], list[int]]:
    """Sorted unique frame indices and the position of each one's first occurrence."""
    first: dict[int, int] = {}
    for position, index in enumerate(indices.tolist()):
        first.setdefault(index, position)
    unique = sorted(first)
    return unique, [first[i] for i in unique]


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
