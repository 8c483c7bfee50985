"""Seeded per-class subsets of a video list: few-shot training lists and the LDA sample.

One rule everywhere (``clipvideo fewshot``, ``clipvideo fewshot-lists``, Text4Vis' LDA classifier):
one ``random.Random(seed)``; classes in increasing label order, each draws ``rng.sample`` of its
videos in list order; the chosen videos keep list order. The same seed gives the same subset on
every process and every run (the official Text4Vis draw is unseeded and differs per GPU).

Text4Vis repeats its K-shot list ``floor(N / (K x C))`` times, N the full list's length, so that a
few-shot epoch has about as many steps as a full one (official ``train.py``, ``data.shot``);
X-CLIP and ViFi-CLIP train on the K-shot list as drawn. ``repeat_to_full_epoch`` does the former.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from .annotations import AnnotationError, VideoRecord, read_video_list


def sample_per_class(labels: list[int], per_class: int, seed: int, allow_fewer: bool = False) -> list[int]:
    """Positions of `per_class` items of each label (sorted). A class with fewer items is an error,
    or with `allow_fewer` gives all of them (the LDA sample: "up to 60 videos per class")."""
    if per_class < 1:
        raise AnnotationError(f"videos per class (--shots) must be positive, got {per_class}")
    by_class: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_class.setdefault(label, []).append(position)
    rng = random.Random(seed)
    chosen = []
    for label in sorted(by_class):
        positions = by_class[label]
        if len(positions) < per_class and not allow_fewer:
            raise AnnotationError(f"class {label} has {len(positions)} videos in the list, fewer than --shots {per_class}")
        chosen.extend(rng.sample(positions, min(per_class, len(positions))))
    return sorted(chosen)


def few_shot_sample(records: list[VideoRecord], shots: int, seed: int) -> list[VideoRecord]:
    """K videos per class of a parsed list (`sample_per_class`), in list order."""
    return [records[p] for p in sample_per_class([r.label for r in records], shots, seed)]


def repeat_to_full_epoch(chosen: list, full_length: int) -> list:
    """The chosen items repeated floor(full_length / len(chosen)) times (at least once), as Text4Vis does."""
    return list(chosen) * max(1, full_length // max(1, len(chosen)))


def few_shot_list_name(list_file: str | os.PathLike, shots: int, seed: int) -> str:
    return f"{Path(list_file).stem}_{shots}shot_seed{seed}.txt"


def write_few_shot_lists(list_file: str | os.PathLike, shots: list[int], seeds: list[int], out_dir: str | os.PathLike,
                         rawframes: bool = False, separator: str | None = None,
                         repeat: bool = False) -> list[Path]:
    """One list per (K, seed): ``<out_dir>/<list stem>_<K>shot_seed<S>.txt``, lines as in the source;
    with `repeat` the draw is repeated to the full list's length (`repeat_to_full_epoch`)."""
    records = read_video_list(list_file, rawframes=rawframes, separator=separator)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sep = separator or " "
    written = []
    for k in shots:
        for seed in seeds:
            chosen = few_shot_sample(records, k, seed)
            if repeat:
                chosen = repeat_to_full_epoch(chosen, len(records))
            lines = [sep.join([r.path] + ([str(r.num_frames)] if rawframes else []) + [str(label) for label in r.labels])
                     for r in chosen]
            path = out_dir / few_shot_list_name(list_file, k, seed)
            path.write_text("\n".join(lines) + "\n")
            written.append(path)
    return written


__all__ = ["few_shot_list_name", "few_shot_sample", "repeat_to_full_epoch", "sample_per_class", "write_few_shot_lists"]
