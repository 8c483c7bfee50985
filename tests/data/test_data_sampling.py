"""Frame samplers: the documented index conventions, short videos, determinism."""

import pytest
import torch

from clipvideo.data import (
    FrameSampler,
    dense_test_indices,
    dense_train_indices,
    segment_test_indices,
    segment_train_indices,
)


def test_dense_train_covers_every_valid_start_and_nothing_else():
    # n=300, 8 x 16: span 113, valid starts 0..187
    generator = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(3000):
        indices = dense_train_indices(300, 8, 16, generator=generator)
        assert indices.tolist() == list(range(int(indices[0]), int(indices[0]) + 113, 16))
        starts.add(int(indices[0]))
    assert min(starts) == 0 and max(starts) == 187 and len(starts) > 180


def test_dense_train_on_exactly_one_span():
    assert dense_train_indices(113, 8, 16).tolist() == list(range(0, 113, 16))


@pytest.mark.parametrize("num_video_frames", [1, 5, 50])
def test_dense_short_videos_clamp_or_loop(num_video_frames):
    clamp = dense_train_indices(num_video_frames, 8, 16, out_of_bounds="clamp")
    loop = dense_train_indices(num_video_frames, 8, 16, out_of_bounds="loop")
    assert clamp.tolist() == [min(16 * k, num_video_frames - 1) for k in range(8)]
    assert loop.tolist() == [(16 * k) % num_video_frames for k in range(8)]
    tests = dense_test_indices(num_video_frames, 8, 16, num_clips=3)
    assert tests.shape == (3, 8) and (tests < num_video_frames).all()


def test_dense_test_positions():
    # one clip is centred: valid starts 0..187 (188 of them), centre start floor(0.5 * 188) = 94
    assert dense_test_indices(300, 8, 16, num_clips=1).tolist() == [list(range(94, 94 + 113, 16))]
    # three clips at the centres of three equal parts of the start range
    starts = dense_test_indices(300, 8, 16, num_clips=3)[:, 0].tolist()
    assert starts == [int((c + 0.5) * 188 / 3) for c in range(3)] == [31, 94, 156]


def test_segment_train_draws_one_frame_per_segment():
    generator = torch.Generator().manual_seed(0)
    seen = [set() for _ in range(8)]
    for _ in range(2000):
        indices = segment_train_indices(100, 8, generator=generator)
        for k, index in enumerate(indices.tolist()):
            assert (k * 100) // 8 <= index < ((k + 1) * 100) // 8
            seen[k].add(index)
    # every frame of every segment gets drawn
    assert all(len(s) == ((k + 1) * 100) // 8 - (k * 100) // 8 for k, s in enumerate(seen))


def test_segment_test_uses_segment_centres_and_spreads_clips():
    assert segment_test_indices(80, 8).tolist() == [[5, 15, 25, 35, 45, 55, 65, 75]]
    clips = segment_test_indices(80, 8, num_clips=2)
    assert clips.tolist() == [[2, 12, 22, 32, 42, 52, 62, 72], [7, 17, 27, 37, 47, 57, 67, 77]]


@pytest.mark.parametrize("num_video_frames", [1, 3, 7])
def test_segment_short_videos_repeat_frames_in_order(num_video_frames):
    expected = [(k * num_video_frames) // 8 for k in range(8)]
    assert segment_train_indices(num_video_frames, 8).tolist() == expected
    assert segment_test_indices(num_video_frames, 8, num_clips=2).tolist() == [expected, expected]


def test_sampler_indices_are_sorted_and_in_range_for_many_lengths():
    for sampling in ("dense", "segment"):
        sampler = FrameSampler(8, sampling, frame_stride=4)
        for n in range(1, 120, 7):
            for indices in [sampler.train(n), *sampler.test(n, num_clips=4)]:
                assert len(indices) == 8
                assert indices.min() >= 0 and indices.max() < n
                assert (indices[1:] >= indices[:-1]).all()


def test_sampler_is_reproducible_with_a_generator_or_the_global_seed():
    sampler = FrameSampler(8, "segment")
    a = sampler.train(300, torch.Generator().manual_seed(3))
    b = sampler.train(300, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    torch.manual_seed(5)
    c = sampler.train(300)
    torch.manual_seed(5)
    assert torch.equal(c, sampler.train(300))


def test_sampler_rejects_bad_settings():
    with pytest.raises(ValueError, match="sampling"):
        FrameSampler(8, "uniform")
    with pytest.raises(ValueError, match="frame_stride"):
        FrameSampler(8, "dense", frame_stride=0)
    with pytest.raises(ValueError, match="out_of_bounds"):
        FrameSampler(8, "dense", out_of_bounds="wrap")
    with pytest.raises(ValueError, match="0 frames"):
        FrameSampler(8).train(0)
