"""Shared pieces of the frame-order evidence (tests/test_frame_order.py, docs/frame_order.md).

`make_position_clip` makes the one position-aware stand-in CLIP that every class-token method
starts from: a tiny CLIP whose image tower was trained on single rendered frames (never whole
clips, never these videos) to draw a coarse map of where the bright object is. Its image
embedding therefore says where, how large and which way round the object is in a frame, as a
pretrained CLIP's does for real images; frame order is left for each method to learn.

`reversal_scores` evaluates a model on the validation clips of the frame-order pairs and on the
same clips played backwards (labels swapped to the pair's other member).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clipvideo.clip import create_clip
from clipvideo.data.synthetic import ALL_PAIRS, INDEPENDENT_PAIRS, TEMPORAL_PAIRS, render_motion_clip
from clipvideo.data.transforms import CLIP_MEAN, CLIP_STD

MAP_SIZE = 8  # the stand-in draws an 8x8 map of the object's coverage


def object_maps(frames: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) frames in [0, 1] -> (N, 8*8) coverage of the bright object per cell: where it
    is, how large, which way it points. Every moving object is painted with all channels >= 200;
    both backgrounds stay below 191."""
    mask = (frames.min(dim=1).values > 0.77).float()[:, None]  # (N, 1, H, W)
    return F.adaptive_avg_pool2d(mask, MAP_SIZE).flatten(1)


def make_position_clip(path, num_clips: int = 600, steps: int = 1200, size: int = 64, seed: int = 123) -> Path:
    """A tiny CLIP whose image embedding maps the object of single frames (CLIP normalisation).
    Frames come from every frame-order class of both synthetic sets, drawn with their own seed."""
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    names = [name for pair in (*TEMPORAL_PAIRS, *INDEPENDENT_PAIRS) for name in pair]
    clips = [render_motion_clip(names[i % len(names)], 8, size, size, rng) for i in range(num_clips)]
    frames = torch.from_numpy(np.concatenate(clips)).permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W)
    targets = object_maps(frames)
    mean, std = torch.tensor(CLIP_MEAN)[:, None, None], torch.tensor(CLIP_STD)[:, None, None]
    frames = (frames - mean) / std
    torch.manual_seed(seed)
    clip = create_clip("tiny")
    head = torch.nn.Linear(clip.config.embed_dim, MAP_SIZE * MAP_SIZE)
    optimizer = torch.optim.Adam([*clip.visual.parameters(), *head.parameters()], lr=1e-3)
    for _ in range(steps):
        batch = torch.randint(0, len(frames), (64,), generator=generator)
        loss = F.mse_loss(head(clip.visual(frames[batch])), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(clip.state_dict(), path)
    return path


def reversal_scores(model, dataset, class_names: list[str]) -> dict[str, float]:
    """On the clips of frame-order pair classes: accuracy as played ("forward"), accuracy on the
    same clips reversed with the pair's other label ("reversed"), and how often reversing changes
    the answer ("changed"). A model blind to frame order has forward + reversed <= 1 over a pair
    set balanced like these, and changed = 0."""
    other = {}
    for first, second in ALL_PAIRS:
        if first in class_names and second in class_names:
            other[class_names.index(first)] = class_names.index(second)
            other[class_names.index(second)] = class_names.index(first)
    items = [dataset[i][:2] for i in range(len(dataset))]  # (views, label)
    items = [(views[0], label) for views, label in items if label in other]  # one view per video
    clips = torch.stack([clip for clip, _ in items])  # (N, T, 3, H, W)
    labels = torch.tensor([label for _, label in items])
    swapped = torch.tensor([other[int(label)] for label in labels])
    model.eval()
    with torch.no_grad():
        forward = torch.cat([model(batch).argmax(dim=1) for batch in clips.split(16)])
        backward = torch.cat([model(batch.flip(1)).argmax(dim=1) for batch in clips.split(16)])
    return {"forward": (forward == labels).float().mean().item(),
            "reversed": (backward == swapped).float().mean().item(),
            "changed": (forward != backward).float().mean().item(),
            "videos": len(labels)}
