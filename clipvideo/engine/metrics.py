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


def average_precision(scores: torch.Tensor, positives: torch.Tensor, interpolated: bool = False,
                      failed: torch.Tensor | None = None) -> float:
    """AP (%) of one class: sum over score thresholds of (recall step) x precision.

    Non-interpolated by default (scikit-learn's average_precision_score, torchnet's APMeter used by
    Text4Vis). `interpolated=True` first replaces each precision by the best precision at any
    higher recall (the VOC rule of the ActivityNet challenge's eval_classification.py). Videos with
    equal scores share one threshold, so ties are order-free. nan for a class without positives.
    `failed` videos are never retrieved: their positives count in the recall denominator only, and
    they are ranked nowhere (so never above a real negative).
    """
    positives = positives.bool()
    num_positive = int(positives.sum())
    if num_positive == 0:
        return float("nan")
    if failed is not None:
        scores, positives = scores[~failed], positives[~failed]
        if len(scores) == 0:
            return 0.0
    order = torch.argsort(scores.double(), descending=True, stable=True)
    sorted_scores, hits = scores.double()[order], positives[order].double()
    true_positives = hits.cumsum(0)
    # last position of each run of equal scores: where precision and recall are read
    last_of_tie = torch.ones_like(sorted_scores, dtype=torch.bool)
    last_of_tie[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    tp = true_positives[last_of_tie]
    ranks = torch.arange(1, len(scores) + 1, dtype=torch.double)[last_of_tie]
    recall_steps = torch.diff(tp, prepend=tp.new_zeros(1)) / num_positive
    precision = tp / ranks
    if interpolated:
        precision = precision.flip(0).cummax(0).values.flip(0)
    return float((recall_steps * precision).sum() * 100)


def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor, interpolated: bool = False,
                           failed: torch.Tensor | None = None) -> float:
    """mAP (%) over the classes that have at least one positive video; targets (V, K) multi-hot."""
    aps = [average_precision(scores[:, k], targets[:, k], interpolated, failed)
           for k in range(scores.shape[1]) if targets[:, k].any()]
    return sum(aps) / len(aps) if aps else float("nan")


def summarize_multi_label(scores: torch.Tensor, targets: torch.Tensor,
                          failed: torch.Tensor | None = None) -> dict[str, float]:
    """Multi-label lists (ActivityNet): mAP, and top-1/top-5 counting a hit on any of a video's labels."""
    top5 = scores.topk(min(5, scores.shape[1]), dim=1).indices
    hit = targets.bool().gather(1, top5)  # (V, k): is the j-th ranked class a label of the video?
    if failed is not None:
        hit &= ~failed[:, None]
    return {
        "mAP": mean_average_precision(scores, targets, failed=failed),
        "mAP_interpolated": mean_average_precision(scores, targets, interpolated=True, failed=failed),
        "top1": hit[:, 0].float().mean().item() * 100,
        "top5": hit.any(dim=1).float().mean().item() * 100,
    }
