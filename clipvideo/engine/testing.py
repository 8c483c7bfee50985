"""`clipvideo test`: evaluate a checkpoint on a list with the configured views (multi-process too)."""

import json
import logging
from pathlib import Path

from torch.utils.data import DataLoader

from . import checkpoint as ckpt
from .config import Config, ConfigError
from .data import build_eval_dataset, read_class_texts, read_classes
from .distributed import barrier, init_distributed, setup_logging
from .evaluate import ShardSampler, evaluate, write_predictions
from .precision import resolve_precision

log = logging.getLogger("clipvideo")


def run_test(config: Config, checkpoint: str, list_file: str | None = None) -> dict:
    """Load `checkpoint`, evaluate on data.val_list (or `list_file`), write predictions.jsonl."""
    dist = init_distributed(config.train.device)
    setup_logging(dist.rank)
    payload = ckpt.read_checkpoint(checkpoint)
    model = ckpt.model_from_payload(payload, checkpoint).to(dist.device)
    class_names = read_classes(config.data)
    if class_names is not None:
        if getattr(model, "uses_text", False):
            texts = read_class_texts(config.data) if getattr(model, "uses_descriptions", False) else class_names
            model.set_class_names(texts)  # zero-shot on this list's classes
        elif model.class_names and len(model.class_names) != len(class_names):
            raise ConfigError(
                f"data.class_names has {len(class_names)} classes but the checkpoint's linear head has "
                f"{len(model.class_names)}; a {payload['method']} model cannot take new classes"
            )
    class_names = class_names or model.class_names
    dataset = build_eval_dataset(config.data, config.test, class_names, list_file)
    loader = DataLoader(dataset, batch_size=config.test.batch_size, num_workers=config.test.num_workers,
                        sampler=ShardSampler(len(dataset), dist.rank, dist.world_size))
    precision = resolve_precision(config.test.precision, dist.device)
    describe = dataset.describe() if hasattr(dataset, "describe") else ""
    log.info("testing %s on %d videos: %s, %s, views combined by %s", checkpoint, len(dataset), describe,
             precision, config.test.aggregate)
    result = evaluate(model, loader, dist.device, precision, config.test.aggregate,
                      len(class_names) if class_names else None, progress=dist.is_main, dataset=dataset)
    if dist.is_main:
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_predictions(result, out / "predictions.jsonl", class_names, dataset)
        (out / "test_metrics.json").write_text(json.dumps({**result.metrics, "views": describe, "precision": precision}, indent=2))
    barrier()
    return {**result.metrics, "views": describe, "precision": precision}
