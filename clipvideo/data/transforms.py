"""Clip transforms (torchvision.transforms.v2) and batch-level Mixup/CutMix.

Every transform takes a uint8 clip ``(T, 3, H, W)`` and draws *one* set of random parameters per
call, so all frames of a clip get the same crop, flip, colour change and RandAugment ops (v2
treats the leading T dimension as a batch). Train transforms return float ``(T, 3, S, S)``; test
transforms return ``(T, 3, S, S)`` for one crop and ``(3, T, 3, S, S)`` for three crops.

Seed conventions these options reproduce:

- EVL: RandomResizedCrop on the full frame, no flip, optional RandAugment, CLIP statistics.
- X-CLIP: short side 256/224*S, multi-scale fixed-position crop, flip, colour jitter p=0.8,
  grayscale p=0.2, **ImageNet** statistics. (X-CLIP jitters each frame with its own factors; we
  use one set per clip.)
- Text4Vis: short side 256, RandomResizedCrop, flip, grayscale p=0.2, CLIP statistics.
- AIM: short side 256, RandomResizedCrop, flip (off for SSv2), RandAugment(4, 7) on SSv2.
- FROSTER: random short side in [224, 256] then a random 224 crop, flip.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torchvision.transforms.v2 as v2
import torchvision.transforms.v2.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MultiScaleCrop(v2.Transform):
    """TSN/X-CLIP multi-scale crop: crop width and height are each ``short_side * s`` for ``s`` in
    ``scales`` (the two scale choices at most ``max_distort`` apart), placed at one of five fixed
    positions (four corners, centre), then resized to ``size x size``."""

    def __init__(self, size: int, scales=(1.0, 0.875, 0.75, 0.66), max_distort: int = 1):
        super().__init__()
        self.size = size
        self.scales = tuple(scales)
        self.max_distort = max_distort

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = F.get_size(flat_inputs[0])
        base = min(height, width)
        # sizes within 3 px of the output size snap to it, as in TSN
        lengths = [self.size if abs(int(base * s) - self.size) < 3 else int(base * s) for s in self.scales]
        pairs = [
            (crop_w, crop_h)
            for i, crop_h in enumerate(lengths)
            for j, crop_w in enumerate(lengths)
            if abs(i - j) <= self.max_distort
        ]
        crop_w, crop_h = pairs[int(torch.randint(len(pairs), ()))]
        crop_w, crop_h = min(crop_w, width), min(crop_h, height)
        step_x, step_y = (width - crop_w) // 4, (height - crop_h) // 4
        positions = [(0, 0), (4 * step_x, 0), (0, 4 * step_y), (4 * step_x, 4 * step_y), (2 * step_x, 2 * step_y)]
        left, top = positions[int(torch.randint(len(positions), ()))]
        return dict(top=top, left=left, height=crop_h, width=crop_w)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resized_crop, inpt, **params, size=[self.size, self.size], antialias=True)


class RandomShortSide(v2.Transform):
    """Resize so the short side is ``round(uniform(low, high))``, drawn once per clip (PySlowFast's
    scale jitter, FROSTER's [224, 256]); the long side keeps the aspect ratio (truncated)."""

    def __init__(self, low: int, high: int):
        super().__init__()
        if not 0 < low <= high:
            raise ValueError(f"short side range must be 0 < low <= high, got [{low}, {high}]")
        self.low, self.high = low, high

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return dict(size=round(self.low + (self.high - self.low) * float(torch.rand(()))))

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, size=params["size"], antialias=True)

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


class NormalizeClip(v2.Transform):
    """uint8 -> float32 ``(x / 255 - mean) / std`` in one in-place pass over a fresh float copy;
    same result as ``ToDtype(float32, scale=True)`` + ``Normalize`` at a fifth of the time."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.mean, self.std = tuple(mean), tuple(std)
        mean, std = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        self.scale = (1.0 / (255.0 * std)).view(3, 1, 1)
        self.shift = (-mean / std).view(3, 1, 1)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if inpt.dtype != torch.uint8:
            raise TypeError(f"NormalizeClip expects uint8 frames, got {inpt.dtype}")
        # contiguous output: decoded frames arrive channels-last, and model code may .view() them
        return inpt.to(torch.float32, memory_format=torch.contiguous_format).mul_(self.scale).add_(self.shift)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


def _normalize(mean, std) -> list[v2.Transform]:
    return [NormalizeClip(mean, std)]


TRAIN_CROPS = ("random_resized", "random", "multiscale")


def _train_steps(size, scale, ratio, short_side, crop, flip, color_jitter, grayscale, randaugment):
    """(geometry, photometric) steps of the train transform; both uint8 -> uint8."""
    if crop not in TRAIN_CROPS:
        raise ValueError(f"crop must be one of {TRAIN_CROPS}, got {crop!r}")
    geometry: list[v2.Transform] = []
    sides = [] if short_side is None else [short_side] if isinstance(short_side, int) else list(short_side)
    if len(sides) == 1:
        geometry.append(v2.Resize(sides[0], antialias=True))
    elif len(sides) == 2:
        geometry.append(RandomShortSide(sides[0], sides[1]))
    elif sides:
        raise ValueError(f"short_side must be one size or a [low, high] range, got {short_side!r}")
    if crop == "multiscale":
        geometry.append(MultiScaleCrop(size))
    elif crop == "random":
        geometry.append(v2.RandomCrop(size, pad_if_needed=True))
    else:
        geometry.append(v2.RandomResizedCrop(size, scale=scale, ratio=ratio, antialias=True))
    photometric: list[v2.Transform] = []
    if flip:
        photometric.append(v2.RandomHorizontalFlip(p=0.5))
    if color_jitter > 0:
        photometric.append(v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=color_jitter))
    if grayscale > 0:
        photometric.append(v2.RandomGrayscale(p=grayscale))
    if randaugment is True:
        randaugment = (4, 7)
    if randaugment:
        num_ops, magnitude = randaugment
        # 11 bins make ``magnitude`` index the 0..10 scale directly
        photometric.append(v2.RandAugment(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=11))
    return geometry, photometric


def build_train_transform(
    size: int = 224,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    short_side: int | Sequence[int] | None = None,
    crop: str = "random_resized",
    flip: bool = True,
    color_jitter: float = 0.0,
    grayscale: float = 0.0,
    randaugment: bool | tuple[int, int] | None = None,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    on_device: bool = False,
):
    """Train-time transform: uint8 ``(T, 3, H, W)`` -> normalised float ``(T, 3, size, size)``.

    ``short_side`` resizes the frames first: None or ``[]`` keeps them, ``256`` or ``[256]`` sets
    the short side (Text4Vis/AIM 256, X-CLIP ``int(256 / 224 * size)``), ``[224, 256]`` draws it
    per clip as ``round(uniform(224, 256))`` (FROSTER/PySlowFast, :class:`RandomShortSide`).
    ``crop`` (one of ``TRAIN_CROPS``):
      * ``"random_resized"``: RandomResizedCrop with area ``scale`` and aspect ``ratio``;
      * ``"random"``: a ``size x size`` crop at a random place (padded if the frame is smaller);
      * ``"multiscale"``: :class:`MultiScaleCrop` (X-CLIP, TSN).
    ``flip``: horizontal flip with p=0.5; turn it off where left/right matters (SSv2).
    ``color_jitter``/``grayscale``: probabilities of ColorJitter(0.4, 0.4, 0.2, 0.1) and of grayscale.
    ``randaugment=(num_ops, magnitude)`` with magnitude on the 0-10 scale of timm and MMAction2;
    ``True`` means (4, 7), the setting of EVL and of AIM on SSv2.

    ``on_device=True`` splits the same steps in two and returns ``(worker, device)``: ``worker``
    (resize and crop: uint8 ``(T, 3, size, size)``) runs in the DataLoader workers, and ``device``
    (:class:`BatchAugment`: flip, colour, RandAugment, normalisation) runs on whole uint8 batches
    where the model runs. Each clip still draws its own parameters from the same distributions.
    """
    geometry, photometric = _train_steps(size, scale, ratio, short_side, crop, flip, color_jitter, grayscale,
                                         randaugment)
    if on_device:
        return v2.Compose(geometry), BatchAugment(photometric, mean, std)
    return v2.Compose(geometry + photometric + _normalize(mean, std))


class BatchAugment:
    """The photometric half of the train transform on a batch, on any device: uint8
    ``(B, T, 3, S, S)`` -> normalised float32. Each clip draws its own flip, colour and RandAugment
    parameters (the same for all its frames), as in the worker path; normalisation is one batched op."""

    def __init__(self, steps: Sequence[v2.Transform], mean: Sequence[float], std: Sequence[float]):
        self.per_clip = v2.Compose(list(steps)) if steps else None
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dtype != torch.uint8:
            raise TypeError(f"BatchAugment expects uint8 clips (data.augment_on: device), got {clips.dtype}")
        if self.per_clip is not None:
            clips = torch.stack([self.per_clip(clip) for clip in clips])
        scale = 1.0 / (255.0 * self.std.to(clips.device))
        shift = -self.mean.to(clips.device) / self.std.to(clips.device)
        return clips.to(torch.float32, memory_format=torch.contiguous_format).mul_(scale).add_(shift)

    def __repr__(self) -> str:
        return f"BatchAugment({self.per_clip}, mean={tuple(self.mean.flatten().tolist())})"


class TestTransform:
    """Deterministic test views: resize the short side to ``short_side`` (default ``size``), then
    a centre ``size`` crop -> ``(T, 3, S, S)``, or ``crop="three"``: three ``size`` crops along the
    long side (left/top, centre, right/bottom) -> ``(3, T, 3, S, S)``."""

    def __init__(
        self,
        size: int = 224,
        short_side: int | None = None,
        crop: str = "center",
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
    ):
        if crop not in ("center", "three"):
            raise ValueError(f"crop must be 'center' or 'three', got {crop!r}")
        self.size = size
        self.short_side = short_side or size
        if self.short_side < size:
            raise ValueError(f"short_side {self.short_side} is smaller than the crop size {size}")
        self.crop = crop
        self.num_crops = 1 if crop == "center" else 3
        self.normalize = v2.Compose(_normalize(mean, std))

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        clip = F.resize(clip, self.short_side, antialias=True)
        if self.crop == "center":
            return self.normalize(F.center_crop(clip, [self.size, self.size]))
        height, width = clip.shape[-2:]
        if width >= height:  # three crops along the width, vertically centred
            top = (height - self.size) // 2
            boxes = [(top, left) for left in (0, (width - self.size) // 2, width - self.size)]
        else:
            left = (width - self.size) // 2
            boxes = [(top, left) for top in (0, (height - self.size) // 2, height - self.size)]
        crops = [F.crop(clip, top, left, self.size, self.size) for top, left in boxes]
        return self.normalize(torch.stack(crops))  # (3, T, 3, S, S)

    def __repr__(self) -> str:
        return f"TestTransform(size={self.size}, short_side={self.short_side}, crop={self.crop!r})"


def build_test_transform(
    size: int = 224,
    short_side: int | None = None,
    crop: str = "center",
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> TestTransform:
    """See :class:`TestTransform`. EVL/AIM/FROSTER test with ``short_side=size``; X-CLIP's and
    Text4Vis's single crop use ``short_side=int(256 / 224 * size)`` (256 at 224)."""
    return TestTransform(size, short_side, crop, mean, std)


# ---------------------------------------------------------------------------------------------
# Mixup / CutMix as a collate step
# ---------------------------------------------------------------------------------------------


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """(B,) int -> (B, K) float: ``1 - smoothing + smoothing / K`` on the label, ``smoothing / K``
    elsewhere."""
    off = smoothing / num_classes
    targets = torch.full((len(labels), num_classes), off)
    targets.scatter_(1, labels[:, None], 1.0 - smoothing + off)
    return targets


class MixupCutmixCollate:
    """Collate ``(clip, label, index)`` samples into ``(clips (B, T, 3, H, W), targets (B, K),
    indices (B,))`` with Mixup or CutMix and label smoothing, as X-CLIP/timm do.

    With probability ``prob`` the batch is mixed with its reverse (sample i with sample B-1-i):
    CutMix with probability ``switch_prob`` (when both alphas are positive), else Mixup. Mixup
    blends whole clips with lambda ~ Beta(mixup_alpha, mixup_alpha); CutMix pastes one box, the
    same in every frame, with side ratio sqrt(1 - lambda), and lambda is then set to the pasted
    area's complement. Targets get the same lambda. Multi-hot labels (float (K,) tensors) are
    mixed without smoothing. Use ``soft_target_cross_entropy`` (or ``F.cross_entropy`` with
    probability targets) as the loss.
    """

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        label_smoothing: float = 0.1,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        in_collate: bool = True,
    ):
        if mixup_alpha <= 0 and cutmix_alpha <= 0 and prob > 0:
            raise ValueError("set mixup_alpha or cutmix_alpha > 0, or prob=0 for label smoothing only")
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.label_smoothing = label_smoothing
        self.prob = prob
        self.switch_prob = switch_prob
        self.in_collate = in_collate

    def targets(self, labels: list) -> torch.Tensor:
        if isinstance(labels[0], torch.Tensor) and labels[0].ndim == 1:  # multi-hot
            return torch.stack(labels).float()
        return smooth_one_hot(torch.as_tensor(labels), self.num_classes, self.label_smoothing)

    def __call__(self, batch: list[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        clips = torch.stack([sample[0] for sample in batch])  # (B, T, 3, H, W)
        targets = self.targets([sample[1] for sample in batch])  # (B, K)
        indices = torch.as_tensor([sample[2] for sample in batch])
        if not self.in_collate:  # data.augment_on: device -- mixed after the batch augmentation, there
            return clips, targets, indices
        clips, targets = self.mix(clips, targets)
        return clips, targets, indices

    def mix(self, clips: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a float batch (B, T, 3, H, W) and its (B, K) targets, on whatever device they are."""
        if torch.rand(()) >= self.prob:
            return clips, targets
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or torch.rand(()) < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        partner = clips.flip(0)
        if use_cutmix:
            height, width = clips.shape[-2:]
            cut = math.sqrt(1.0 - lam)
            cut_h, cut_w = int(height * cut), int(width * cut)
            cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
            top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
            left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
            clips = clips.clone()
            clips[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        else:
            clips = clips * lam + partner * (1.0 - lam)
        return clips, targets * lam + targets.flip(0) * (1.0 - lam)


def mixup_cutmix_collate(
    num_classes: int,
    mixup_alpha: float = 0.8,
    cutmix_alpha: float = 1.0,
    label_smoothing: float = 0.1,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    in_collate: bool = True,
) -> MixupCutmixCollate:
    """A DataLoader ``collate_fn`` doing Mixup/CutMix with label smoothing; see
    :class:`MixupCutmixCollate`. X-CLIP's setting is the default. ``in_collate=False``: the collate
    only stacks and smooths the targets, and ``.mix`` runs later on the batch (device augmentation)."""
    return MixupCutmixCollate(num_classes, mixup_alpha, cutmix_alpha, label_smoothing, prob, switch_prob, in_collate)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_k targets * log_softmax(logits)``; (B, K) each."""
    return torch.sum(-targets * torch.log_softmax(logits, dim=-1), dim=-1).mean()
