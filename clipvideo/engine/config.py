"""Typed run configuration: dataclasses are the schema, YAML recipes and --set overrides fill them.

A recipe lists only what differs from the defaults below. Unknown keys and wrong types are
errors that name the file and key (and suggest the closest valid key). The resolved config is
saved as `config.yaml` in the run directory and inside every checkpoint.
"""

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad configuration; the message is one line naming the source and the key."""


@dataclass
class DataConfig:
    root: str = ""  # folder the paths in the lists are relative to
    store: str = ""  # a folder written by `clipvideo prepare`: the listed videos are read from it instead of `root`
    train_list: str = ""  # "<path> <label>" lines (or "<dir> <num_frames> <label>" for rawframes)
    val_list: str = ""  # list used by evaluation (and by `clipvideo test`)
    class_names: str = ""  # id,name CSV, one name per line, or FROSTER's JSON; needed by text-based methods
    class_descriptions: str = ""  # FROSTER: descriptions matched to class_names by name (a shipped name such as "b2n_hmdb51_base", or a JSON)
    format: str = "video"  # "video" files or extracted "rawframes" folders
    separator: str | None = None  # list column separator; None = any whitespace
    filename_template: str = "img_{:05d}.jpg"  # rawframes file names
    start_index: int | None = None  # first frame number of rawframes (MMAction2 default 1)
    tar_path: str | None = None  # read videos from one uncompressed .tar instead of `root`
    backend: str = "pyav"  # video decoder: pyav | decord | torchcodec
    num_frames: int = 8  # T frames per clip
    sampling: str = "dense"  # "dense": T frames every frame_stride | "segment": TSN, one frame per segment
    sampling_protocol: str = "clipvideo"  # frame positions: clipvideo (docs/data.md) | evl | xclip | text4vis | aim | froster (each seed's own)
    frame_stride: int = 4  # dense sampling interval
    out_of_bounds: str = "clamp"  # videos shorter than a dense clip: "clamp" repeats the last frame, "loop" wraps
    index_cache_dir: str | None = None  # keep per-video keyframe indexes here (default: <output_dir>/keyframe_index)
    input_size: int = 224  # crop size fed to the model
    short_side: int = 256  # evaluation resize of the short side before cropping (validation; test unless test.short_side)
    train_short_side: list[int] = field(default_factory=list)  # train resize before the crop: [] none | [256] | [224, 256] random in range
    train_crop: str = "random_resized"  # random_resized (scale/ratio) | random (input_size crop at a random place) | multiscale (X-CLIP)
    scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # random-resized-crop area range
    flip: bool = True  # random horizontal flip; turn off for direction-sensitive data (SSv2, left/right)
    color_jitter: float = 0.0  # probability of colour jitter
    grayscale: float = 0.0  # probability of grayscale
    randaugment: bool = False  # RandAugment (applied alike to all frames)
    augment_on: str = "worker"  # worker: the whole train transform in the DataLoader workers | device: workers crop (uint8), flip/colour/RandAugment/normalisation/Mixup run batched where the model runs
    normalization: str = "clip"  # "clip" or "imagenet" mean/std
    mixup: float = 0.0  # Mixup alpha (0 = off)
    cutmix: float = 0.0  # CutMix alpha (0 = off)
    mix_prob: float = 1.0  # probability that a batch is mixed
    num_workers: int = 2  # DataLoader worker processes per training process
    dummy: bool = False  # random tensors instead of decoding (measures model speed alone)
    dummy_length: int = 64  # samples in the dummy dataset
    num_classes: int | None = None  # default: from the class-name file, else the largest label + 1
    multi_label: bool = False  # lists with several labels per line (ActivityNet): multi-hot targets, mAP in evaluation
    few_shot_repeat: bool = False  # `clipvideo fewshot`: repeat the K-shot list floor(N / (K x C)) times, N the full list (Text4Vis)
    val_fraction: float = 0.2  # class-folder dataset (data.root=FOLDER/<class>/<videos>, no lists): share held out per class
    split_seed: int = 0  # class-folder dataset: seed of the stratified train/val split


@dataclass
class TrainConfig:
    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimiser steps (step-based recipes such as EVL)
    max_minutes: float | None = None  # wall-time budget: stop after the epoch that passes it (`clipvideo compare`)
    batch_size: int = 8  # clips per process per step (before accumulation)
    accumulation_steps: int = 1  # optimiser step every N batches
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-4  # base learning rate (per-module multipliers come from the method)
    min_lr: float = 0.0  # cosine floor
    warmup_epochs: float = 0.0  # linear warmup length, in epochs (fractions allowed)
    warmup_start_factor: float = 0.0  # warmup starts at this fraction of the LR (AIM: 0.1)
    warmup_interval: str = "step"  # the warmup LR changes every "step" or once per "epoch"
    cosine_interval: str = "step"  # the cosine LR changes every "step" or once per "epoch" (AIM, Text4Vis)
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9  # SGD only
    label_smoothing: float = 0.0
    loss: str = "ce"  # ce: softmax cross entropy | bce: per-class sigmoid (multi-label; test.aggregate: sigmoid)
    grad_clip: float | None = None  # max gradient norm
    precision: str = "fp32"  # fp32 | bf16 (autocast, CPU or GPU) | fp16 (autocast + scaler, GPU)
    compile: bool = False  # torch.compile the training step (the first step compiles; its time is logged)
    ema_decay: float | None = None  # keep an exponential moving average of the weights
    eval_every: int = 1  # evaluate every N epochs (0 = only at the end)
    checkpoint_every_steps: int = 0  # also checkpoint every N steps inside an epoch (0 = per epoch only)
    keep_epoch_checkpoints: bool = False  # also keep checkpoint_epoch{N:03d}.pt per epoch, weights only (for `clipvideo average`)
    log_every: int = 10  # steps between JSONL/TensorBoard log lines
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class TestConfig:
    num_clips: int = 1  # C temporal clips per video
    num_crops: int = 1  # S spatial crops per clip (1 = centre, 3 = three crops)
    batch_size: int = 4  # videos per batch
    aggregate: str = "prob"  # combine views by averaging "prob" (softmax), "logit", or "feature" (video embeddings, Text4Vis)
    precision: str = "auto"  # auto: bf16 on CPUs with native bf16, else fp32 | fp32 | bf16 | fp16 (bf16 on CPUs without native fp16) | fp16! (forced)
    num_workers: int = 2
    short_side: int | None = None  # `clipvideo test` short side (None: data.short_side), e.g. AIM tests at 224, validates at 256
    views_per_batch: int | None = None  # run at most this many views through the model at once (None: all views of a batch)
    cast_weights: bool = True  # bf16/fp16: run the weights in that dtype (the fast path, docs/performance.md); false: autocast over fp32 weights
    compile: bool = False  # torch.compile the model for test/predict/serve (first call compiles: tens of seconds on a CPU)


@dataclass
class Config:
    method: str = "frozen"  # one of clipvideo.methods.METHODS
    model: dict = field(default_factory=dict)  # the method's Config fields (validated against it)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    output_dir: str = "runs/default"  # checkpoints, logs, plots, predictions

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Building dataclasses from plain data, with errors that name the key


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(valid))}"


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting only where it is lossless."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {_type_name(tp)} fields, got {value!r}")
        return from_dict(tp, value, where)
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_type,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported config type {tp!r}")


def from_dict(cls, values: dict, where: str = ""):
    """Build dataclass `cls` from a mapping; unknown keys and wrong types raise ConfigError.

    `where` is the dotted path of this section, used in error messages.
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{where or 'top level'}: unknown key {key!r}{_suggest(key, names)}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    return cls(**kwargs)


def method_config(method: str, values: dict, where: str = "model"):
    """The method's own Config dataclass, filled from the `model:` section."""
    from ..methods import METHODS

    if method not in METHODS:
        raise ConfigError(f"method: unknown method {method!r}{_suggest(method, list(METHODS))}")
    return from_dict(METHODS[method].Config, values, where)


# ---------------------------------------------------------------------------------------------
# Files and overrides


# A value that opens a YAML list, mapping or quoted string must parse; anything else that is not
# valid YAML (",", "@home", "a: b: c") is meant literally and stays the raw string.
_STRUCTURED_STARTS = ("[", "{", '"', "'")


def _override_value(key: str, raw: str):
    if not raw.strip():
        return ""
    try:
        return yaml.safe_load(raw)  # "1e-4" stays a string until build_config
    except yaml.YAMLError as error:
        if raw.lstrip().startswith(_STRUCTURED_STARTS):
            problem = getattr(error, "problem", None) or "invalid YAML"
            raise ConfigError(
                f"--set {key}={raw}: {key} is not valid YAML ({problem}); close the list/mapping/quote, "
                f"e.g. {key}=[1, 2] or {key}='text'"
            ) from None
        return raw


def parse_overrides(items: list[str]) -> dict:
    """["train.lr=1e-4", "data.root=/x"] -> nested dict; values are parsed as YAML scalars."""
    nested: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr=1e-4")
        key, raw = item.split("=", 1)
        value = _override_value(key.strip(), raw)
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return nested


def merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}{line}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _floats_from_strings(values: Any) -> Any:
    # Same float leniency for YAML files: "1e-4" is a number to anyone writing a recipe.
    if isinstance(values, dict):
        return {k: _floats_from_strings(v) for k, v in values.items()}
    if isinstance(values, list):
        return [_floats_from_strings(v) for v in values]
    if isinstance(values, str):
        try:
            if any(c in values.lower() for c in ".e") and values.strip():
                return float(values)
        except ValueError:
            pass
    return values


def build_config(values: dict, source: str = "config") -> Config:
    """Validate a plain mapping into a Config (the model section against its method)."""
    values = _floats_from_strings(values)
    try:
        config = from_dict(Config, values)
        method_config(config.method, config.model, "model")  # validate now, fail early
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return config


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """A recipe file (optional) plus dotted overrides -> validated Config."""
    values = read_yaml(path) if path else {}
    source = str(path) if path else "config"
    if overrides:
        values = merge(values, parse_overrides(overrides))
        source = f"{source} (with --set overrides)"
    return build_config(values, source)


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
