"""Clip transforms (same parameters for every frame) and the Mixup/CutMix collate."""

import pytest
import torch
import torchvision.transforms.v2 as v2

from clipvideo.data import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiScaleCrop,
    NormalizeClip,
    build_test_transform,
    build_train_transform,
    mixup_cutmix_collate,
    smooth_one_hot,
    soft_target_cross_entropy,
)


def still_clip(num_frames=4, height=60, width=80) -> torch.Tensor:
    """(T, 3, H, W) uint8: the same structured image in every frame."""
    torch.manual_seed(1)
    image = torch.randint(0, 256, (3, height // 4, width // 4), dtype=torch.uint8)
    image = torch.nn.functional.interpolate(image[None].float(), size=(height, width), mode="bilinear")[0]
    return image.round().to(torch.uint8).expand(num_frames, 3, height, width).clone()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"crop": "multiscale", "short_side": 56},
        {"crop": "random", "short_side": [40, 56]},
        {"crop": "random", "short_side": [48]},
        {"color_jitter": 1.0, "grayscale": 0.5, "randaugment": (4, 7)},
        {"randaugment": True, "flip": False, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    ],
)
def test_train_transform_treats_all_frames_alike(options):
    transform = build_train_transform(size=32, **options)
    clip = still_clip()
    outputs = [transform(clip) for _ in range(10)]
    for out in outputs:
        assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32 and out.is_contiguous()
        # identical input frames stay identical: one set of random parameters per clip
        assert all(torch.equal(out[0], out[t]) for t in range(1, 4))
    # ... and the parameters do change between calls
    assert any(not torch.equal(outputs[0], out) for out in outputs[1:])


def test_channels_last_input_from_the_decoder_gives_the_same_result():
    clip = still_clip()
    as_decoded = clip.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # (T, H, W, 3) memory
    transform = build_test_transform(size=32, short_side=40)
    assert torch.allclose(transform(clip), transform(as_decoded))


def test_flip_switch():
    clip = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).remainder(256).to(torch.uint8).view(2, 3, 8, 8)
    # a crop covering the whole frame (scale 1, aspect W/H) leaves flipping as the only change
    no_flip = build_train_transform(size=8, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    flip = build_train_transform(size=8, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=True)
    plain = NormalizeClip(CLIP_MEAN, CLIP_STD)(clip)
    assert all(torch.allclose(no_flip(clip), plain) for _ in range(20))
    outcomes = {torch.allclose(flip(clip), plain) for _ in range(40)}
    assert outcomes == {True, False}
    torch.manual_seed(0)
    flipped = [out for out in (flip(clip) for _ in range(40)) if not torch.allclose(out, plain)][0]
    assert torch.allclose(flipped, plain.flip(-1))


def test_normalize_clip_equals_todtype_plus_normalize():
    clip = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    reference = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(CLIP_MEAN), list(CLIP_STD))])
    assert torch.allclose(NormalizeClip(CLIP_MEAN, CLIP_STD)(clip), reference(clip), atol=1e-6)
    with pytest.raises(TypeError):
        NormalizeClip(CLIP_MEAN, CLIP_STD)(clip.float())


def test_multiscale_crop_uses_fixed_sizes_and_positions():
    crop = MultiScaleCrop(size=32)
    image = torch.zeros(1, 3, 64, 96, dtype=torch.uint8)
    lengths = [64, 56, 48, 42]  # int(64 * s) for s in (1, .875, .75, .66)
    seen_sizes, seen_positions = set(), set()
    for _ in range(400):
        params = crop.make_params([image])
        height, width = params["height"], params["width"]
        assert height in lengths and width in lengths
        assert abs(lengths.index(height) - lengths.index(width)) <= 1
        step_x, step_y = (96 - width) // 4, (64 - height) // 4
        corners = {(0, 0), (4 * step_x, 0), (0, 4 * step_y), (4 * step_x, 4 * step_y), (2 * step_x, 2 * step_y)}
        assert (params["left"], params["top"]) in corners
        seen_sizes.add((width, height))
        seen_positions.add((params["left"] == 0, params["top"] == 0))
    assert len(seen_sizes) == 10 and len(seen_positions) == 4
    assert crop(image).shape == (1, 3, 32, 32)


def test_test_transform_center_and_three_crops():
    clip = torch.arange(40 * 100).remainder(251).to(torch.uint8).view(1, 1, 40, 100).expand(2, 3, 40, 100).clone()
    normalize = NormalizeClip(CLIP_MEAN, CLIP_STD)
    center = build_test_transform(size=40, short_side=40)(clip)
    assert center.shape == (2, 3, 40, 40) and torch.allclose(center, normalize(clip[..., 30:70]))
    three = build_test_transform(size=40, crop="three")(clip)
    assert three.shape == (3, 2, 3, 40, 40)
    for crop, left in zip(three, (0, 30, 60)):  # left, centre, right
        assert torch.allclose(crop, normalize(clip[..., left:left + 40]))
    portrait = clip.transpose(-1, -2)  # (.., 100, 40): crops go top, centre, bottom
    three = build_test_transform(size=40, crop="three")(portrait)
    for crop, top in zip(three, (0, 30, 60)):
        assert torch.allclose(crop, normalize(portrait[..., top:top + 40, :]))
    # short side resized first: 40x100 -> 20x50 then centre 20
    assert build_test_transform(size=20, short_side=20)(clip).shape == (2, 3, 20, 20)
    with pytest.raises(ValueError):
        build_test_transform(size=40, short_side=30)
    with pytest.raises(ValueError):
        build_test_transform(crop="five")


def test_label_smoothing_values():
    targets = smooth_one_hot(torch.tensor([2, 0]), num_classes=4, smoothing=0.1)
    assert torch.allclose(targets[0], torch.tensor([0.025, 0.025, 0.925, 0.025]))
    assert torch.allclose(targets.sum(1), torch.ones(2))


def batch_of(num=4, num_classes=5):
    """Sample i is a clip filled with the value i (every frame alike)."""
    return [(torch.full((3, 3, 16, 16), float(i)), i % num_classes, 100 + i) for i in range(num)]


def test_collate_without_mixing_is_stack_plus_smoothing():
    collate = mixup_cutmix_collate(5, prob=0.0, label_smoothing=0.2)
    clips, targets, indices = collate(batch_of())
    assert clips.shape == (4, 3, 3, 16, 16) and indices.tolist() == [100, 101, 102, 103]
    assert torch.equal(clips[:, 0, 0, 0, 0], torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert torch.allclose(targets, smooth_one_hot(torch.tensor([0, 1, 2, 3]), 5, 0.2))


def test_mixup_blends_clips_and_targets_with_the_same_lambda():
    collate = mixup_cutmix_collate(5, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    clips, targets, _ = collate(batch_of())
    lam = 1 - float(clips[0, 0, 0, 0, 0]) / 3  # sample 0 (value 0) mixed with sample 3 (value 3)
    assert torch.allclose(clips[0], torch.full_like(clips[0], 3 * (1 - lam)))
    assert torch.allclose(targets[0], torch.tensor([lam, 0, 0, 1 - lam, 0]), atol=1e-6)
    assert torch.allclose(targets.sum(1), torch.ones(4))


def test_cutmix_pastes_one_box_in_every_frame_and_matches_the_target():
    collate = mixup_cutmix_collate(5, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0)
    for _ in range(10):
        clips, targets, _ = collate(batch_of())
        pasted = clips[0] == 3.0  # sample 0 receives pixels of sample 3
        assert all(torch.equal(pasted[0], pasted[t]) for t in range(3))  # same box in every frame
        fraction = pasted[0, 0].float().mean()
        assert torch.allclose(targets[0, 3], fraction, atol=1e-6)
        assert torch.allclose(targets[0, 0], 1 - fraction, atol=1e-6)


def test_multi_hot_targets_are_mixed_without_smoothing():
    collate = mixup_cutmix_collate(4, prob=0.0, label_smoothing=0.1)
    batch = [(torch.zeros(2, 3, 4, 4), torch.tensor([1.0, 0, 1, 0]), 0),
             (torch.zeros(2, 3, 4, 4), torch.tensor([0, 1.0, 0, 0]), 1)]
    _, targets, _ = collate(batch)
    assert torch.equal(targets, torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]]))


def test_soft_target_cross_entropy_equals_cross_entropy_for_one_hot():
    logits = torch.randn(6, 5)
    labels = torch.randint(0, 5, (6,))
    one_hot = smooth_one_hot(labels, 5, 0.0)
    assert torch.allclose(soft_target_cross_entropy(logits, one_hot), torch.nn.functional.cross_entropy(logits, labels))


def test_collate_needs_an_alpha():
    with pytest.raises(ValueError):
        mixup_cutmix_collate(5, mixup_alpha=0.0, cutmix_alpha=0.0)


def test_random_short_side_draws_round_uniform_per_clip():
    from clipvideo.data import RandomShortSide

    clip = torch.zeros(3, 3, 60, 80, dtype=torch.uint8)
    jitter = RandomShortSide(40, 44)
    torch.manual_seed(0)
    sizes = [tuple(jitter(clip).shape[-2:]) for _ in range(400)]
    # round(uniform(40, 44)): short side 40..44, long side floor(80 / 60 * short)
    assert sorted(set(sizes)) == [(s, int(80 * s / 60)) for s in range(40, 45)]
    # the end points get half the mass of the inner sizes (PySlowFast's round(uniform))
    counts = {s: sum(1 for h, _ in sizes if h == s) for s in range(40, 45)}
    assert counts[40] < counts[42] and counts[44] < counts[42]
    with pytest.raises(ValueError, match="low <= high"):
        RandomShortSide(56, 40)


def test_train_resize_then_random_crop_keeps_pixels_unscaled():
    # a fixed short side equal to the frame's, then a plain crop: the output is a window of the input
    clip = torch.arange(40 * 50).remainder(251).to(torch.uint8).view(1, 1, 40, 50).expand(2, 3, 40, 50).clone()
    transform = build_train_transform(size=32, short_side=[40], crop="random", flip=False)
    normalize = NormalizeClip(CLIP_MEAN, CLIP_STD)
    torch.manual_seed(0)
    out = transform(clip)
    windows = [normalize(clip[..., top:top + 32, left:left + 32]) for top in range(9) for left in range(19)]
    assert any(torch.equal(out, window) for window in windows)


def test_train_transform_rejects_unknown_crop_and_bad_short_side():
    with pytest.raises(ValueError, match="crop must be one of"):
        build_train_transform(size=32, crop="center")
    with pytest.raises(ValueError, match="one size or a \\[low, high\\] range"):
        build_train_transform(size=32, short_side=[200, 224, 256])


# ---------------------------------------------------------------------------------------------
# data.augment_on: device -- the same augmentation, split between the workers and the device


def _pattern_clip(num_frames: int = 2) -> torch.Tensor:
    """A clip with structure every augmentation changes: gradients, a bright left-side block, colour."""
    y, x = torch.meshgrid(torch.arange(96.0), torch.arange(128.0), indexing="ij")
    image = torch.stack([x * 2, y * 2.5, 255 - x - y / 2]).clamp(0, 255)
    image[:, 20:60, 10:40] = torch.tensor([250.0, 40.0, 90.0])[:, None, None]
    return image.to(torch.uint8).expand(num_frames, 3, 96, 128).contiguous()


def _clip_statistics(clips: torch.Tensor) -> torch.Tensor:
    """(N, T, 3, S, S) float -> (N, 6): per-channel means, overall std, left-minus-right mean, frame-0 mean."""
    half = clips.shape[-1] // 2
    return torch.stack([*clips.mean(dim=(1, 3, 4)).T, clips.std(dim=(1, 2, 3, 4)),
                        clips[..., :half].mean(dim=(1, 2, 3, 4)) - clips[..., half:].mean(dim=(1, 2, 3, 4))], dim=1)


@pytest.fixture
def one_thread():
    """Many small ops: one thread avoids the scheduler stalls of 2 threads on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_device_augmentation_draws_from_the_same_distributions_as_the_worker_path(one_thread):
    """Kolmogorov-Smirnov on per-clip statistics of 300 clips each way: flip (left-right balance),
    colour jitter and grayscale (channel means), RandAugment and the crop (std)."""
    from scipy.stats import ks_2samp

    options = dict(size=32, scale=(0.3, 1.0), flip=True, color_jitter=0.8, grayscale=0.2, randaugment=(2, 9))
    clip = _pattern_clip()
    torch.manual_seed(0)
    worker = build_train_transform(**options)
    one_piece = torch.stack([worker(clip) for _ in range(300)])
    geometry, device = build_train_transform(**options, on_device=True)
    torch.manual_seed(1)
    cropped = torch.stack([geometry(clip) for _ in range(300)])
    assert cropped.dtype == torch.uint8 and cropped.shape == (300, 2, 3, 32, 32)
    split = torch.cat([device(batch) for batch in cropped.split(16)])
    assert split.dtype == torch.float32 and split.shape == one_piece.shape
    a, b = _clip_statistics(one_piece), _clip_statistics(split)
    for column in range(a.shape[1]):
        result = ks_2samp(a[:, column].numpy(), b[:, column].numpy())
        assert result.pvalue > 1e-3, (column, result)
    # The test can fail: without its RandAugment and jitter, the device half draws another distribution.
    plain = build_train_transform(size=32, scale=(0.3, 1.0), flip=True, on_device=True)[1]
    other = _clip_statistics(torch.cat([plain(batch) for batch in cropped.split(16)]))
    assert min(ks_2samp(a[:, c].numpy(), other[:, c].numpy()).pvalue for c in range(a.shape[1])) < 1e-6


def test_device_augmentation_draws_per_clip_and_treats_frames_alike(one_thread):
    geometry, device = build_train_transform(size=48, flip=True, randaugment=(2, 9), on_device=True)
    torch.manual_seed(0)
    clips = torch.stack([geometry(_pattern_clip(3)) for _ in range(16)])
    out = device(clips)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])  # one draw per clip
    same_input = device(clips[:1].expand(16, -1, -1, -1, -1).contiguous())
    assert len({tuple(v.flatten()[:64].tolist()) for v in same_input[:, 0]}) > 4  # not one draw per batch
    with pytest.raises(TypeError, match="uint8"):
        device(out)


def test_mixing_on_the_device_equals_mixing_in_the_collate():
    from clipvideo.data import mixup_cutmix_collate

    batch = [(torch.rand(2, 3, 8, 8), label, index) for index, label in enumerate([0, 1, 2, 1])]
    torch.manual_seed(3)
    in_collate = mixup_cutmix_collate(3, 0.8, 1.0, 0.1)(batch)
    torch.manual_seed(3)
    later = mixup_cutmix_collate(3, 0.8, 1.0, 0.1, in_collate=False)
    clips, targets, _ = later(batch)
    assert torch.equal(clips, torch.stack([b[0] for b in batch]))  # not mixed yet
    mixed = later.mix(clips, targets)
    assert torch.equal(mixed[0], in_collate[0]) and torch.equal(mixed[1], in_collate[1])
