"""Accuracy metrics over per-video scores.

`failed` (V,) bool marks videos that could not be decoded: they count as wrong in every metric
by construction (their score rows are never looked at), and are left out of the confusion matrix.
"""

import torch


def _predictions(scores: torch.Tensor, failed: torch.Tensor | None) -> torch.Tensor:
    """Top-1 class per video; -1 (no class) for failed videos."""
    predictions = scores.argmax(dim=1)
    return predictions if failed is None else predictions.masked_fill(failed, -1)


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int, failed: torch.Tensor | None = None) -> float:
    """Percentage of videos whose label is among the k highest scores."""
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices  # (V, k)
    hit = (top == labels[:, None]).any(dim=1)
    if failed is not None:
        hit &= ~failed
    return hit.float().mean().item() * 100


def mean_class_accuracy(scores: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        failed: torch.Tensor | None = None) -> float:
    """Top-1 accuracy averaged over the classes present in `labels` (MMAction2's definition)."""
    predictions = _predictions(scores, failed)
    per_class = []
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            per_class.append((predictions[mask] == c).float().mean().item())
    return 100 * sum(per_class) / max(len(per_class), 1)


def confusion_matrix(scores: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     failed: torch.Tensor | None = None) -> torch.Tensor:
    """(K, K) counts, rows = true class, columns = predicted class (failed videos left out)."""
    if failed is not None:
        scores, labels = scores[~failed], labels[~failed]
    predictions = scores.argmax(dim=1)
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
    matrix.index_put_((labels, predictions), torch.ones_like(labels), accumulate=True)
    return matrix


def summarize(scores: torch.Tensor, labels: torch.Tensor, num_classes: int,
              failed: torch.Tensor | None = None) -> dict[str, float]:
    return {
        "top1": topk_accuracy(scores, labels, 1, failed),
        "top5": topk_accuracy(scores, labels, 5, failed),
        "mean_class_accuracy": mean_class_accuracy(scores, labels, num_classes, failed),
    }


def harmonic_mean(base: float, novel: float) -> float:
    """Base-to-novel summary: 2 b n / (b + n)."""
    return 0.0 if base + novel == 0 else 2 * base * novel / (base + novel)
