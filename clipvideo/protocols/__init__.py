"""The evaluation protocols' data: class lists, split lists and descriptions shipped with clipvideo.

Every file in this folder is copied from a public release; ``PROVENANCE.md`` names the repository,
path and commit of each. The files are data only. Labels in a list index the class file named
beside it (``<path> <label>`` lines, paths relative to the dataset's video folder).

- ``classes/<dataset>.csv``: the full vocabularies (id,name) of kinetics400, kinetics600, ucf101,
  hmdb51, ssv2 and activitynet. ``hmdb51.csv`` follows the official alphabetical order that the lists
  use; ``hmdb51_upstream.csv`` is X-CLIP/ViFi-CLIP's copy (ids 20/21 and 44/45 swapped), kept for
  reproducing their published numbers (``b2n/hmdb51/*_classes_upstream.csv`` likewise).
- ``kinetics600/new220_classes.csv``: the 220 Kinetics-600 classes absent from Kinetics-400 (ER-ZSAR);
  ``zs_split{1,2,3}_classes.csv`` / ``zs_split{1,2,3}_test.txt``: the three subsets of 160 of them
  and their test videos (X-CLIP, Text4Vis, ViFi-CLIP, FROSTER all use these).
- ``ucf101/test_split{1,2,3}.txt``, ``hmdb51/test_split{1,2,3}.txt``: the official test splits.
- ``{ucf101,hmdb51,ssv2}/fewshot_vifi_k{2,4,8,16}.txt``: ViFi-CLIP's K-shot draws from train split 1.
- ``b2n/<dataset>/``: base-to-novel (ViFi-CLIP / FROSTER): ``base_classes.csv``, ``novel_classes.csv``,
  ``train_s{1,2,3}.txt`` (16 clips per base class), ``base_test.txt``, ``novel_test.txt``.
- ``descriptions/*.json``: FROSTER's rephrased class descriptions (``{"0": "Name: description"}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import vocabulary

ROOT = Path(__file__).resolve().parent

ZERO_SHOT_DATASETS = ("ucf101", "hmdb51", "k600", "kinetics400", "activitynet", "custom")
B2N_DATASETS = ("kinetics400", "hmdb51", "ucf101", "ssv2")


class ProtocolError(ValueError):
    """A protocol was asked for something that does not exist; the message is one line."""


def path(relative: str) -> Path:
    """A shipped file, e.g. ``path("b2n/hmdb51/base_classes.csv")``."""
    found = ROOT / relative
    if not found.is_file():
        raise ProtocolError(f"{relative}: not a shipped protocol file (see {ROOT / 'PROVENANCE.md'})")
    return found


def canonical(dataset: str) -> str:
    """One vocabulary with the zoo (clipvideo/vocabulary.py): k400 = kinetics400."""
    return vocabulary.canonical(dataset)


def class_file(dataset: str) -> Path:
    """The full vocabulary of a dataset: kinetics400 | kinetics600 | ucf101 | hmdb51 | ssv2 | activitynet."""
    name = canonical(dataset)
    found = ROOT / "classes" / f"{name}.csv"
    if not found.is_file():
        known = sorted(p.stem for p in (ROOT / "classes").glob("*.csv") if not p.stem.endswith("_upstream"))
        raise ProtocolError(f"unknown dataset {dataset!r} for class names; shipped: {', '.join(known)}")
    return found


@dataclass
class Split:
    """One (list, vocabulary) pair a protocol scores: videos of `list_file`, labels index `class_file`."""

    name: str
    list_file: Path
    class_file: Path


@dataclass
class ZeroShotDataset:
    """What `clipvideo zeroshot --dataset NAME` evaluates besides the user's full list."""

    name: str
    class_file: Path
    splits: list[Split] = field(default_factory=list)  # averaged as mean +- std
    split_kind: str = ""  # what the splits are, for the report


def zero_shot_dataset(dataset: str) -> ZeroShotDataset:
    name = canonical(dataset)
    if name in ("ucf101", "hmdb51"):
        splits = [Split(f"test split {s}", path(f"{name}/test_split{s}.txt"), class_file(name)) for s in (1, 2, 3)]
        return ZeroShotDataset(name, class_file(name), splits, "the three official test splits")
    if name == "kinetics600":
        splits = [Split(f"subset {s}", path(f"kinetics600/zs_split{s}_test.txt"), path(f"kinetics600/zs_split{s}_classes.csv"))
                  for s in (1, 2, 3)]
        return ZeroShotDataset(name, class_file(name), splits, "3 subsets of 160 of the 220 classes new in K600")
    if name in ("kinetics400", "activitynet"):
        return ZeroShotDataset(name, class_file(name))  # full and half classes on the user's list
    raise ProtocolError(f"--dataset: unknown dataset {dataset!r}; choose one of {', '.join(ZERO_SHOT_DATASETS)}")


@dataclass
class BaseToNovel:
    name: str
    base_classes: Path
    novel_classes: Path
    train_lists: list[Path]  # 3 training splits, 16 clips per base class
    base_test: Path
    novel_test: Path


def base_to_novel(dataset: str) -> BaseToNovel:
    name = canonical(dataset)
    if name not in B2N_DATASETS:
        raise ProtocolError(f"--dataset: no base-to-novel split for {dataset!r}; choose one of {', '.join(B2N_DATASETS)} or custom")
    folder = f"b2n/{name}"
    return BaseToNovel(name, path(f"{folder}/base_classes.csv"), path(f"{folder}/novel_classes.csv"),
                       [path(f"{folder}/train_s{s}.txt") for s in (1, 2, 3)], path(f"{folder}/base_test.txt"),
                       path(f"{folder}/novel_test.txt"))


# FROSTER's descriptions name a few classes differently from the class files (articles, spelling).
_SPELLING = {"barbecuing": "barbequing"}


def _key(name: str) -> str:
    words = re.sub(r"[^a-z0-9]+", " ", name.lower()).split()
    joined = "".join(w for w in words if w not in ("a", "an", "the"))
    return _SPELLING.get(joined, joined)


def descriptions(names: list[str], source: str | Path) -> list[str]:
    """FROSTER's description of each class in `names` (matched by name, so any class order works).

    `source` is a shipped name (``"kinetics400"``, ``"b2n_ucf101_novel"``, ...) or a JSON path.
    """
    from ..data import read_class_descriptions, read_class_names

    file = Path(source) if Path(source).suffix == ".json" else ROOT / "descriptions" / f"{source}.json"
    if not file.is_file():
        known = sorted(p.stem for p in (ROOT / "descriptions").glob("*.json"))
        raise ProtocolError(f"descriptions {source!r}: not found; shipped: {', '.join(known)}")
    by_key = {_key(n): d for n, d in zip(read_class_names(file), read_class_descriptions(file))}
    missing = [n for n in names if _key(n) not in by_key]
    if missing:
        raise ProtocolError(f"{file}: no description for {len(missing)} class(es), e.g. {missing[0]!r}")
    return [by_key[_key(n)] for n in names]
