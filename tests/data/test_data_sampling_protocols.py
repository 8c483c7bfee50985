"""The official sampling protocols (``FrameSampler(protocol=...)``): indices worked out by hand
from the rules in /work/shared/reference/{evl,xclip,text4vis,aim,froster}.md (and the seeds'
code they describe). Each expected value carries its arithmetic."""

import pytest
import torch

from clipvideo.data import PROTOCOLS, FrameSampler


def draws(sampler: FrameSampler, n: int, times: int = 2000, **kwargs) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.stack([sampler.train(n, generator, **kwargs) for _ in range(times)])  # (times, T)


def support(column: torch.Tensor) -> list[int]:
    return sorted(set(column.tolist()))


# --------------------------------------------------------------------------------------------- EVL


def test_evl_test_views_touch_both_ends_and_one_view_is_centred():
    sampler = FrameSampler(8, "dense", 16, protocol="evl")
    # n=300, span = 7*16+1 = 113, slack = 300-113 = 187; 3 views: round(187/2*c) = 0, round(93.5)=94 (half
    # to even), 187; the last view ends at 187+112 = 299, the last frame
    assert sampler.test(300, 3)[:, 0].tolist() == [0, 94, 187]
    assert sampler.test(300, 3)[2].tolist() == [187, 203, 219, 235, 251, 267, 283, 299]
    # 4 views: 187/3 = 62.33 -> round(0)=0, round(62.33)=62, round(124.67)=125, round(187)=187
    assert sampler.test(300, 4)[:, 0].tolist() == [0, 62, 125, 187]
    # one view: slack // 2 = 93 (our default convention centres at 94)
    assert sampler.test(300, 1).tolist() == [[93, 109, 125, 141, 157, 173, 189, 205]]
    # n=301: slack 188, 3 views: 0, round(94.0)=94, 188
    assert sampler.test(301, 3)[:, 0].tolist() == [0, 94, 188]


def test_evl_test_short_video_repeats_the_last_frame():
    # n=50 < span 113: padded with frame 49, slack 0 -> every view starts at 0; 0,16,32,48 then 64.. -> 49
    expected = [0, 16, 32, 48, 49, 49, 49, 49]
    assert FrameSampler(8, "dense", 16, protocol="evl").test(50, 3).tolist() == [expected] * 3


def test_evl_train_short_video_repeats_the_previous_sampled_index():
    sampler = FrameSampler(8, "dense", 16, protocol="evl")
    # n=50 <= span: k*16 = 0,16,32,48 are < 50; 64 >= 50 -> previous index 48 (not the last frame 49)
    assert sampler.train(50).tolist() == [0, 16, 32, 48, 48, 48, 48, 48]
    # n=113 = span exactly: 0..112 every 16, all inside
    assert sampler.train(113).tolist() == list(range(0, 113, 16))


def test_evl_train_start_is_uniform_over_the_valid_starts():
    sampler = FrameSampler(8, "dense", 16, protocol="evl")
    clips = draws(sampler, 120)
    # n=120, span 113: randint(120 - 7*16) = 0..7; frames start + 16k
    assert support(clips[:, 0]) == list(range(8))
    assert torch.equal(clips, clips[:, :1] + 16 * torch.arange(8))


# ------------------------------------------------------------------------------------------ X-CLIP


def test_xclip_single_view_test_takes_float_segment_centres():
    sampler = FrameSampler(8, "segment", protocol="xclip")
    # n=30, T=8: tick 3.75, floor(3.75k + 1.875) = 1, 5.625->5, 9.375->9, 13.125->13, 16.875->16,
    # 20.625->20, 24.375->24, 28.125->28
    assert sampler.test(30, 1).tolist() == [[1, 5, 9, 13, 16, 20, 24, 28]]
    # n=5 < T: tick 0.625, floor(0.625k + 0.3125) = 0, 0.9375->0, 1.5625->1, 2.1875->2, 2.8125->2,
    # 3.4375->3, 4.0625->4, 4.6875->4
    assert sampler.test(5, 1).tolist() == [[0, 0, 1, 2, 2, 3, 4, 4]]


def test_xclip_train_uses_whole_segments_and_leaves_the_tail_unsampled():
    sampler = FrameSampler(8, "segment", protocol="xclip")
    clips = draws(sampler, 30)
    # n=30, T=8: seg = 30 // 8 = 3, frame k in [3k, 3k+2]; frames 24..29 minus the last segment's
    # 21..23 -> the tail 24..29 is never drawn
    for k in range(8):
        assert support(clips[:, k]) == [3 * k, 3 * k + 1, 3 * k + 2]
    assert clips.max() == 23


def test_xclip_train_short_video_rounds_half_to_even():
    # n=5, T=8: round(k * 0.625) = 0, round(0.625)=1, round(1.25)=1, round(1.875)=2, round(2.5)=2 (even),
    # round(3.125)=3, round(3.75)=4, round(4.375)=4
    assert FrameSampler(8, "segment", protocol="xclip").train(5).tolist() == [0, 1, 1, 2, 2, 3, 4, 4]
    # n=1: round(k/8) is 0 or 1 (k=7: 0.875 -> 1), wrapped modulo 1 -> all 0
    assert FrameSampler(8, "segment", protocol="xclip").train(1).tolist() == [0] * 8


def test_xclip_multi_clip_test_is_seeded_random_training_draws():
    sampler = FrameSampler(8, "segment", protocol="xclip")
    views = sampler.test(30, 4)
    assert views.shape == (4, 8)
    for k in range(8):  # each view is a training draw: frame k in [3k, 3k+2]
        assert all(3 * k <= int(v) <= 3 * k + 2 for v in views[:, k])
    assert torch.equal(views, sampler.test(30, 4))  # seeded: the same views every time
    assert len({tuple(v) for v in views.tolist()}) > 1  # ... and random draws, not copies


# ---------------------------------------------------------------------------------------- Text4Vis


def test_text4vis_test_clips_shift_segment_starts_by_linspace():
    sampler = FrameSampler(8, "segment", protocol="text4vis")
    # n=30, T=8: tick 3.75; 4 clips: linspace(0, 2.75, 4) = 0, 0.9167, 1.8333, 2.75 -> int 0, 0, 1, 2
    # clip start s: int(s + 3.75k) = s=0: 0,3,7,11,15,18,22,26; s=1: 1,4,8,12,16,19,23,27; s=2: 2,5,9,...
    assert sampler.test(30, 4).tolist() == [
        [0, 3, 7, 11, 15, 18, 22, 26],
        [0, 3, 7, 11, 15, 18, 22, 26],
        [1, 4, 8, 12, 16, 19, 23, 27],
        [2, 5, 9, 13, 17, 20, 24, 28],
    ]
    # one clip: the segment starts (Text4Vis's validation rule too)
    assert sampler.test(30, 1).tolist() == [[0, 3, 7, 11, 15, 18, 22, 26]]
    # n=5 < T: tick 0.625, linspace(0, -0.375, 2) = 0, -0.375 -> int 0, 0 (truncation);
    # int(0.625k) = 0,0,1,1,2,3,3,4
    assert sampler.test(5, 2).tolist() == [[0, 0, 1, 1, 2, 3, 3, 4]] * 2


def test_text4vis_train_one_random_frame_per_segment():
    clips = draws(FrameSampler(8, "segment", protocol="text4vis"), 30)
    # n=30: bounds floor(30k/8) = 0,3,7,11,15,18,22,26,30 -> segment k draws in [b_k, b_{k+1} - 1]
    bounds = [0, 3, 7, 11, 15, 18, 22, 26, 30]
    for k in range(8):
        assert support(clips[:, k]) == list(range(bounds[k], bounds[k + 1]))


def test_text4vis_train_short_video_keeps_every_frame_plus_random_extras():
    clips = draws(FrameSampler(8, "segment", protocol="text4vis"), 5, times=500)
    # n=5 <= T=8: frames 0..4 once each, plus 3 draws from 0..4, sorted
    for clip in clips.tolist():
        assert clip == sorted(clip) and set(clip) == {0, 1, 2, 3, 4}
    assert len({tuple(c) for c in clips.tolist()}) > 10


# --------------------------------------------------------------------------------------------- AIM


def test_aim_dense_test_starts_and_loop():
    sampler = FrameSampler(8, "dense", 16, protocol="aim")
    # n=300, span = 8*16 = 128 (MMAction2), avg = (300-128+1)/3 = 57.667; int(57.667c + 28.833) = 28, 86, 144
    assert sampler.test(300, 3)[:, 0].tolist() == [28, 86, 144]
    assert sampler.test(300, 3)[2].tolist() == [144, 160, 176, 192, 208, 224, 240, 256]
    # one clip: avg 173, int(86.5) = 86
    assert sampler.test(300, 1)[0, 0].tolist() == 86
    # n=100 < span 128 (and not > 127): every start 0; 112 wraps to 112 % 100 = 12
    assert sampler.test(100, 3).tolist() == [[0, 16, 32, 48, 64, 80, 96, 12]] * 3


def test_aim_dense_train():
    sampler = FrameSampler(8, "dense", 16, protocol="aim")
    clips = draws(sampler, 135)
    # n=135: randint(135 - 128 + 1) = 0..7
    assert support(clips[:, 0]) == list(range(8))
    assert torch.equal(clips, clips[:, :1] + 16 * torch.arange(8))
    # n=100 < 128: start 0, indices modulo 100
    assert sampler.train(100).tolist() == [0, 16, 32, 48, 64, 80, 96, 12]


def test_aim_uniform_segments():
    sampler = FrameSampler(8, "segment", protocol="aim")
    # n=30: seg = 29/8 = 3.625; bounds round(3.625k) = 0, 4 (3.625), 7 (7.25), 11 (10.875), 14 (14.5 -> even),
    # 18 (18.125), 22 (21.75), 25 (25.375), 29; test takes (lo+hi)//2
    bounds = [0, 4, 7, 11, 14, 18, 22, 25, 29]
    middles = [(bounds[k] + bounds[k + 1]) // 2 for k in range(8)]
    assert middles == [2, 5, 9, 12, 16, 20, 23, 27]
    assert sampler.test(30, 1).tolist() == [middles]
    clips = draws(sampler, 30)
    for k in range(8):  # inclusive at both ends: neighbouring segments share their boundary frame
        assert support(clips[:, k]) == list(range(bounds[k], bounds[k + 1] + 1))


# ----------------------------------------------------------------------------------------- FROSTER


def test_froster_test_clips_at_30_fps():
    sampler = FrameSampler(8, "dense", 16, protocol="froster")
    assert sampler.needs_fps
    # fps 30, 8 x 16: window L = ceil(16*7/30*30) = 112 frames, spread S = 16*8 = 128;
    # linspace(0, 127, 8) = 0, 18.14, 36.29, 54.43, 72.57, 90.71, 108.86, 127 -> clamp to m-1, truncate
    # n=300: max_start 188, starts 188*c/3 = 0, 62.67, 125.33; decoded: ceil(start) .. floor(start+111) + 1
    # c=0: frames 0..112 (m=113): 0,18,36,54,72,90,108,112
    # c=1: ceil(62.67)=63 .. floor(173.67)+1=174 (m=112): 63 + [0,18,36,54,72,90,108,111]
    # c=2: 126 .. floor(236.33)+1=237 (m=112): 126 + [0,18,...,108,111]
    # (the same as PySlowFast's PyAV decoder on a frame-numbered 30 fps video)
    assert sampler.test(300, 3, fps=30.0).tolist() == [
        [0, 18, 36, 54, 72, 90, 108, 112],
        [63, 81, 99, 117, 135, 153, 171, 174],
        [126, 144, 162, 180, 198, 216, 234, 237],
    ]


def test_froster_resamples_to_the_video_fps():
    sampler = FrameSampler(8, "dense", 16, protocol="froster")
    # fps 25: L = ceil(112/30*25) = ceil(93.33) = 94, S = 128/30*25 = 106.67;
    # linspace(0, 105.67, 8) = 0, 15.10, 30.19, 45.29, 60.38, 75.48, 90.57, 105.67
    # n=300: max_start 206; c=0 frames 0..93+1 (m=95) -> 0,15,30,45,60,75,90,94
    assert sampler.test(300, 1, fps=25.0).tolist() == [[0, 15, 30, 45, 60, 75, 90, 94]]
    # no fps (rawframes): taken as 30 fps
    assert sampler.test(300, 1).tolist() == [[0, 18, 36, 54, 72, 90, 108, 112]]
    # n=50 < L: max_start 0, frames 0..49 -> 0,18,36 then clamped to 49
    assert sampler.test(50, 2, fps=30.0).tolist() == [[0, 18, 36, 49, 49, 49, 49, 49]] * 2


def test_froster_train_random_float_start():
    sampler = FrameSampler(8, "dense", 16, protocol="froster")
    clips = draws(sampler, 114, fps=30.0)
    # n=114: max_start 114-112 = 2, start uniform in [0, 2] (a float, never exactly an integer here):
    # start in (0, 1) -> frames ceil(start)=1 .. floor(start+111)+1=112 (m=112); in (1, 2) -> 2..113 (m=112);
    # so the first frame is 1 or 2 and the last offset is clamped to m-1 = 111 (127 -> 111)
    assert support(clips[:, 0]) == [1, 2]
    offsets = clips - clips[:, :1]
    assert torch.equal(offsets, torch.tensor([0, 18, 36, 54, 72, 90, 108, 111]).expand(len(clips), 8))


# ---------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("protocol, sampling", [("evl", "segment"), ("xclip", "dense"), ("text4vis", "dense"),
                                                ("froster", "segment")])
def test_protocols_refuse_samplings_the_seed_does_not_define(protocol, sampling):
    with pytest.raises(ValueError, match=f"the '{protocol}' sampling protocol defines"):
        FrameSampler(8, sampling, 4, protocol=protocol)


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="sampling protocol must be one of"):
        FrameSampler(8, "dense", 4, protocol="mmaction")


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_every_protocol_stays_in_range_for_many_lengths(protocol):
    for sampling in PROTOCOLS[protocol]:
        sampler = FrameSampler(8, sampling, 4, protocol=protocol)
        generator = torch.Generator().manual_seed(1)
        for n in range(1, 90, 3):
            train = sampler.train(n, generator, fps=24.0) if sampler.needs_fps else sampler.train(n, generator)
            test = sampler.test(n, 3, fps=24.0) if sampler.needs_fps else sampler.test(n, 3)
            assert train.shape == (8,) and test.shape == (3, 8)
            for clip in [train, *test]:
                assert clip.dtype == torch.int64 and 0 <= int(clip.min()) and int(clip.max()) < n
