"""`clipvideo compare DATA`: every method on one dataset, under one budget, in one table.

For each method: a recipe (written to OUT/<method>/recipe.yaml, so any row reruns alone with
`clipvideo train`), training under the shared budget (epochs or minutes), the same frames, input
size, views, split and seed for all; then `clipvideo test` on the same validation videos and the
costs: training seconds per clip, inference clips/s and peak memory (`clipvideo bench model`),
total and tunable parameters, GFLOPs per view. Zero-shot rows (`--checkpoint METHOD=FILE` for a
released text model, `--zero-shot` for frozen CLIP with class names) are tested without training.

Output: OUT/compare.md (the table), OUT/compare.json, OUT/compare.png (accuracy against inference
cost). `--resume` skips finished rows and continues an interrupted training from its checkpoint.
Per-method settings for a small dataset are in METHOD_DEFAULTS; docs/compare.md gives the reasons.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from .config import ConfigError, build_config, merge, parse_overrides

log = logging.getLogger(__name__)

METHODS = ("frozen", "evl", "aim", "xclip", "text4vis", "froster")

# Per method: (model settings, train settings with a pretrained CLIP, learning rate on a random tower).
# A random tower (no --backbone, for trying the command out) is far from any optimum and takes
# larger steps; a pretrained one is fine-tuned gently. Reasons: docs/compare.md.
METHOD_DEFAULTS: dict[str, tuple[dict, dict, float]] = {
    "frozen": ({"temporal": "mean", "classifier": "linear"}, {"lr": 1e-3, "weight_decay": 0.0}, 1e-2),
    "evl": ({"decoder_layers": 4, "mlp_dropout": 0.5, "head_dropout": 0.5},
            {"lr": 4e-4, "weight_decay": 0.05, "warmup_epochs": 0}, 3e-3),
    "aim": ({"drop_path_rate": 0.1, "head_dropout": 0.5, "sampling": "segment"},
            {"lr": 3e-4, "weight_decay": 0.05, "warmup_epochs": 1, "warmup_start_factor": 0.1}, 1e-2),
    "xclip": ({}, {"lr": 8e-6, "min_lr": 8e-8, "weight_decay": 0.001, "betas": [0.9, 0.98], "warmup_epochs": 1}, 3e-4),
    "text4vis": ({"fusion": "transf", "fusion_layers": 6, "classifier": "text"},
                 {"lr": 5e-5, "weight_decay": 0.2, "warmup_epochs": 1}, 2e-3),
    "froster": ({"distillation": True, "distillation_ratio": 2.0},
                {"lr": 3.33e-6, "weight_decay": 0.01, "warmup_epochs": 1, "grad_clip": 1.0}, 1e-4),
}
# A random tiny tower's blocks do not divide into 64-wide heads: these are the tiny recipes' settings.
TINY_MODEL = {
    "evl": {"decoder_layers": 2, "decoder_heads": 2, "mlp_dropout": 0.0, "head_dropout": 0.0},
    "aim": {"drop_path_rate": 0.0, "head_dropout": 0.0},
    "xclip": {"mit_heads": 2, "prompt_heads": 2},
    "text4vis": {"fusion_layers": 2, "fusion_heads": 2},
}
NORMALIZATION = {"aim": "aim", "xclip": "imagenet"}  # each method's pretraining statistics; others CLIP's


@dataclass
class CompareSettings:
    data: str  # a class-folder dataset (FOLDER/<class>/<videos>)
    out: str
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    backbone: str | None = None  # CLIP weights; None: a random tiny CLIP (a try-out, not a result)
    epochs: int = 10
    minutes: float | None = None  # per-method training budget in wall minutes (instead of epochs)
    num_frames: int = 8
    input_size: int | None = None  # default: the backbone's resolution (64 for the tiny tower)
    sampling: str = "segment"
    flip: bool = True
    val_fraction: float = 0.2
    seed: int = 0
    num_clips: int = 1
    num_crops: int = 1
    batch_size: int = 8
    device: str = "auto"
    precision: str = "fp32"
    overrides: list[str] = field(default_factory=list)  # "train.lr=..." for all, "evl:train.lr=..." for one
    checkpoints: dict[str, str] = field(default_factory=dict)  # zero-shot rows: method -> released model file
    zero_shot: bool = False  # a frozen-CLIP zero-shot row (needs a backbone with its text tower)
    resume: bool = False


def _method_overrides(settings: CompareSettings, method: str) -> dict:
    mine = []
    for item in settings.overrides:
        prefix, _, rest = item.partition(":")
        if rest and "=" not in prefix:
            if prefix not in METHODS:
                raise ConfigError(f"--set {item}: {prefix!r} is not a method ({', '.join(METHODS)})")
            if prefix == method:
                mine.append(rest)
        else:
            mine.append(item)
    return parse_overrides(mine) if mine else {}


def recipe(settings: CompareSettings, method: str, train: bool = True) -> dict:
    """The recipe of one row: shared data, budget, views and seed; the method's own model and LR."""
    if method not in METHOD_DEFAULTS:
        raise ConfigError(f"--methods: unknown method {method!r}; choose from {', '.join(METHODS)}")
    model, train_settings, random_lr = METHOD_DEFAULTS[method]
    model = dict(model)
    train_settings = dict(train_settings)
    if settings.backbone:
        model["backbone"] = {"pretrained": settings.backbone}
    else:
        model["backbone"] = {"arch": "tiny"}
        model.update(TINY_MODEL.get(method, {}))
        train_settings["lr"] = random_lr
    model["num_frames"] = settings.num_frames
    values = {
        "method": method,
        "model": model,
        "data": {"root": settings.data, "val_fraction": settings.val_fraction, "split_seed": settings.seed,
                 "num_frames": settings.num_frames, "sampling": settings.sampling, "flip": settings.flip,
                 "normalization": NORMALIZATION.get(method, "clip"), "num_workers": 1},
        "train": {**train_settings, "epochs": settings.epochs, "batch_size": settings.batch_size, "seed": settings.seed,
                  "precision": settings.precision, "device": settings.device, "eval_every": 0,
                  "max_minutes": settings.minutes},
        "test": {"num_clips": settings.num_clips, "num_crops": settings.num_crops, "batch_size": settings.batch_size,
                 "precision": settings.precision, "num_workers": 1},
        "output_dir": str(Path(settings.out) / method),
    }
    size = settings.input_size or (None if settings.backbone else 64)  # the tiny tower is 64 px
    if size:
        values["data"].update(input_size=size, short_side=size)
    if method == "frozen" and not train:
        values["model"].update(classifier="text")
    return merge(values, _method_overrides(settings, method))


def count_parameters(model: torch.nn.Module) -> tuple[float, float]:
    """(total, tunable) in millions; a training-only teacher is not part of the model that runs."""
    skip = tuple(getattr(model, "training_only_prefixes", ()))
    total = tunable = 0
    for name, param in model.named_parameters():
        if skip and name.startswith(skip):
            continue
        total += param.numel()
        tunable += param.numel() if param.requires_grad else 0
    return total / 1e6, tunable / 1e6


def gflops_per_view(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    """Forward GFLOPs of one view (T, 3, S, S) as the video papers report them (fvcore: one per
    multiply-add, e.g. 202 for AIM B/16 at 8 frames): torch's FlopCounterMode total (2 per multiply-add) / 2."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))  # builds a text classifier once, outside the count
    # With grad enabled: the counter's module tracker hooks autograd and fails under no_grad.
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    return counter.get_total_flops() / 2e9


def _costs(config, checkpoint: Path, device: torch.device) -> dict:
    from . import checkpoint as ckpt
    from .bench import bench_model

    payload = ckpt.read_checkpoint(checkpoint)
    model = ckpt.model_from_payload(payload, checkpoint)
    total, tunable = count_parameters(model)
    size = config.data.input_size
    shape = (config.data.num_frames, 3, size, size)
    flops = gflops_per_view(model, shape)
    speed = bench_model(config, device, batch_size=1, precisions=(config.test.precision,), model=model)[0]
    return {"params_m": total, "tunable_params_m": tunable, "gflops_per_view": flops,
            "infer_clips_per_s": speed["clips_per_s"], "peak_memory_mib": speed["peak_memory_mib"]}


def run_row(settings: CompareSettings, method: str, checkpoint: str | None = None) -> dict:
    """Train (unless a released checkpoint or zero-shot row), test and cost one method."""
    from .testing import run_test
    from .train import fit

    out = Path(settings.out) / (method if checkpoint is None else f"{method}-released")
    result_file = out / "result.json"
    if settings.resume and result_file.is_file():
        log.info("compare: %s already done (%s)", method, result_file)
        return json.loads(result_file.read_text())
    out.mkdir(parents=True, exist_ok=True)
    trains = checkpoint is None and not (method == "frozen-zero-shot")
    values = recipe(settings, "frozen" if method == "frozen-zero-shot" else method, train=trains)
    values["output_dir"] = str(out)
    (out / "recipe.yaml").write_text("# Written by `clipvideo compare`. Rerun this row alone: clipvideo train <this file>\n"
                                     + yaml.safe_dump(values, sort_keys=False, allow_unicode=True))
    config = build_config(values, str(out / "recipe.yaml"))
    row = {"method": method, "trained": trains}
    if trains:
        started = time.perf_counter()
        resume = "auto" if settings.resume and (out / "checkpoint_last.pt").is_file() else None
        result = fit(config, resume=resume)
        seconds = time.perf_counter() - started
        rates = [h["clips_per_s"] for h in result["history"] if h.get("clips_per_s")]
        row.update(train_seconds=seconds, epochs=len(result["history"]),
                   train_s_per_clip=sum(1 / r for r in rates) / len(rates) if rates else None)
        model_file = out / "model.pt"
    else:
        model_file = Path(checkpoint) if checkpoint else _zero_shot_model(config, out)
    metrics = run_test(config, str(model_file))
    device = torch.device("cuda" if config.train.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    row.update(top1=metrics["top1"], mean_class=metrics["mean_class_accuracy"], views=metrics["views"],
               **_costs(config, model_file, device), model=str(model_file))
    result_file.write_text(json.dumps(row, indent=2))
    return row


def _zero_shot_model(config, out: Path) -> Path:
    """A frozen-CLIP model file (frame mean, class-name text classifier): nothing to train."""
    from . import checkpoint as ckpt
    from .data import folder_dataset, read_classes
    from .train import build_model

    folder_dataset(config.data, out)
    names = read_classes(config.data)
    model = build_model(config, len(names), names)
    path = out / "model.pt"
    ckpt.save_model(model, path, data=config.data, test=config.test)
    return path


def compare(settings: CompareSettings) -> list[dict]:
    unknown = [m for m in settings.methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if settings.zero_shot and not settings.backbone:
        raise ConfigError("--zero-shot needs --backbone (a CLIP with its text tower)")
    from .distributed import setup_logging

    setup_logging(0)
    Path(settings.out).mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [(m, None) for m in settings.methods]
    jobs += [("frozen-zero-shot", None)] if settings.zero_shot else []
    jobs += list(settings.checkpoints.items())
    for method, checkpoint in jobs:
        log.info("compare: %s", method if checkpoint is None else f"{method} ({checkpoint})")
        try:
            rows.append(run_row(settings, method, checkpoint))
        except Exception as error:  # noqa: BLE001 -- one method failing must not lose the other rows
            log.exception("compare: %s failed", method)
            rows.append({"method": method, "error": str(error).splitlines()[0]})
    write_report(rows, Path(settings.out))
    return rows


COLUMNS = (("method", "method", "{}"), ("top1", "top-1", "{:.1f}"), ("mean_class", "mean class", "{:.1f}"),
           ("train_s_per_clip", "train s/clip", "{:.3f}"), ("infer_clips_per_s", "infer clips/s", "{:.2f}"),
           ("peak_memory_mib", "peak MiB", "{:.0f}"), ("params_m", "params M", "{:.3g}"),
           ("tunable_params_m", "tunable M", "{:.3g}"), ("gflops_per_view", "GFLOPs/view", "{:.3g}"))


def format_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['method']} | failed: {row['error']} |" + " |" * (len(COLUMNS) - 2))
            continue
        cells = [fmt.format(row[key]) if row.get(key) is not None else "-" for key, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(rows: list[dict], out: Path) -> None:
    from .machine import load_report

    table = format_table(rows)
    (out / "compare.md").write_text(table + "\n\n" + load_report(torch.get_num_threads()) + "\n")
    (out / "compare.json").write_text(json.dumps(rows, indent=2))
    plot(rows, out / "compare.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if "error" not in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in done:
        cost = 1000.0 / row["infer_clips_per_s"]
        ax.scatter(cost, row["top1"])
        ax.annotate(row["method"], (cost, row["top1"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("inference ms per clip (one view)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("accuracy against inference cost")
    if done and max(1000.0 / r["infer_clips_per_s"] for r in done) / max(1e-9, min(1000.0 / r["infer_clips_per_s"] for r in done)) > 20:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["CompareSettings", "METHOD_DEFAULTS", "compare", "recipe", "format_table", "count_parameters",
           "gflops_per_view"]
