"""Model zoo: every released checkpoint of the five methods, and the OpenAI CLIP backbones, by name.

    clipvideo.load_pretrained("xclip-b32-8f-k400")      # download (once), verify, import: a ready model
    clipvideo models --method evl                       # the registry, with what is already cached
    clipvideo predict video.mp4 --model evl-b16-8f-k400
    clipvideo predict video.mp4 --backbone ViT-B/16 --classes "surfing,cooking"

The registry is `zoo.json` (package data): one entry per released file with its URLs, the
importer (`clipvideo.official.IMPORTERS` name) and its overrides, the backbone it needs, its
class-name file, data settings and published numbers, each with the source it was read from.

Files live in the cache (`CLIPVIDEO_CACHE`, else the platform's user cache folder), one folder
per entry. A download goes to `<file>.part`, resumes from there (HTTP Range) when interrupted,
and is checked against the registry's size and sha256 before it is renamed into place; a file
that fails the check is deleted and never loaded. Where no source publishes a sha256 the first
verified download records the one it saw (`<file>.verified.json`), so a later, different file
is noticed. `CLIPVIDEO_OFFLINE=1` never touches the network: a missing file is a one-line error
saying where to put it.
"""

import difflib
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from .clip import CheckpointError
from .clip.text_cache import user_cache_dir

ZOO_FILE = Path(__file__).with_name("zoo.json")
CHUNK = 1 << 20
USER_AGENT = "clipvideo-zoo (urllib)"


class ZooError(CheckpointError):
    """A name, download or cache problem, reported in one line (the CLI prints it without a traceback)."""


class ChecksumError(ZooError):
    """A downloaded or cached file whose size or sha256 differs from the expected one."""


@dataclass(frozen=True)
class ZooFile:
    filename: str
    url: str | None  # None: no direct link (see the entry's `page`)
    sha256: str | None = None  # published or fixed by the source (OpenAI's URL path); None = not published
    size: int | None = None  # exact bytes, where a source gives them
    size_mb: float | None = None  # approximate size shown by the hosting page
    num_classes: int | None = None  # class-name files only
    source: str | None = None


@dataclass(frozen=True)
class ZooEntry:
    name: str
    method: str  # importer name (clipvideo.official.IMPORTERS) or "clip" for a backbone
    dataset: str
    description: str
    files: tuple[ZooFile, ...]
    backbone: str | None = None  # name of the zoo entry holding the CLIP weights the importer needs
    overrides: dict = field(default_factory=dict)  # keyword arguments for the importer
    classes: ZooFile | None = None  # class names in label order (official file of the release)
    data: dict = field(default_factory=dict)  # DataConfig fields the model was tested with
    test_views: dict = field(default_factory=dict)  # {"clips": C, "crops": S} of the published numbers
    published: tuple[dict, ...] = ()  # [{"dataset", "top1", "top5", "protocol", "source"}]
    sources: tuple[str, ...] = ()  # keys of the registry's "sources"
    aliases: tuple[str, ...] = ()
    page: str | None = None  # human page for the file (Google Drive, OneDrive folder, hub)
    manual: str | None = None  # why the file cannot be fetched automatically

    @property
    def all_files(self) -> tuple[ZooFile, ...]:
        return self.files + ((self.classes,) if self.classes else ())

    @property
    def top1(self) -> float | None:
        """The first published top-1 (the entry's headline number)."""
        return next((row["top1"] for row in self.published if row.get("top1") is not None), None)

    @property
    def size_mb(self) -> float | None:
        """Download size in MB where the sources give it (small JSON configs do not count)."""
        sizes = [f.size / 1e6 if f.size else f.size_mb for f in self.files if not f.filename.endswith(".json")]
        return sum(sizes) if sizes and all(s is not None for s in sizes) else None


def _file(raw: dict) -> ZooFile:
    return ZooFile(**{k: raw.get(k) for k in ZooFile.__dataclass_fields__})


@cache
def _load(path: str) -> tuple[dict, dict[str, ZooEntry]]:
    raw = json.loads(Path(path).read_text())
    entries = {}
    for item in raw["models"]:
        entries[item["name"]] = ZooEntry(
            name=item["name"], method=item["method"], dataset=item["dataset"], description=item.get("description", ""),
            files=tuple(_file(f) for f in item["files"]), backbone=item.get("backbone"),
            overrides=dict(item.get("overrides") or {}),
            classes=_file(item["classes"]) if item.get("classes") else None,
            data=dict(item.get("data") or {}), test_views=dict(item.get("test_views") or {}),
            published=tuple(item.get("published") or ()), sources=tuple(item.get("sources") or ()),
            aliases=tuple(item.get("aliases") or ()), page=item.get("page"), manual=item.get("manual"),
        )
    return raw.get("sources", {}), entries


def registry() -> dict[str, ZooEntry]:
    """All entries by name (from CLIPVIDEO_ZOO if set, else the packaged zoo.json)."""
    return _load(str(os.environ.get("CLIPVIDEO_ZOO") or ZOO_FILE))[1]


def sources() -> dict[str, dict]:
    return _load(str(os.environ.get("CLIPVIDEO_ZOO") or ZOO_FILE))[0]


def get(name: str) -> ZooEntry:
    """The entry called `name` (or with that alias, e.g. "ViT-B/16"); a close-match hint otherwise."""
    entries = registry()
    if name in entries:
        return entries[name]
    for entry in entries.values():
        if name in entry.aliases:
            return entry
    close = difflib.get_close_matches(name, list(entries) + [a for e in entries.values() for a in e.aliases], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `clipvideo models` lists them"
    raise ZooError(f"{name!r} is not a model in the clipvideo zoo{hint}")


def find(name: str) -> ZooEntry | None:
    try:
        return get(name)
    except ZooError:
        return None


def list_models(method: str | None = None, dataset: str | None = None) -> list[ZooEntry]:
    """Entries of `method` trained on `dataset` (any spelling: k400 = kinetics400); ZooError naming
    the valid values for a method or dataset that no entry has."""
    from .vocabulary import canonical

    entries = list(registry().values())
    if method is not None and method not in {e.method for e in entries}:
        raise ZooError(f"--method {method!r}: no such method in the zoo; "
                       f"choose one of {', '.join(sorted({e.method for e in entries}))}")
    if dataset is not None and canonical(dataset) not in {canonical(e.dataset) for e in entries}:
        raise ZooError(f"--dataset {dataset!r}: no model in the zoo is trained on it; "
                       f"choose one of {', '.join(sorted({e.dataset for e in entries}))} (or their full names, "
                       "e.g. kinetics400)")
    return [e for e in entries if (method is None or e.method == method)
            and (dataset is None or canonical(e.dataset) == canonical(dataset))]


# ---------------------------------------------------------------------------------------------
# The cache


def cache_dir() -> Path:
    """CLIPVIDEO_CACHE, else the user cache folder of the platform (as platformdirs would pick);
    the stored class embeddings live in it too (`clip.text_cache`)."""
    return user_cache_dir()


def offline() -> bool:
    return os.environ.get("CLIPVIDEO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def entry_dir(entry: ZooEntry) -> Path:
    return cache_dir() / entry.name


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, spec: ZooFile) -> bool:
    """A cached file is used when its verification record matches it and the registry (no re-hash)."""
    record_path = _record_path(path)
    if not (path.is_file() and record_path.is_file()):
        return False
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return False
    size = path.stat().st_size
    return (record.get("size") == size and (spec.size is None or spec.size == size)
            and (spec.sha256 is None or record.get("sha256") == spec.sha256))


def _write_record(path: Path, spec: ZooFile, digest: str) -> None:
    record = {"sha256": digest, "size": path.stat().st_size, "url": spec.url,
              "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _record_path(path).write_text(json.dumps(record, indent=1) + "\n")


def _check(path: Path, spec: ZooFile, what: str) -> str:
    """Size and sha256 of `path` against the registry; raises ChecksumError. Returns the sha256."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        raise ChecksumError(f"{what}: {size} bytes, the registry says {spec.size}")
    digest = sha256_of(path)
    if spec.sha256 is not None and digest != spec.sha256:
        raise ChecksumError(f"{what}: sha256 {digest} does not match the published {spec.sha256}")
    return digest


def is_cached(entry: ZooEntry) -> bool:
    folder = entry_dir(entry)
    return all(_verified(folder / f.filename, f) for f in entry.all_files)


def _where_to_get(entry: ZooEntry, spec: ZooFile) -> str:
    return spec.url if spec.url and not (entry.page and "drive" in (spec.url or "")) else (entry.page or spec.url or "?")


def _placed_by_hand(entry: ZooEntry, spec: ZooFile, path: Path) -> bool:
    """A file the user put in the cache (offline, manual downloads): verify it once and record it."""
    if not path.is_file():
        return False
    digest = _check(path, spec, f"{path} (placed in the cache for {entry.name})")
    _write_record(path, spec, digest)
    return True


def fetch_file(entry: ZooEntry, spec: ZooFile, progress: bool = True) -> Path:
    """The cached, verified path of one file of `entry`; downloads it if needed."""
    path = entry_dir(entry) / spec.filename
    if _verified(path, spec) or _placed_by_hand(entry, spec, path):
        return path
    if spec.url is None:
        raise ZooError(f"{entry.name}: {spec.filename} has no direct download ({entry.manual or 'manual download'}); "
                       f"get it from {entry.page} and place it at {path}")
    if offline():
        raise ZooError(f"{entry.name}: {spec.filename} is not in the cache and CLIPVIDEO_OFFLINE is set; "
                       f"download {_where_to_get(entry, spec)} and place it at {path}")
    digest = _download(spec.url, path, sha256=spec.sha256, size=spec.size, progress=progress,
                       manual_hint=f"download {_where_to_get(entry, spec)} yourself and place it at {path}")
    _write_record(path, spec, digest)
    return path


def missing_files(entry: ZooEntry, with_backbone: bool = True) -> list[tuple[ZooEntry, ZooFile, Path]]:
    """Files of `entry` (and of the backbone it needs) that are not in the cache yet."""
    entries = [entry] + ([get(entry.backbone)] if with_backbone and entry.backbone else [])
    return [(e, f, entry_dir(e) / f.filename) for e in entries for f in e.all_files
            if not (entry_dir(e) / f.filename).is_file()]


def require_offline_files(entry: ZooEntry) -> None:
    """Offline, or with files that need a manual download: one line naming every missing file and its place."""
    missing = missing_files(entry)
    blocked = [(e, f, p) for e, f, p in missing if offline() or f.url is None]
    if not blocked:
        return
    why = "CLIPVIDEO_OFFLINE is set" if offline() else "no direct download"
    places = "; ".join(f"{f.filename} (from {_where_to_get(e, f)}) at {p}" for e, f, p in blocked)
    raise ZooError(f"{entry.name}: not in the cache and {why}: place {places}")


def fetch(name_or_entry, progress: bool = True) -> Path:
    """The cache folder of an entry with all its files (weights, config, class names) present and verified."""
    entry = name_or_entry if isinstance(name_or_entry, ZooEntry) else get(name_or_entry)
    for spec in entry.all_files:
        fetch_file(entry, spec, progress)
    return entry_dir(entry)


# ---------------------------------------------------------------------------------------------
# Download: urllib, resumable, verified


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-999/1000" -> 100
    try:
        return int(value.split()[1].split("-")[0]) if value else None
    except (IndexError, ValueError):
        return None


def download(url: str, destination: str | Path, sha256: str | None = None, size: int | None = None,
             progress: bool = True, attempts: int = 4, timeout: float = 30.0, manual_hint: str = "") -> Path:
    """Download `url` to `destination` via `<destination>.part`, resuming an interrupted transfer.

    The finished file must have `size` bytes and the `sha256` (when given) and, when the server
    announced a length, exactly that many bytes; otherwise the partial file is removed and a
    ChecksumError raised, so a bad file is never renamed into place.
    """
    _download(url, destination, sha256, size, progress, attempts, timeout, manual_hint)
    return Path(destination)


def _download(url, destination, sha256=None, size=None, progress=True, attempts=4, timeout=30.0, manual_hint="") -> str:
    """`download`, returning the sha256 of the file it put in place."""
    from tqdm.auto import tqdm

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    total = size  # expected bytes: the registry's, else the server's Content-Length
    last_error: Exception | None = None
    received_any = False
    for attempt in range(attempts):
        have = part.stat().st_size if part.is_file() else 0
        if total is not None and have > total:
            part.unlink()
            have = 0
        if total is not None and have == total:
            break
        headers = {"User-Agent": USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
                status = getattr(response, "status", 200)
                if have and status == 206 and _content_range_start(response.headers.get("Content-Range")) == have:
                    mode = "ab"
                else:  # the server sent the whole file
                    mode, have = "wb", 0
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit():
                    total = have + int(length)  # what the server says the whole file is
                if "text/html" in (response.headers.get("Content-Type") or "") and not url.endswith((".html", ".htm")):
                    raise ZooError(f"{url}: the server answered with a web page instead of the file "
                                   f"(a quota or confirmation page?); {manual_hint}")
                bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                           desc=destination.name, disable=not progress, leave=False)
                with open(part, mode) as out, bar:
                    while True:
                        block = response.read(CHUNK)
                        if not block:
                            break
                        out.write(block)
                        received_any = True
                        bar.update(len(block))
        except urllib.error.HTTPError as error:
            if error.code == 416 and have:  # nothing left to send: the part is complete
                total = have if total is None else total
                break
            raise ZooError(f"{url}: HTTP {error.code} {error.reason}; {manual_hint}") from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as error:
            last_error = error  # dropped or refused: try again, resuming from the .part file
            time.sleep(min(0.2 * (attempt + 1), 1.0))
            continue
        have = part.stat().st_size if part.is_file() else 0
        if total is None or have >= total:
            break
        last_error = ConnectionError(f"connection closed after {have} of {total} bytes")
    else:
        reason = getattr(last_error, "reason", None) or last_error
        have = part.stat().st_size if part.is_file() else 0
        if not received_any and have == 0:
            raise ZooError(f"cannot download {url} ({reason}); {manual_hint or f'place the file at {destination}'}")
        raise ZooError(f"{url}: download interrupted {attempts} times ({reason}); {have} bytes kept in {part}, "
                       "run again to resume")
    have = part.stat().st_size
    expected = size if size is not None else total
    if expected is not None and have != expected:
        part.unlink()
        raise ChecksumError(f"{destination.name}: received {have} bytes, expected {expected}; the partial file was removed")
    digest = sha256_of(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise ChecksumError(f"{destination.name} from {url}: sha256 {digest} does not match the expected {sha256}; "
                            "the download was deleted and not used")
    os.replace(part, destination)
    return digest


# ---------------------------------------------------------------------------------------------
# Names -> models


def _weights_path(entry: ZooEntry, progress: bool = True) -> Path:
    """What the importer takes: the folder for multi-file releases (Hugging Face), else the file."""
    folder = fetch(entry, progress)
    return folder if len(entry.files) > 1 else folder / entry.files[0].filename


def backbone_path(value) -> str | None:
    """A CLIP backbone given as a local path (kept) or a zoo name such as "ViT-B/16" (fetched)."""
    if value is None or Path(str(value)).exists():
        return None if value is None else str(value)
    entry = find(str(value))
    if entry is None or entry.method != "clip":
        return str(value)  # not a name: the loader reports the missing file
    return str(_weights_path(entry))


def class_names(entry: ZooEntry, progress: bool = True) -> list[str] | None:
    if entry.classes is None:
        return None
    from .data import read_class_names

    return read_class_names(fetch_file(entry, entry.classes, progress))


def load_pretrained(name: str, device="cpu", progress: bool = True, **overrides):
    """A released checkpoint by name, ready in eval mode (downloaded and verified on first use).

    Video models come with their release's class names; text-based ones (X-CLIP, Text4Vis, FROSTER)
    take others with `model.set_class_names([...])`. A backbone entry ("ViT-B/16") gives the CLIP model.
    """
    entry = get(name)
    if entry.method == "clip":
        from .clip import load_clip

        require_offline_files(entry)
        return load_clip(_weights_path(entry, progress), **overrides).to(device).eval()
    from .official import load_official

    require_offline_files(entry)
    options = {**entry.overrides, **overrides}
    weights = _weights_path(entry, progress)  # the release first, then the backbone it needs
    if entry.backbone and "backbone" not in options:
        options["backbone"] = str(_weights_path(get(entry.backbone), progress))
    model = load_official(entry.method, str(weights), **options)
    names = class_names(entry, progress)
    if names:
        if model.uses_text:
            model.set_class_names(names)
        else:
            heads = getattr(model, "num_classes", len(names))
            if heads != len(names):
                raise ZooError(f"{entry.name}: {entry.classes.filename} has {len(names)} names for {heads} classes")
            model.class_names = names
    model.zoo_name = entry.name
    return model.to(device).eval()


def input_settings(entry: ZooEntry, model) -> dict:
    """{"data", "test"} for predicting with this entry: the model's own record (`input_config()`),
    then the release's in the registry (its `data` fields, its published `test_views`)."""
    record = model.input_config()
    views = {key: entry.test_views[short] for key, short in (("num_clips", "clips"), ("num_crops", "crops"))
             if short in entry.test_views}
    return {"data": {**record.get("data", {}), **entry.data}, "test": {**record.get("test", {}), **views}}


def native_checkpoint(name: str, progress: bool = True) -> Path:
    """A native clipvideo checkpoint of a zoo entry (made once from the release, kept in the cache),
    for everything that takes `--checkpoint` (predict, test, export)."""
    from .engine.checkpoint import save_model

    entry = get(name)
    if entry.method == "clip":
        raise ZooError(f"{entry.name} is a CLIP backbone, not a video model; use it with --backbone {entry.name}")
    path = cache_dir() / "converted" / f"{entry.name}.pt"
    if path.is_file():
        return path
    model = load_pretrained(entry.name, progress=progress)
    save_model(model, path, config=input_settings(entry, model))
    return path


# ---------------------------------------------------------------------------------------------
# Tables


def _size_text(entry: ZooEntry) -> str:
    size = entry.size_mb
    if size is None:
        return "—"
    return f"{size / 1000:.2f} GB" if size >= 1000 else f"{size:.0f} MB"


def _top1_text(entry: ZooEntry) -> str:
    for row in entry.published:
        if row.get("top1") is not None:
            more = f" (+{len(entry.published) - 1})" if len(entry.published) > 1 else ""
            return f"{row['top1']:.1f} {row['dataset']}{more}"
        if row.get("map") is not None:
            return f"mAP {row['map']:.1f} {row['dataset']}"
    return "—"


def table_rows(entries: list[ZooEntry]) -> list[tuple[str, ...]]:
    return [(e.name, e.method, e.dataset, _top1_text(e), _size_text(e)) for e in entries]


def markdown_table(entries: list[ZooEntry] | None = None) -> str:
    """The README's zoo table (name, method, dataset, published top-1, size), from the registry."""
    entries = list(registry().values()) if entries is None else entries
    lines = ["| name | method | dataset | published top-1 | size |", "| --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(row)) + " |" for row in table_rows(entries)]
    return "\n".join(lines) + "\n"
