"""Accuracy metrics over per-video scores."""

import torch


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Percentage of videos whose label is among the k highest scores."""
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices  # (V, k)
    return (top == labels[:, None]).any(dim=1).float().mean().item() * 100


def mean_class_accuracy(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Top-1 accuracy averaged over the classes present in `labels` (MMAction2's definition)."""
    predictions = scores.argmax(dim=1)
    per_class = []
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            per_class.append((predictions[mask] == c).float().mean().item())
    return 100 * sum(per_class) / max(len(per_class), 1)


def confusion_matrix(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) counts, rows = true class, columns = predicted class."""
    predictions = scores.argmax(dim=1)
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
    matrix.index_put_((labels, predictions), torch.ones_like(labels), accumulate=True)
    return matrix


def summarize(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    return {
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5),
        "mean_class_accuracy": mean_class_accuracy(scores, labels, num_classes),
    }


def harmonic_mean(base: float, novel: float) -> float:
    """Base-to-novel summary: 2 b n / (b + n)."""
    return 0.0 if base + novel == 0 else 2 * base * novel / (base + novel)
