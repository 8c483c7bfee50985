"""Multi-view evaluation: every video scored exactly once, across any number of processes.

Each video yields V = C clips x S crops views; the model scores all views and they are combined
by averaging softmax probabilities (default, as the official tests of the seeds do) or logits.
The sampler shards videos without padding, so distributed evaluation counts each video once.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

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


def combine_views(logits: torch.Tensor, aggregate: str = "prob") -> torch.Tensor:
    """(B, V, K) per-view logits -> (B, K) per-video scores."""
    if aggregate == "prob":
        return logits.float().softmax(dim=-1).mean(dim=1)
    if aggregate == "logit":
        return logits.float().mean(dim=1)
    if aggregate == "sigmoid":  # independent per-class probabilities (multi-label models trained with BCE)
        return logits.float().sigmoid().mean(dim=1)
    raise ValueError(f"test.aggregate must be 'prob' or 'logit', got {aggregate!r}")


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
) -> EvalResult:
    """Score every video the loader's sampler gives this rank, then gather all ranks' results.

    Videos that fail to decode are counted and listed in `failed`; every metric counts them as
    wrong (whatever their score row), so accuracy is over every listed video, never silently fewer.
    """
    model.eval()
    rows = []
    dataset = dataset if dataset is not None else loader.dataset
    for batch in tqdm(loader, desc="eval", disable=None if progress else True, leave=False, dynamic_ncols=True):
        views, labels, indices, valid = _unpack(batch)
        batch_size, num_views = views.shape[:2]
        with autocast(device, precision):
            logits = model(views.flatten(0, 1).to(device, non_blocking=True))  # (B*V, K)
        scores = combine_views(logits.view(batch_size, num_views, -1), aggregate).cpu()
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
        if multi_label:
            # mAP takes no failed mask: rank a failed video's true labels last, so it never scores.
            scores[bad] = scores[bad].masked_fill(labels[bad].bool(), 0.0)
        for name in failed:
            log.warning("evaluation: could not decode %s; counted as wrong", name)
    if multi_label:
        metrics = summarize_multi_label(scores, labels)
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
