"""Protocol arithmetic worked out by hand: half-class draws, mean ± std, HM, few-shot draws, mAP."""

import math
import random

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from clipvideo.data import AnnotationError, VideoRecord
from clipvideo.data.splits import few_shot_sample
from clipvideo.engine.evaluate import combine_views, evaluate
from clipvideo.engine.metrics import average_precision, mean_average_precision
from clipvideo.engine.protocols import (
    base_to_novel_summary,
    half_class_accuracy,
    half_class_draws,
    mean_std,
    summarize_splits,
)


# Text4Vis half-class sets (reference text4vis.md §a8: first 8 of the permutation, sum of the selected).
@pytest.mark.parametrize("num_classes, split, first8, total", [
    (101, 0, [26, 86, 2, 55, 75, 94, 16, 73], 2326), (101, 1, [94, 78, 17, 100, 36, 85, 55, 83], 2790),
    (51, 0, [29, 11, 10, 22, 2, 28, 45, 32], 646), (200, 0, [18, 170, 107, 98, 177, 182, 5, 146], 10254)])
def test_half_class_draws_are_text4vis_sets(num_classes, split, first8, total):
    drawn = half_class_draws(num_classes, 10)[split]
    assert len(drawn) == num_classes // 2
    assert drawn[:8].tolist() == first8 and int(drawn.sum()) == total


def test_half_class_draws_leave_numpy_global_state_alone():
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    half_class_draws(101)
    assert np.random.rand() == expected


def test_half_class_accuracy_by_hand():
    # 4 classes, draws of 2: seeds 0-2 draw {2, 3}, seed 3 {1, 3}, seed 4 {0, 1}.
    draws = [sorted(d.tolist()) for d in half_class_draws(4, 5)]
    assert draws == [[2, 3], [2, 3], [2, 3], [1, 3], [0, 1]]
    labels = torch.tensor([0, 1, 2, 3, 3])
    scores = torch.tensor([
        [0.9, 0.0, 0.0, 0.1],  # class 0: right among {0, 1}
        [0.0, 0.2, 0.5, 0.3],  # class 1: wrong among {1, 3} (0.3 > 0.2), right among {0, 1}
        [0.1, 0.6, 0.2, 0.1],  # class 2: right among {2, 3} (0.2 > 0.1), although class 1 wins overall
        [0.5, 0.0, 0.4, 0.1],  # class 3: wrong among {2, 3}, right among {1, 3}
        [0.0, 0.0, 0.1, 0.9],  # class 3: right
    ])
    result = half_class_accuracy(scores, labels, draws=5)
    assert [r["top1"] for r in result["draws"]] == pytest.approx([200 / 3] * 4 + [100.0])
    assert [r["num_videos"] for r in result["draws"]] == [3, 3, 3, 3, 2]
    assert [r["top5"] for r in result["draws"]] == [100.0] * 5  # 2 classes: top-5 always hits
    # mean (4 x 66.67 + 100) / 5 = 73.33; population std sqrt((4 x 6.67^2 + 26.67^2) / 5) = 13.33
    assert result["top1_mean"] == pytest.approx(220 / 3) and result["top1_std"] == pytest.approx(40 / 3)


def test_half_class_uses_only_the_labels_present():
    # Class 3 is drawn with class 2 but has no videos: the vocabulary is the labels present ({2}).
    labels = torch.tensor([2, 2])
    scores = torch.tensor([[0.0, 0.0, 0.1, 0.9], [0.0, 0.0, 0.2, 0.1]])
    first = half_class_accuracy(scores, labels, draws=1)["draws"][0]
    assert first["num_classes"] == 1 and first["top1"] == 100.0


def test_mean_std_is_the_population_std():
    assert mean_std([1, 2, 3, 4]) == pytest.approx((2.5, math.sqrt(1.25)))
    assert mean_std([1, 2, 3, 4], ddof=1)[1] == pytest.approx(math.sqrt(5 / 3))
    report = summarize_splits([{"top1": 70.0, "top5": 90.0}, {"top1": 74.0, "top5": 94.0}])
    assert (report["top1_mean"], report["top1_std"], report["top5_std"]) == pytest.approx((72.0, 2.0, 2.0))


def test_harmonic_mean_per_split_and_of_the_averages():
    report = base_to_novel_summary([{"base": 80.0, "novel": 60.0}, {"base": 70.0, "novel": 70.0}])
    assert report["splits"][0]["hm"] == pytest.approx(2 * 80 * 60 / 140)  # 68.571...
    assert report["splits"][1]["hm"] == pytest.approx(70.0)
    assert (report["base"], report["novel"]) == pytest.approx((75.0, 65.0))
    assert report["hm"] == pytest.approx(2 * 75 * 65 / 140)  # 69.642..., not the mean of the HMs
    assert report["mean_of_split_hm"] == pytest.approx((2 * 80 * 60 / 140 + 70) / 2)
    # FROSTER's published rows: 77.8 / 64.3 -> 70.4 and 74.1 / 58.0 -> 65.1
    assert round(base_to_novel_summary([{"base": 77.8, "novel": 64.3}])["hm"], 1) == 70.4
    assert round(base_to_novel_summary([{"base": 74.1, "novel": 58.0}])["hm"], 1) == 65.1


def records(counts):
    return [VideoRecord(f"c{label}_{i}.mp4", (label,)) for label, n in enumerate(counts) for i in range(n)]


def test_few_shot_draws_are_seeded_k_per_class_in_list_order():
    source = records([5, 7, 4])
    draw = few_shot_sample(source, 2, seed=0)
    assert [r.label for r in draw] == [0, 0, 1, 1, 2, 2]
    assert all(r in source for r in draw)
    positions = [source.index(r) for r in draw]
    assert positions == sorted(positions)
    assert few_shot_sample(source, 2, seed=0) == draw  # reproducible
    assert few_shot_sample(records([5, 7, 4]), 2, seed=1) != draw  # another seed, another draw
    assert few_shot_sample(source, 4, seed=3)[-4:] == source[-4:]  # a class with exactly K videos: all of them
    # The draw is random.Random(seed).sample per class in label order: class 0 takes the first sample.
    assert {r.path for r in draw[:2]} == {f"c0_{i}.mp4" for i in random.Random(0).sample(range(5), 2)}


def test_few_shot_needs_enough_videos_per_class():
    with pytest.raises(AnnotationError, match="class 2 has 4 videos in the list, fewer than --shots 5"):
        few_shot_sample(records([5, 7, 4]), 5, seed=0)


def test_average_precision_by_hand_and_with_ties():
    # ranked: +, -, +, - : AP = (1/1 + 2/3) / 2
    assert average_precision(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([1, 0, 1, 0])) == pytest.approx(250 / 3)
    # a tie between a positive and a negative counts as one threshold: precision 1/2 at recall 1
    assert average_precision(torch.tensor([0.5, 0.5]), torch.tensor([1, 0])) == pytest.approx(50.0)
    assert average_precision(torch.tensor([0.5, 0.5]), torch.tensor([0, 1])) == pytest.approx(50.0)
    assert math.isnan(average_precision(torch.tensor([0.1, 0.2]), torch.tensor([0, 0])))
    # ranked +, -, -, +, + : precision at the positives 1, 2/4, 3/5 -> 0.7; interpolated (the best
    # precision at any higher recall: 1, 3/5, 3/5) -> (1 + 0.6 + 0.6) / 3
    ranked = (torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]), torch.tensor([1, 0, 0, 1, 1]))
    assert average_precision(*ranked) == pytest.approx(70.0)
    assert average_precision(*ranked, interpolated=True) == pytest.approx(100 * 2.2 / 3)


def test_mean_average_precision_matches_scikit_learn():
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(60, 7, generator=generator).round(decimals=1)  # many ties
    targets = (torch.rand(60, 7, generator=generator) < 0.3).long()
    targets[:, 6] = 0  # a class without positives is left out of the mean
    targets[0, 0] = 1
    for k in range(6):
        assert average_precision(scores[:, k], targets[:, k]) == pytest.approx(
            100 * average_precision_score(targets[:, k].numpy(), scores[:, k].numpy()), abs=1e-9)
    expected = 100 * average_precision_score(targets[:, :6].numpy(), scores[:, :6].numpy(), average="macro")
    assert mean_average_precision(scores, targets) == pytest.approx(expected, abs=1e-9)


class ViewsAreLogits(torch.nn.Module):
    """The 'video' of each view is its logits: model(x) = x flattened."""

    def forward(self, video):
        return video.flatten(1)


def test_evaluate_reports_map_on_one_softmax_for_multi_label_lists():
    generator = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(12, 2, 5, generator=generator)  # 12 videos, 2 views, 5 classes
    targets = (torch.rand(12, 5, generator=generator) < 0.4).float()
    targets[torch.arange(12), torch.arange(12) % 5] = 1.0
    batches = [(logits[i:i + 4].unsqueeze(-1), targets[i:i + 4], torch.arange(i, i + 4), torch.ones(4, dtype=torch.bool))
               for i in range(0, 12, 4)]
    for aggregate, combine in (("prob", lambda x: x.softmax(-1).mean(1)), ("sigmoid", lambda x: x.sigmoid().mean(1))):
        result = evaluate(ViewsAreLogits(), batches, torch.device("cpu"), aggregate=aggregate, progress=False, dataset=[])
        scores = combine(logits)
        expected = 100 * average_precision_score(targets.numpy(), scores.numpy(), average="macro")
        assert result.metrics["mAP"] == pytest.approx(expected, abs=1e-6)
        assert result.labels.shape == (12, 5)
        hit = targets[torch.arange(12), scores.argmax(1)]
        assert result.metrics["top1"] == pytest.approx(100 * hit.mean().item())
    # A second softmax (Text4Vis) changes the per-class ranking across videos, hence the mAP.
    twice = 100 * average_precision_score(targets.numpy(), logits.softmax(-1).mean(1).softmax(-1).numpy(), average="macro")
    once = evaluate(ViewsAreLogits(), batches, torch.device("cpu"), progress=False, dataset=[]).metrics["mAP"]
    assert abs(twice - once) > 1e-3


def test_sigmoid_view_combination():
    logits = torch.tensor([[[0.0, 2.0], [2.0, 0.0]]])
    s0, s2 = 0.5, 1 / (1 + math.exp(-2))
    assert combine_views(logits, "sigmoid")[0].tolist() == pytest.approx([(s0 + s2) / 2, (s0 + s2) / 2])


def test_unreadable_videos_never_count_as_correct():
    # One undecodable video per class (8 classes) and one readable video of class 0. A flat score
    # row ties every class, and top-k then picks some of them: without ranking the true label last,
    # several failed videos would count as top-1/top-5 hits.
    logits = torch.full((9, 1, 8), -5.0)
    logits[0, 0, 0] = 5.0
    labels = torch.tensor([0, 0, 1, 2, 3, 4, 5, 6, 7])
    valid = torch.tensor([True] + [False] * 8)
    batch = (logits.unsqueeze(-1), labels, torch.arange(9), valid)
    metrics = evaluate(ViewsAreLogits(), [batch], torch.device("cpu"), progress=False, dataset=[]).metrics
    assert (metrics["top1"], metrics["top5"], metrics["failed_videos"]) == pytest.approx((100 / 9, 100 / 9, 8))
    multi = (logits.unsqueeze(-1), torch.eye(8)[labels], torch.arange(9), valid)
    metrics = evaluate(ViewsAreLogits(), [multi], torch.device("cpu"), progress=False, dataset=[]).metrics
    assert (metrics["top1"], metrics["top5"]) == pytest.approx((100 / 9, 100 / 9))
