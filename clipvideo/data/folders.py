"""Folder datasets: one sub-folder per class, no list files.

    FOLDER/
      juggling/  a.mp4  more/b.mkv     <- any depth below the class folder
      surfing/   c.avi
      ...

Class names are the class folders' names, in sorted order (label = position), as torchvision's
ImageFolder and MMAction2's folder tools do. Videos are the files below each class folder, at any
depth, with an extension FFmpeg reads as video (`VIDEO_EXTENSIONS`; hidden files and folders are
skipped). Each file is probed (opened and its first frame decoded) once: an unreadable one is
reported with its reason and left out of the split, never silently dropped.

The split is stratified and seeded: in each class, round(n * val_fraction) videos (at least one
when the class has two or more) go to validation, chosen by a generator seeded with (seed, class
name), so adding a class does not reshuffle the others. A class with a single video trains on
it and is named in a warning (it has nothing to validate on).

Lists are written tab-separated (`<path>\t<label>`), since file names may hold spaces; the
recipe settings that read them (`data.separator: "\t"`) are written beside them in `data.yaml`.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .decode import VideoDecodeError
from .readers import decode_frames

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".m2ts", ".mts", ".ts", ".wmv", ".flv",
    ".3gp", ".3g2", ".ogv", ".vob", ".mxf", ".asf", ".divx", ".f4v", ".y4m", ".gif",
})
SEPARATOR = "\t"


class FolderDatasetError(ValueError):
    """The folder cannot be a dataset (missing, fewer than two classes, an empty class); one line."""


@dataclass
class FolderScan:
    root: str
    classes: list[str]  # label order
    videos: list[tuple[str, int]]  # (path relative to root, label), readable ones only, sorted
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (relative path, the earlier identical file)
    single_video_classes: list[str] = field(default_factory=list)


def is_class_folder_dataset(root: str | os.PathLike) -> bool:
    """True when `root` is a folder whose sub-folders hold video files (the folder layout above)."""
    root = Path(root)
    if not root.is_dir():
        return False
    for child in root.iterdir():
        if child.is_dir() and not child.name.startswith(".") and any(_videos_below(child)):
            return True
    return False


def _videos_below(folder: Path):
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                yield Path(dirpath) / name


def probe(path: str | os.PathLike) -> str | None:
    """None for a readable video, else the reason it cannot be read (first frame decoded)."""
    try:
        decode_frames(path, [0])
    except VideoDecodeError as error:
        return str(error).removeprefix(f"{error.path}: ")  # reason (detail), without the path
    except (IndexError, ValueError, OSError) as error:  # e.g. zero frames
        return f"unreadable ({error})"
    return None


def _digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan_folder(root: str | os.PathLike) -> FolderScan:
    """Classes, readable videos, unreadable files and byte-identical duplicates of a class folder."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise FolderDatasetError(f"{root}: no such folder (a folder dataset is FOLDER/<class>/<video files>)")
    class_dirs = sorted(p for p in root_path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise FolderDatasetError(
            f"{root}: a folder dataset needs at least 2 class folders (FOLDER/<class>/<videos>), found {len(class_dirs)}"
        )
    classes = [p.name for p in class_dirs]
    scan = FolderScan(str(root_path), classes, [])
    found, empty = [], []
    for label, class_dir in enumerate(class_dirs):
        count = 0
        for path in _videos_below(class_dir):
            relative = path.relative_to(root_path).as_posix()
            reason = "a tab or newline in the file name (rename the file)" if "\t" in relative or "\n" in relative else probe(path)
            if reason:
                scan.unreadable.append((relative, reason))
                continue
            found.append((path, relative, label))
            count += 1
        if count == 0:
            empty.append(class_dir.name)
    if empty:
        raise FolderDatasetError(
            f"{root}: class folder(s) with no readable video: {', '.join(repr(n) for n in empty)} "
            "(add videos or remove the folder)"
        )
    # Byte-identical files: a later copy is left out (a copy in another class would be a label conflict).
    sizes: dict[int, int] = {}
    for path, _, _ in found:
        size = path.stat().st_size
        sizes[size] = sizes.get(size, 0) + 1
    first_of: dict[str, str] = {}
    counts = [0] * len(classes)
    for path, relative, label in found:
        if sizes[path.stat().st_size] > 1:
            digest = _digest(path)
            if digest in first_of:
                scan.duplicates.append((relative, first_of[digest]))
                continue
            first_of[digest] = relative
        scan.videos.append((relative, label))
        counts[label] += 1
    scan.single_video_classes = [name for name, count in zip(classes, counts) if count == 1]
    return scan


def split(scan: FolderScan, val_fraction: float, seed: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Stratified (train, val) lists: per class, a seeded shuffle and round(n * val_fraction) to val
    (at least one when the class has two or more videos and val_fraction > 0)."""
    if not 0.0 <= val_fraction < 1.0:
        raise FolderDatasetError(f"data.val_fraction: expected a fraction in [0, 1), got {val_fraction}")
    train, val = [], []
    for label, name in enumerate(scan.classes):
        videos = sorted(path for path, lab in scan.videos if lab == label)
        random.Random(f"{seed}:{name}").shuffle(videos)  # per class: other classes do not shift it
        num_val = 0
        if val_fraction > 0 and len(videos) >= 2:
            num_val = min(len(videos) - 1, max(1, round(len(videos) * val_fraction)))
        val += [(path, label) for path in sorted(videos[:num_val])]
        train += [(path, label) for path in sorted(videos[num_val:])]
    return train, val


@dataclass
class FolderLists:
    train_list: str
    val_list: str
    class_names: str
    settings: str  # data.yaml: the data: section that reads these lists
    scan: FolderScan
    num_train: int
    num_val: int


def write_lists(root: str | os.PathLike, out_dir: str | os.PathLike, val_fraction: float = 0.2, seed: int = 0,
                scan: FolderScan | None = None) -> FolderLists:
    """train.txt, val.txt (tab-separated), classes.csv, data.yaml and, when any, failures.txt in `out_dir`."""
    scan = scan or scan_folder(root)
    train, val = split(scan, val_fraction, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("train.txt", "val.txt", "classes.csv", "data.yaml", "failures.txt")}
    for name, rows in (("train.txt", train), ("val.txt", val)):
        paths[name].write_text("".join(f"{path}{SEPARATOR}{label}\n" for path, label in rows), encoding="utf-8")
    paths["classes.csv"].write_text("id,name\n" + "".join(f"{i},{_csv_field(n)}\n" for i, n in enumerate(scan.classes)),
                                    encoding="utf-8")
    settings = {"root": str(Path(scan.root).resolve()), "train_list": str(paths["train.txt"].resolve()),
                "val_list": str(paths["val.txt"].resolve()), "class_names": str(paths["classes.csv"].resolve()),
                "separator": SEPARATOR}
    paths["data.yaml"].write_text("# Written by `clipvideo lists`: the data: settings that read these lists.\n"
                                  + yaml.safe_dump({"data": settings}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    problems = [f"{path}\t{reason}" for path, reason in scan.unreadable]
    problems += [f"{path}\tduplicate of {first} (left out)" for path, first in scan.duplicates]
    if problems:
        paths["failures.txt"].write_text("\n".join(problems) + "\n", encoding="utf-8")
    elif paths["failures.txt"].exists():
        paths["failures.txt"].unlink()
    return FolderLists(str(paths["train.txt"]), str(paths["val.txt"]), str(paths["classes.csv"]),
                       str(paths["data.yaml"]), scan, len(train), len(val))


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"') else text


def report(lists: FolderLists) -> list[str]:
    """The lines a user should see once: what was left out and why, and single-video classes."""
    scan = lists.scan
    lines = [f"{scan.root}: {len(scan.classes)} classes, {lists.num_train} training and {lists.num_val} validation videos"]
    for path, reason in scan.unreadable:
        lines.append(f"left out {path}: {reason}")
    for path, first in scan.duplicates:
        lines.append(f"left out {path}: the same bytes as {first}")
    if scan.unreadable or scan.duplicates:
        lines.append(f"{len(scan.unreadable) + len(scan.duplicates)} file(s) left out, listed in "
                     f"{Path(lists.train_list).with_name('failures.txt')}")
    for name in scan.single_video_classes:
        lines.append(f"class {name!r} has a single video: it trains on it and has none to validate on")
    return lines
