"""Annotation lists, class-name files and tar archives of videos.

List formats (one sample per line; blank lines and comment lines, ``#`` followed by a space or nothing,
are skipped; HMDB-51 file names such as ``#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi`` start with ``#``):

==================  ==================================  ====================================
format              line                                used by
==================  ==================================  ====================================
video               ``<path> <label>``                  EVL, X-CLIP, AIM, MMAction2 VideoDataset
video, separator    ``<path>,<label>`` (``separator=','``) FROSTER / PySlowFast csv
rawframes           ``<dir> <num_frames> <label>``      Text4Vis, MMAction2 RawframeDataset
multi-label         ``<path> <label> <label> ...``      ActivityNet-style (``multi_label=True``)
==================  ==================================  ====================================

Fields are split on whitespace (or on ``separator``) and the field count is checked, so a path
containing the separator is an error rather than a silent misparse. Every problem is reported at
load time as ``AnnotationError("file:line: reason: 'the line'")``, including a label outside
``[0, num_classes)``.

Class-name files (:func:`read_class_names`): ``id,name`` CSV with or without a header (X-CLIP,
Text4Vis), one name per line (MMAction2 label maps), and JSON: a list of names (EVL), an object
``{"0": "Name: description", ...}`` (FROSTER) or ``{"name": index}``.
"""

from __future__ import annotations

import csv
import json
import os
import tarfile
from dataclasses import dataclass


class AnnotationError(ValueError):
    """A list or class-name file is malformed; the message starts with ``file:line``."""


@dataclass(frozen=True)
class VideoRecord:
    """One line of a list: ``path`` as written (relative to the data root), ``labels`` (one entry
    unless multi-label), ``num_frames`` for rawframes lists, ``where`` = ``file:line``."""

    path: str
    labels: tuple[int, ...]
    num_frames: int | None = None
    where: str = ""

    @property
    def label(self) -> int:
        return self.labels[0]


def _data_lines(path: str):
    """Yield (line number, stripped line) for the lines that carry data."""
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                line = line.strip()
                if line and not (line == "#" or line.startswith(("# ", "#\t"))):
                    yield number, line
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: not a UTF-8 text file ({error})") from None


def _parse_int(text: str, what: str, where: str, line: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise AnnotationError(f"{where}: {what} {text!r} is not an integer: {line!r}") from None
    if value < 0:
        raise AnnotationError(f"{where}: {what} {value} is negative: {line!r}")
    return value


def read_video_list(
    path: str | os.PathLike,
    rawframes: bool = False,
    separator: str | None = None,
    num_classes: int | None = None,
    multi_label: bool = False,
) -> list[VideoRecord]:
    """Parse a video or rawframes list (see the module docstring) and validate every line."""
    path = os.fspath(path)
    layout = "<dir> <num_frames> <label>" if rawframes else "<path> <label>"
    if multi_label:
        layout += " [<label> ...]"
    num_leading = 2 if rawframes else 1  # fields before the labels
    records = []
    for number, line in _data_lines(path):
        where = f"{path}:{number}"
        fields = [field.strip() for field in line.split(separator)]
        if multi_label:
            wrong_count = len(fields) < num_leading + 1
        else:
            wrong_count = len(fields) != num_leading + 1
        if wrong_count or not fields[0]:
            hint = ""
            if not multi_label and len(fields) > num_leading + 1:
                hint = " (a multi-label list needs multi_label=True; a path with spaces needs another separator)"
            if not rawframes and len(fields) == 3:
                hint = " (a rawframes list needs rawframes=True)"
            raise AnnotationError(
                f"{where}: expected '{layout}' separated by {separator or 'whitespace'!r}, "
                f"got {len(fields)} fields{hint}: {line!r}"
            )
        num_frames = _parse_int(fields[1], "frame count", where, line) if rawframes else None
        labels = tuple(_parse_int(field, "label", where, line) for field in fields[num_leading:])
        if num_classes is not None:
            outside = [label for label in labels if label >= num_classes]
            if outside:
                raise AnnotationError(
                    f"{where}: label {outside[0]} outside [0, {num_classes}) (num_classes={num_classes}): {line!r}"
                )
        records.append(VideoRecord(fields[0], labels, num_frames, where))
    if not records:
        raise AnnotationError(f"{path}: no samples in the annotation file")
    return records


# ---------------------------------------------------------------------------------------------
# Class names
# ---------------------------------------------------------------------------------------------


def _split_description(text: str) -> tuple[str, str]:
    """FROSTER's "Brush hair: A person is ..." -> ("Brush hair", "A person is ..."); a plain name
    is its own description."""
    name, colon, description = text.partition(":")
    if colon and description.strip():
        return name.strip(), description.strip()
    return text.strip(), text.strip()


def _ordered_by_id(pairs: list[tuple[int, str, str]], path: str) -> list[str]:
    """pairs of (id, text, where) -> texts ordered by id; ids must be exactly 0..K-1."""
    by_id: dict[int, str] = {}
    for class_id, text, where in pairs:
        if class_id in by_id:
            raise AnnotationError(f"{where}: class id {class_id} appears twice")
        by_id[class_id] = text
    expected = set(range(len(by_id)))
    if set(by_id) != expected:
        missing = sorted(expected - set(by_id))[:5]
        raise AnnotationError(f"{path}: class ids must be 0..{len(by_id) - 1} without gaps; missing {missing}")
    return [by_id[i] for i in range(len(by_id))]


def _read_class_texts(path: str) -> tuple[list[str], list[str]]:
    """(entries as written, where each came from) in class-id order."""
    if not os.path.exists(path):
        raise AnnotationError(f"{path}: class-name file not found")
    extension = os.path.splitext(path)[1].lower()
    if extension == ".json":
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (ValueError, UnicodeDecodeError) as error:
            raise AnnotationError(f"{path}: not valid JSON ({error})") from None
        if isinstance(data, list) and all(isinstance(item, str) for item in data):
            return data, [f"{path}[{i}]" for i in range(len(data))]
        if isinstance(data, dict) and data and all(isinstance(v, int) for v in data.values()):
            texts = _ordered_by_id([(v, k, f"{path}[{k!r}]") for k, v in data.items()], path)
        elif isinstance(data, dict) and data and all(isinstance(v, str) for v in data.values()):
            pairs = []
            for key, value in data.items():
                if not key.strip().isdigit():
                    raise AnnotationError(f"{path}[{key!r}]: expected class-index keys '0', '1', ...")
                pairs.append((int(key), value, f"{path}[{key!r}]"))
            texts = _ordered_by_id(pairs, path)
        else:
            raise AnnotationError(
                f"{path}: expected a JSON list of names, {{'index': 'name'}} or {{'name': index}}"
            )
        return texts, [f"{path}[{i}]" for i in range(len(texts))]
    if extension == ".csv":
        pairs = []
        with open(path, encoding="utf-8", newline="") as f:
            for number, row in enumerate(csv.reader(f), start=1):
                where = f"{path}:{number}"
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 2:
                    raise AnnotationError(f"{where}: expected 'id,name', got {','.join(row)!r}")
                class_id, name = row[0].strip(), ",".join(row[1:]).strip()
                if not class_id.lstrip("-").isdigit():
                    if number == 1 and not pairs:
                        continue  # header row such as "id,name"
                    raise AnnotationError(f"{where}: class id {class_id!r} is not an integer")
                if not name:
                    raise AnnotationError(f"{where}: empty class name")
                pairs.append((int(class_id), name, where))
        if not pairs:
            raise AnnotationError(f"{path}: no class names")
        texts = _ordered_by_id(pairs, path)
        wheres = {text_id: where for text_id, _, where in pairs}
        return texts, [wheres[i] for i in range(len(texts))]
    # plain text: one name per line; a blank line inside the list would shift every later id
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().rstrip()
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: not a UTF-8 text file ({error})") from None
    if not text:
        raise AnnotationError(f"{path}: no class names")
    lines = [line.strip() for line in text.split("\n")]
    for number, line in enumerate(lines, start=1):
        if not line:
            raise AnnotationError(f"{path}:{number}: empty line inside a one-name-per-line file")
    return lines, [f"{path}:{number}" for number in range(1, len(lines) + 1)]


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names in label order from a ``.csv`` (``id,name``), ``.json`` or text file.

    For FROSTER-style ``"Name: description"`` entries only the name is returned (see
    :func:`read_class_descriptions`). Duplicate names are an error, since zero-shot
    classification could not tell the classes apart.
    """
    path = os.fspath(path)
    texts, wheres = _read_class_texts(path)
    names = [_split_description(text)[0] for text in texts]
    seen: dict[str, str] = {}
    for name, where in zip(names, wheres):
        if name in seen:
            raise AnnotationError(f"{where}: duplicate class name {name!r} (first at {seen[name]})")
        seen[name] = where
    return names


def read_class_descriptions(path: str | os.PathLike) -> list[str]:
    """Per-class descriptions in label order: the text after ``"Name:"`` in FROSTER's JSON, the
    name itself for files that carry no description."""
    texts, _ = _read_class_texts(os.fspath(path))
    return [_split_description(text)[1] for text in texts]


# ---------------------------------------------------------------------------------------------
# Videos inside one uncompressed tar (X-CLIP's "videos.tar" option)
# ---------------------------------------------------------------------------------------------


class TarIndex:
    """Where each member's bytes lie in an uncompressed tar, read once from the headers.

    ``read(name)`` returns a member's bytes with one ``pread``, without extracting anything. A
    listed path is looked up as written, then by its basename (X-CLIP keeps all videos at the tar
    root and lists them with folders). The file handle is opened lazily in each process, so the
    index can be handed to DataLoader workers.
    """

    def __init__(self, tar_path: str | os.PathLike):
        self.tar_path = os.fspath(tar_path)
        self.members: dict[str, tuple[int, int]] = {}
        basenames: dict[str, list[str]] = {}
        try:
            with tarfile.open(self.tar_path, mode="r:") as archive:
                for member in archive:
                    if member.isfile():
                        name = os.path.normpath(member.name)
                        self.members[name] = (member.offset_data, member.size)
                        basenames.setdefault(os.path.basename(name), []).append(name)
        except FileNotFoundError:
            raise AnnotationError(f"{self.tar_path}: tar file not found") from None
        except tarfile.TarError as error:
            raise AnnotationError(f"{self.tar_path}: not an uncompressed tar archive ({error})") from None
        # a basename maps to a member only when it is unambiguous
        self._by_basename = {base: names[0] for base, names in basenames.items() if len(names) == 1}
        self._fd: int | None = None
        self._pid: int | None = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fd"] = state["_pid"] = None
        return state

    def find(self, name: str) -> str | None:
        name = os.path.normpath(name)
        if name in self.members:
            return name
        return self._by_basename.get(os.path.basename(name))

    def read(self, member: str) -> bytes:
        offset, size = self.members[member]
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.tar_path, os.O_RDONLY), os.getpid()
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise OSError(f"{self.tar_path}: member {member} is truncated ({len(data)} of {size} bytes)")
        return data

    def __len__(self) -> int:
        return len(self.members)
