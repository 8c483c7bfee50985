"""clipvideo.data.splits: the one seeded per-class sampler (few-shot lists, the LDA sample) and
Text4Vis' repetition of a K-shot draw to a full epoch."""

import random

import pytest

from clipvideo.data import AnnotationError, VideoRecord, read_video_list
from clipvideo.data.splits import few_shot_sample, repeat_to_full_epoch, sample_per_class, write_few_shot_lists


def test_the_draw_is_one_seeded_rng_over_classes_in_label_order():
    labels = [2, 0, 1, 0, 2, 1, 0, 2, 1, 0]
    chosen = sample_per_class(labels, 2, seed=7)
    rng = random.Random(7)  # by hand: class 0, then 1, then 2, each rng.sample of its positions in list order
    expected = sorted(rng.sample([1, 3, 6, 9], 2) + rng.sample([2, 5, 8], 2) + rng.sample([0, 4, 7], 2))
    assert chosen == expected
    assert sample_per_class(labels, 2, seed=7) == chosen and sample_per_class(labels, 2, seed=8) != chosen


def test_too_few_videos_is_an_error_unless_fewer_are_allowed():
    labels = [0, 0, 0, 1]
    with pytest.raises(AnnotationError, match="class 1 has 1 videos in the list, fewer than --shots 2"):
        sample_per_class(labels, 2, seed=0)
    assert sorted(labels[i] for i in sample_per_class(labels, 2, seed=0, allow_fewer=True)) == [0, 0, 1]
    with pytest.raises(AnnotationError, match="must be positive"):
        sample_per_class(labels, 0, seed=0)


def test_few_shot_sample_keeps_records_in_list_order():
    records = [VideoRecord(f"v{i}.mp4", (i % 3,)) for i in range(12)]
    draw = few_shot_sample(records, 2, seed=1)
    assert [records.index(r) for r in draw] == sample_per_class([r.label for r in records], 2, seed=1)


def test_repeat_to_full_epoch_is_floor_n_over_selected():
    assert repeat_to_full_epoch(["a", "b"], 7) == ["a", "b"] * 3
    assert repeat_to_full_epoch(["a", "b", "c"], 2) == ["a", "b", "c"]  # at least once


@pytest.mark.parametrize("repeat", [False, True])
def test_written_lists_parse_and_repeat_on_request(tmp_path, repeat):
    source = tmp_path / "train.txt"
    source.write_text("".join(f"c{i % 5}/v{i}.mp4,{i % 5}\n" for i in range(53)))
    path, = write_few_shot_lists(source, [2], [3], tmp_path / "out", separator=",", repeat=repeat)
    assert path.name == "train_2shot_seed3.txt"
    records = read_video_list(path, separator=",")
    distinct = {r.path for r in records}
    assert len(distinct) == 10 and sorted(r.label for r in records)[:2] == [0, 0]
    assert len(records) == (10 * (53 // 10) if repeat else 10)
