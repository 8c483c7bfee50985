"""Datasets on real generated videos: every list format, view layout, workers, bad input."""

import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from clipvideo.data import (
    AnnotationError,
    DummyVideoDataset,
    FrameSampler,
    MultiViewTestDataset,
    VideoClipDataset,
    available_backends,
    build_test_transform,
    build_train_transform,
    decode_frames,
    read_rawframes,
    read_video_list,
    video_num_frames,
)


def require_backend(name):
    """Skip when the optional decoder is not importable (or, for torchcodec, when it imports but
    finds no FFmpeg libraries to decode with)."""
    pytest.importorskip(name)
    if name not in available_backends():
        pytest.skip(f"{name} is installed but cannot load its FFmpeg libraries")


def identity(clip):
    return clip


def as_tchw(frames):
    return frames.permute(0, 3, 1, 2)


def write_list(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def bad_list(tmp_path, motion, videos):
    """Two good motion videos and the four kinds of bad file, absolute paths."""
    good = [line.split()[0] for line in Path(motion.train_list).read_text().split("\n")[:2]]
    lines = [f"{Path(motion.root) / good[0]} 0", f"{videos.missing} 1", f"{videos.garbage} 2",
             f"{videos.truncated} 3", f"{Path(motion.root) / good[1]} 0", f"{videos.header_only} 4"]
    return write_list(tmp_path, "with_bad.txt", lines)


def test_train_clip_is_the_sampled_frames(motion):
    dataset = VideoClipDataset(motion.train_list, motion.root, num_frames=8, sampling="dense", frame_stride=2,
                               transform=identity)
    path = dataset.video_path(5)
    assert path == os.path.join(motion.root, read_video_list(motion.train_list)[5].path)
    torch.manual_seed(7)
    clip, label, index = dataset[5]
    torch.manual_seed(7)
    expected_indices = FrameSampler(8, "dense", 2).train(video_num_frames(path))
    assert torch.equal(clip, as_tchw(decode_frames(path, expected_indices)))
    assert (label, index) == (read_video_list(motion.train_list)[5].label, 5)


def test_train_dataset_with_transform(motion):
    dataset = VideoClipDataset(motion.train_list, motion.root, num_frames=8, sampling="segment",
                               transform=build_train_transform(size=32, flip=False))
    clip, label, index = dataset[0]
    assert clip.shape == (8, 3, 32, 32) and clip.dtype == torch.float32
    assert len(dataset) == 18 and dataset.num_classes == 9
    assert dataset.describe() == "8 frames x 1 clip x 1 crop"


def test_eval_mode_takes_the_centred_clip(motion):
    dataset = VideoClipDataset(motion.val_list, motion.root, num_frames=4, sampling="segment", transform=identity,
                               train=False)
    clip, _, _ = dataset[2]
    path = dataset.video_path(2)
    expected = FrameSampler(4, "segment").test(video_num_frames(path), 1)[0]
    assert expected.tolist() == [2, 6, 10, 14]
    assert torch.equal(clip, as_tchw(decode_frames(path, expected)))


def test_multi_view_layout_is_clip_major(motion):
    dataset = MultiViewTestDataset(motion.val_list, motion.root, num_frames=4, num_clips=2, num_crops=3, size=32,
                                   sampling="dense", frame_stride=3)
    assert dataset.describe() == "4 frames x 2 clips x 3 crops"
    views, label, index, valid = dataset[1]
    assert views.shape == (6, 4, 3, 32, 32) and valid is True and index == 1
    path = dataset.video_path(1)
    clips = FrameSampler(4, "dense", 3).test(video_num_frames(path), 2)  # (C, T)
    three_crops = build_test_transform(size=32, crop="three")
    for c in range(2):
        crops = three_crops(as_tchw(decode_frames(path, clips[c])))  # (S, T, 3, 32, 32)
        for s in range(3):
            assert torch.allclose(views[c * 3 + s], crops[s]), (c, s)


def test_multi_view_rejects_a_transform_with_other_crops(motion):
    with pytest.raises(ValueError, match="num_crops=3"):
        MultiViewTestDataset(motion.val_list, motion.root, num_crops=3, transform=build_test_transform(crop="center"))


def test_dataloader_workers_and_distributed_sampler(motion):
    dataset = MultiViewTestDataset(motion.val_list, motion.root, num_frames=4, num_clips=1, size=32,
                                   sampling="segment")
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=False)
        loader = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=2)
        for views, labels, indices, valid in loader:
            assert views.shape[1:] == (1, 4, 3, 32, 32) and valid.all()
            seen += indices.tolist()
    assert sorted(set(seen)) == list(range(len(dataset)))


def test_bad_videos_in_training_are_replaced_and_counted_across_workers(bad_list):
    dataset = VideoClipDataset(bad_list, num_frames=4, sampling="segment", transform=build_train_transform(32))
    loader = DataLoader(dataset, batch_size=3, num_workers=2)  # sequential: every bad index is asked for
    returned = []
    for clips, labels, indices in loader:
        assert clips.shape == (3, 4, 3, 32, 32) and torch.isfinite(clips).all()
        returned += indices.tolist()
    # only the two good videos (list positions 0 and 4) ever come back, with their own labels
    assert set(returned) <= {0, 4} and len(returned) == 6
    # the records written in the workers are visible here
    assert dataset.bad_video_count() == 4
    reasons = dict(dataset.bad_videos)
    assert reasons == {
        dataset.video_path(1): "missing file",
        dataset.video_path(2): "unreadable",
        dataset.video_path(3): "unreadable",
        dataset.video_path(5): "zero frames",
    }
    dataset.reset_bad_videos()
    assert dataset.bad_video_count() == 0 and dataset.bad_videos == []


def test_bad_videos_are_logged_with_their_path(bad_list, caplog):
    dataset = VideoClipDataset(bad_list, num_frames=4, sampling="segment", transform=build_train_transform(32))
    with caplog.at_level("WARNING", logger="clipvideo.data.datasets"):
        dataset[1]
    assert any(dataset.video_path(1) in message and "missing file" in message for message in caplog.messages)
    assert any(f"{bad_list}:2" in message for message in caplog.messages)


def test_bad_videos_in_evaluation_are_flagged_not_dropped(bad_list):
    dataset = MultiViewTestDataset(bad_list, num_frames=4, num_clips=2, num_crops=3, size=32, sampling="segment")
    loader = DataLoader(dataset, batch_size=2, num_workers=2)
    valid, indices, labels = [], [], []
    for views, batch_labels, batch_indices, batch_valid in loader:
        assert views.shape[1:] == (6, 4, 3, 32, 32)
        for views_of_one, ok in zip(views, batch_valid):
            assert ok or not views_of_one.any()  # a failed video's views are zeros
        valid += batch_valid.tolist()
        indices += batch_indices.tolist()
        labels += batch_labels.tolist()
    assert indices == list(range(6)) and labels == [0, 1, 2, 3, 0, 4]  # every video, in order
    assert valid == [True, False, False, False, True, False]
    assert dataset.bad_video_count() == 4 and dataset.is_bad(1) and not dataset.is_bad(0)


def test_single_view_eval_returns_zeros_for_a_bad_video(bad_list):
    dataset = VideoClipDataset(bad_list, num_frames=4, train=False, transform=build_test_transform(32))
    clip, label, index = dataset[2]
    assert clip.shape == (4, 3, 32, 32) and not clip.any() and (label, index) == (2, 2)
    assert dataset.bad_videos == [(dataset.video_path(2), "unreadable")]


def test_a_list_of_only_bad_videos_stops_with_a_clear_message(tmp_path, videos):
    path = write_list(tmp_path, "all_bad.txt", [f"{videos.missing.name} 0", f"{videos.garbage.name} 1"])
    dataset = VideoClipDataset(path, data_root="/wrong/root", num_frames=4, max_retries=3)
    with pytest.raises(RuntimeError, match="4 videos in a row could not be read.*data_root='/wrong/root'"):
        dataset[0]


def test_spawned_workers_report_bad_videos(bad_list):
    dataset = VideoClipDataset(bad_list, num_frames=2, sampling="segment", transform=build_test_transform(32),
                               train=False)
    loader = DataLoader(dataset, batch_size=6, num_workers=1, multiprocessing_context="spawn")
    next(iter(loader))
    assert dataset.bad_video_count() == 4


def test_label_outside_num_classes_fails_at_load_time(motion):
    with pytest.raises(AnnotationError, match=r"train.txt:\d+: label 8 outside \[0, 8\)"):
        VideoClipDataset(motion.train_list, motion.root, num_classes=8)


def test_start_index_is_only_for_rawframes(motion):
    with pytest.raises(ValueError, match="rawframes"):
        VideoClipDataset(motion.train_list, motion.root, start_index=1)


def test_rawframes_dataset(rawframes, tmp_path):
    dataset = VideoClipDataset(rawframes / "list.txt", rawframes, num_frames=4, sampling="segment", rawframes=True,
                               transform=identity, train=False)
    clip, label, index = dataset[1]
    assert (label, index) == (1, 1)
    expected = read_rawframes(rawframes / "b", [1, 4, 7, 10])  # segment centres of 12 frames
    assert torch.equal(clip, as_tchw(expected))
    # the list claims more frames than the folder has, or none at all; the folder is missing
    broken = write_list(tmp_path, "broken.txt", ["b 30 0", "a 0 1", "c 10 1"])
    dataset = MultiViewTestDataset(broken, rawframes, num_frames=4, size=32, sampling="segment", rawframes=True)
    assert [dataset[i][3] for i in range(3)] == [False, False, False]
    assert [reason for _, reason in dataset.bad_videos] == ["missing frame file", "zero frames", "missing file"]


def test_multi_label_dataset(tmp_path, motion):
    first = read_video_list(motion.train_list)[0].path
    path = write_list(tmp_path, "multi.txt", [f"{first} 1 3", f"{first} 0"])
    dataset = VideoClipDataset(path, motion.root, num_frames=2, multi_label=True, num_classes=4,
                               transform=build_train_transform(32))
    assert torch.equal(dataset[0][1], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    _, targets, _ = next(iter(DataLoader(dataset, batch_size=2)))
    assert targets.shape == (2, 4)


def test_separator_list(tmp_path, motion):
    records = read_video_list(motion.train_list)[:3]
    path = write_list(tmp_path, "train.csv", [f"{r.path},{r.label}" for r in records])
    dataset = VideoClipDataset(path, motion.root, num_frames=2, separator=",", transform=build_train_transform(32))
    assert len(dataset) == 3 and dataset[2][1] == records[2].label


def test_tar_dataset_reads_the_same_frames(motion, video_tar):
    from_files = VideoClipDataset(motion.train_list, motion.root, num_frames=4, transform=identity, train=False)
    from_tar = VideoClipDataset(motion.train_list, num_frames=4, transform=identity, train=False, tar_path=video_tar)
    for i in (0, 7, 17):
        assert torch.equal(from_files[i][0], from_tar[i][0])
    assert from_tar.video_path(0).startswith(f"{video_tar}:")
    # and from worker processes (each opens the tar itself)
    clips, _, _ = next(iter(DataLoader(from_tar, batch_size=4, num_workers=2)))
    assert clips.shape == (4, 4, 3, 48, 64)


def test_tar_member_not_found_is_a_bad_video(tmp_path, video_tar):
    path = write_list(tmp_path, "list.txt", ["not_there.mp4 0"])
    dataset = MultiViewTestDataset(path, tar_path=video_tar, num_frames=2, size=32)
    assert dataset[0][3] is False and dataset.bad_videos[0][1] == "missing file"


def test_index_cache_directory(motion, tmp_path):
    dataset = VideoClipDataset(motion.train_list, motion.root, num_frames=2, index_cache_dir=tmp_path / "cache",
                               transform=build_train_transform(32))
    for i in range(3):
        dataset[i]
    assert len(list((tmp_path / "cache").glob("*.json"))) == 3


@pytest.mark.parametrize("backend", ["decord", "torchcodec"])
def test_optional_backend_datasets_match_pyav(motion, backend):
    require_backend(backend)
    options = dict(num_frames=4, num_clips=2, size=32, sampling="dense", frame_stride=3)
    ours = MultiViewTestDataset(motion.val_list, motion.root, **options)
    theirs = MultiViewTestDataset(motion.val_list, motion.root, backend=backend, **options)
    for i in range(3):
        assert torch.equal(ours[i][0], theirs[i][0])


def test_dummy_dataset():
    dataset = DummyVideoDataset(10, num_frames=4, size=32, num_classes=3)
    clip, label, index = dataset[4]
    assert clip.shape == (4, 3, 32, 32) and not clip.any() and (label, index) == (1, 4)
    views = DummyVideoDataset(10, num_frames=4, size=32, num_classes=3, num_views=6)
    batch = next(iter(DataLoader(views, batch_size=5)))
    assert batch[0].shape == (5, 6, 4, 3, 32, 32) and batch[3].all()
    with pytest.raises(IndexError):
        dataset[10]
