"""`clipvideo test`: evaluate a checkpoint on a list with the configured views (multi-process too)."""

import json
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from . import checkpoint as ckpt
from .config import Config, ConfigError, build_config, merge, parse_overrides
from .data import build_eval_dataset, folder_dataset, read_classes, read_vocabulary
from .distributed import barrier, init_distributed, setup_logging
from .evaluate import ShardSampler, check_view_settings, evaluate, write_predictions
from .fastpath import compile_or_explain, prepare_for_inference
from .precision import resolve_precision

log = logging.getLogger("clipvideo")


# The data fields that decide what the model sees; a recipe that disagrees with the file gets a warning.
INPUT_FIELDS = ("num_frames", "sampling", "sampling_protocol", "frame_stride", "input_size", "short_side",
                "normalization")


def config_from_checkpoint(checkpoint: str, overrides: list[str] | None = None) -> Config:
    """`clipvideo test --checkpoint FILE` without a recipe: the file's data and test settings
    (its run's val_list included), then the user's --set overrides. Output: FILE's folder/test."""
    payload = ckpt.read_checkpoint(checkpoint)
    stored = payload.get("config") or {}
    if not (stored.get("data") and stored.get("test")):  # an older file: the model's own record fills in
        stored = ckpt.inference_settings(ckpt.model_from_payload(payload, checkpoint), stored.get("data"),
                                         stored.get("test"))
    values = {"method": payload.get("method", "frozen"), "data": stored.get("data") or {},
              "test": stored.get("test") or {}, "output_dir": str(Path(checkpoint).parent / "test")}
    if overrides:
        values = merge(values, parse_overrides(overrides))
    return build_config(values, f"{checkpoint}: stored settings" + (" (with --set overrides)" if overrides else ""))


def run_test(config: Config, checkpoint: str, list_file: str | None = None) -> dict:
    """Load `checkpoint`, evaluate on data.val_list (or `list_file`), write predictions.jsonl."""
    dist = init_distributed(config.train.device)
    setup_logging(dist.rank)
    payload = ckpt.read_checkpoint(checkpoint)
    model = ckpt.model_from_payload(payload, checkpoint).to(dist.device)
    stored = (payload.get("config") or {}).get("data") or {}
    differ = [f"{k}={getattr(config.data, k)!r} (file: {stored[k]!r})" for k in INPUT_FIELDS
              if k in stored and stored[k] != getattr(config.data, k)]
    recorded_aggregate = ckpt.stored_settings(payload, checkpoint, model)[1].aggregate
    if config.test.aggregate != recorded_aggregate:
        differ.append(f"test.aggregate={config.test.aggregate!r} (file: {recorded_aggregate!r})")
    if differ:
        log.warning("the recipe feeds %s differently from how it was trained/converted: %s", checkpoint, ", ".join(differ))
    if dist.is_main:
        for line in folder_dataset(config.data, config.output_dir):  # FOLDER/<class>/<videos>: its val split
            log.info("%s", line)
    barrier()
    if not dist.is_main:
        folder_dataset(config.data, config.output_dir, write=False)
    class_names = read_classes(config.data)
    if class_names is not None:
        if model.uses_text:
            model.set_classes(read_vocabulary(config.data))  # zero-shot on this list's classes
        elif model.class_names and len(model.class_names) != len(class_names):
            raise ConfigError(
                f"data.class_names has {len(class_names)} classes but the checkpoint's linear head has "
                f"{len(model.class_names)}; a {payload['method']} model cannot take new classes"
            )
    class_names = class_names or model.class_names
    check_view_settings(model, config.test.aggregate, config.test.views_per_batch)
    dataset = build_eval_dataset(config.data, config.test, class_names, list_file, for_test=True)
    loader = DataLoader(dataset, batch_size=config.test.batch_size, num_workers=config.test.num_workers,
                        sampler=ShardSampler(len(dataset), dist.rank, dist.world_size))
    precision = resolve_precision(config.test.precision, dist.device, "test.precision")
    prepare_for_inference(model, precision, compile=config.test.compile, cast=config.test.cast_weights)
    extra = {}
    if config.test.compile:
        views = config.test.num_clips * config.test.num_crops
        example = torch.zeros(min(len(dataset), config.test.batch_size) * views, config.data.num_frames, 3,
                              config.data.input_size, config.data.input_size)
        extra["compile_seconds"] = round(compile_or_explain(model, example, dist.device, precision), 1)
    describe = dataset.describe() if hasattr(dataset, "describe") else ""
    log.info("testing %s on %d videos: %s, %s, views combined by %s", checkpoint, len(dataset), describe,
             precision, config.test.aggregate)
    result = evaluate(model, loader, dist.device, precision, config.test.aggregate,
                      len(class_names) if class_names else None, progress=dist.is_main, dataset=dataset,
                      views_per_batch=config.test.views_per_batch)
    if dist.is_main:
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_predictions(result, out / "predictions.jsonl", class_names, dataset)
        (out / "test_metrics.json").write_text(json.dumps({**result.metrics, "views": describe, "precision": precision, **extra},
                                                                indent=2))
    barrier()
    return {**result.metrics, "views": describe, "precision": precision, **extra}
