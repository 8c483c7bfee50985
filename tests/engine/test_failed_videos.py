"""Every metric takes the failed-video mask: a failed video is never correct and never ranked above a
real negative, whatever its score row holds (evaluate fills it with 1/K, which ties every class)."""

import pytest
import torch

from clipvideo.engine.metrics import average_precision, summarize, summarize_multi_label
from clipvideo.engine.protocols import half_class_accuracy


def half_class_case():
    """6 classes x 7 videos: per class 3 readable videos (the label ranked first for one, last for
    two) and 4 unreadable ones with the flat 1/K row."""
    num_classes = 6
    scores, labels, failed = [], [], []
    for label in range(num_classes):
        for video in range(7):
            row = torch.full((num_classes,), 1.0 / num_classes)
            readable = video < 3
            if readable:
                row = torch.full((num_classes,), 0.0 if video == 0 else 0.5)
                row[label] = 1.0 if video == 0 else 0.0
            scores.append(row)
            labels.append(label)
            failed.append(not readable)
    return torch.stack(scores), torch.tensor(labels), torch.tensor(failed)


def test_half_class_counts_18_readable_and_24_missing_videos_right():
    scores, labels, failed = half_class_case()
    assert int((~failed).sum()) == 18 and int(failed.sum()) == 24
    report = half_class_accuracy(scores, labels, draws=10, failed=failed)
    for row in report["draws"]:
        # 3 drawn classes, 21 videos: top-1 hits 1 readable video per class, top-5 (all 3 columns) all 3.
        assert (row["num_classes"], row["num_videos"]) == (3, 21)
        assert row["top1"] == pytest.approx(100 * 3 / 21) and row["top5"] == pytest.approx(100 * 9 / 21)
    assert report["top1_mean"] == pytest.approx(14.2857, abs=1e-3) and report["top5_mean"] == pytest.approx(42.857, abs=1e-3)
    # Without the mask the flat rows win by tie order (column 0 first): the numbers are not those.
    unmasked = half_class_accuracy(scores, labels, draws=10)
    assert unmasked["top5_mean"] > report["top5_mean"]


def test_top_k_and_mean_class_count_failed_videos_wrong():
    scores, labels, failed = half_class_case()
    metrics = summarize(scores, labels, 6, failed)
    assert metrics["top1"] == pytest.approx(100 * 6 / 42)
    assert metrics["mean_class_accuracy"] == pytest.approx(100 / 7)


def test_map_never_ranks_a_failed_video_above_a_real_negative():
    # Class 0: one real positive scored 0.9, one real negative 0.2, one failed positive and one
    # failed negative whose flat rows (0.5) would sit between them.
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.5, 0.5]])
    targets = torch.tensor([[1, 0], [0, 1], [1, 0], [0, 1]])
    failed = torch.tensor([False, False, True, True])
    # The failed positive is never retrieved: recall 1/2 at precision 1, nothing more.
    assert average_precision(scores[:, 0], targets[:, 0], failed=failed) == pytest.approx(50.0)
    metrics = summarize_multi_label(scores, targets, failed)
    assert metrics["mAP"] == pytest.approx(50.0) and metrics["top1"] == pytest.approx(50.0)
    # Unmasked, the failed negative outranks the real negative of class 1 and the failed positive counts.
    assert summarize_multi_label(scores, targets)["mAP"] != pytest.approx(50.0)
