"""Multi-view evaluation: every video scored exactly once, across any number of processes.

Each video yields V = C clips x S crops views; the model scores all views and they are combined
by averaging softmax probabilities (default, as the official tests of the seeds do) or logits,
or (`feature`) the model's un-normalised video features are averaged over the views and then
classified once (Text4Vis). `views_per_batch` runs the views through the model in chunks of at
most that many, so large models with many views fit in memory; the scores do not change.
The sampler shards videos without padding, so distributed evaluation counts each video once.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from .config import ConfigError
from .distributed import all_gather_objects
from .metrics import summarize, summarize_multi_label
from .precision import autocast

log = logging.getLogger("clipvideo")


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ...: no padding, no duplicates (unlike DistributedSampler)."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, length, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class EvalResult:
    metrics: dict[str, float]
    scores: torch.Tensor  # (V, K) combined view scores, rows in dataset order
    labels: torch.Tensor  # (V,)
    indices: torch.Tensor  # (V,) dataset indices
    failed: list[str] = field(default_factory=list)  # videos that could not be decoded
    failed_mask: torch.Tensor | None = None  # (V,) True for those videos' rows

    @property
    def num_videos(self) -> int:
        return len(self.labels)


AGGREGATES = ("prob", "logit", "feature", "sigmoid")


def combine_views(logits: torch.Tensor, aggregate: str = "prob") -> torch.Tensor:
    """(B, V, K) per-view logits -> (B, K) per-video scores."""
    if aggregate == "prob":
        return logits.float().softmax(dim=-1).mean(dim=1)
    if aggregate == "logit":
        return logits.float().mean(dim=1)
    if aggregate == "sigmoid":  # independent per-class probabilities (multi-label models trained with BCE)
        return logits.float().sigmoid().mean(dim=1)
    raise ValueError(f"test.aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")


def check_view_settings(model: torch.nn.Module, aggregate: str, views_per_batch: int | None = None) -> None:
    """test.aggregate / test.views_per_batch usable with this model, else a one-line ConfigError."""
    if aggregate not in AGGREGATES:
        raise ConfigError(f"test.aggregate: expected one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    if views_per_batch is not None and views_per_batch < 1:
        raise ConfigError(f"test.views_per_batch: expected a positive number of views (or null for all), got {views_per_batch}")


def _in_chunks(fn, views: torch.Tensor, views_per_batch: int | None) -> torch.Tensor:
    """fn over (N, ...) views, at most `views_per_batch` at a time, outputs concatenated."""
    if not views_per_batch or len(views) <= views_per_batch:
        return fn(views)
    return torch.cat([fn(chunk) for chunk in views.split(views_per_batch)])


def score_views(
    model: torch.nn.Module,
    views: torch.Tensor,
    device: torch.device,
    precision: str = "fp32",
    aggregate: str = "prob",
    views_per_batch: int | None = None,
) -> torch.Tensor:
    """(B, V, T, 3, H, W) views of B videos -> (B, K) float scores on the CPU.

    prob: mean softmax over views; logit: mean logits; sigmoid: mean per-class sigmoid; feature:
    the mean of the model's per-view `forward_features` goes through its `forward_head` once, then
    softmax. `clipvideo test`, predict, serve and the protocols all score through here.
    """
    batch_size, num_views = views.shape[:2]
    flat = views.flatten(0, 1)  # (B*V, T, 3, H, W)
    to_device = lambda chunk: chunk.to(device, non_blocking=True)  # noqa: E731
    with autocast(device, precision):
        if aggregate == "feature":
            features = _in_chunks(lambda chunk: model.forward_features(to_device(chunk)), flat, views_per_batch)
            mean = features.float().view(batch_size, num_views, -1).mean(dim=1)  # (B, D)
            logits = model.forward_head(mean.to(features.dtype))  # (B, K)
            return logits.float().softmax(dim=-1).cpu()
        logits = _in_chunks(lambda chunk: model(to_device(chunk)), flat, views_per_batch)  # (B*V, K)
    return combine_views(logits.view(batch_size, num_views, -1), aggregate).cpu()


def _unpack(batch):
    """(views, label, index[, valid]) from the test dataset."""
    views, labels, indices = batch[0], batch[1], batch[2]
    valid = batch[3] if len(batch) > 3 else torch.ones(len(labels), dtype=torch.bool)
    return views, labels, indices, valid


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    precision: str = "fp32",
    aggregate: str = "prob",
    num_classes: int | None = None,
    progress: bool = True,
    dataset=None,
    views_per_batch: int | None = None,
) -> EvalResult:
    """Score every video the loader's sampler gives this rank, then gather all ranks' results.

    Videos that fail to decode are counted and listed in `failed`; every metric counts them as
    wrong (whatever their score row), so accuracy is over every listed video, never silently fewer.
    """
    check_view_settings(model, aggregate, views_per_batch)
    model.eval()
    rows = []
    dataset = dataset if dataset is not None else loader.dataset
    for batch in tqdm(loader, desc="eval", disable=None if progress else True, leave=False, dynamic_ncols=True):
        views, labels, indices, valid = _unpack(batch)
        batch_size = views.shape[0]
        scores = score_views(model, views, device, precision, aggregate, views_per_batch)  # (B, K)
        for i in range(batch_size):
            label = labels[i] if labels.dim() > 1 else int(labels[i])  # multi-hot (K,) for multi-label lists
            rows.append((int(indices[i]), scores[i], label, bool(valid[i])))
    gathered = [row for part in all_gather_objects(rows) for row in part]
    gathered.sort(key=lambda row: row[0])
    if not gathered:
        raise RuntimeError("evaluation saw no videos: the evaluation list is empty")
    indices = torch.tensor([r[0] for r in gathered])
    multi_label = isinstance(gathered[0][2], torch.Tensor)
    labels = torch.stack([r[2] for r in gathered]) if multi_label else torch.tensor([r[2] for r in gathered])
    scores = torch.stack([r[1] for r in gathered])
    failed = [_video_name(dataset, r[0]) for r in gathered if not r[3]]
    bad = torch.tensor([not r[3] for r in gathered])
    if failed:
        # The metrics count failed videos as wrong from `bad`; the flat row is only what
        # predictions.jsonl shows for them (no class is preferred).
        scores[bad] = 1.0 / scores.shape[1]
        for name in failed:
            log.warning("evaluation: could not decode %s; counted as wrong", name)
    if multi_label:
        metrics = summarize_multi_label(scores, labels, bad)
    else:
        metrics = summarize(scores, labels, num_classes or scores.shape[1], bad)
    metrics["num_videos"] = len(labels)
    metrics["failed_videos"] = len(failed)
    return EvalResult(metrics, scores, labels, indices, failed, bad)


def _video_name(dataset, index: int) -> str:
    for attr in ("video_path", "path_of"):
        fn = getattr(dataset, attr, None)
        if callable(fn):
            return str(fn(index))
    return f"video #{index}"


def write_predictions(result: EvalResult, path: str | Path, class_names: list[str] | None, dataset=None, top_k: int = 5) -> None:
    """One JSON line per video: index, path, label, top-k predictions with scores."""
    path = Path(path)
    with open(path, "w") as f:
        for row, index in enumerate(result.indices.tolist()):
            scores = result.scores[row]
            top = scores.topk(min(top_k, len(scores)))
            name = (lambda c: class_names[c] if class_names else str(c))
            f.write(json.dumps({
                "index": index,
                "video": _video_name(dataset, index) if dataset is not None else None,
                **_label_fields(result.labels[row], name),
                "failed": bool(result.failed_mask[row]) if result.failed_mask is not None else False,
                "top": [{"class": int(c), "name": name(int(c)), "score": round(float(s), 6)}
                        for s, c in zip(top.values, top.indices)],
            }) + "\n")


def _label_fields(label: torch.Tensor, name) -> dict:
    if label.dim() == 0:
        return {"label": int(label), "label_name": name(int(label))}
    ids = label.nonzero().flatten().tolist()  # multi-hot
    return {"label": ids, "label_name": [name(c) for c in ids]}
