"""Every entry of the packaged registry (clipvideo/zoo.json) is complete and self-consistent, and the
README / docs tables are the ones the registry generates."""

import dataclasses
import importlib
import inspect
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from clipvideo import zoo
from clipvideo.engine.config import DataConfig, from_dict
from clipvideo.official import IMPORTERS

ROOT = Path(__file__).parents[2]
# Importers being written in parallel (clipvideo/official/<method>.py); once registered they are checked too.
PLANNED_IMPORTERS = {"text4vis", "froster", "aim"}
ENTRIES = list(zoo.registry().values())
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def test_names_and_aliases_are_unique():
    names = [e.name for e in ENTRIES] + [a for e in ENTRIES for a in e.aliases]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.-]*", e.name) for e in ENTRIES)


def test_every_method_and_dataset_is_present():
    methods = {e.method for e in ENTRIES}
    assert methods == {"clip", "evl", "xclip", "hf-xclip", "text4vis", "froster", "aim"}
    assert {e.name for e in ENTRIES if e.method == "clip"} == {"clip-vit-b32", "clip-vit-b16", "clip-vit-l14", "clip-vit-l14-336"}
    # The Hugging Face copies mirror the official X-CLIP releases one to one.
    assert {e.name.removeprefix("hf-") for e in ENTRIES if e.method == "hf-xclip"} == {e.name for e in ENTRIES if e.method == "xclip"}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_entry_fields(entry):
    assert entry.method == "clip" or entry.method in IMPORTERS or entry.method in PLANNED_IMPORTERS
    assert entry.description and entry.dataset and entry.files
    assert entry.sources and all(key in zoo.sources() for key in entry.sources)
    for spec in entry.all_files:
        assert spec.filename and "/" not in spec.filename
        if spec.url is None:
            assert entry.page and entry.manual, "a file without a direct URL needs a page and the reason"
        else:
            assert urlparse(spec.url).scheme == "https" and urlparse(spec.url).netloc
        assert spec.sha256 is None or HEX64.match(spec.sha256)
        assert spec.size is None or spec.size > 0
        assert spec.size_mb is None or spec.size_mb > 0
    if entry.page:
        assert urlparse(entry.page).scheme == "https"
    if entry.backbone:
        assert zoo.get(entry.backbone).method == "clip"
    if entry.classes:
        # Class files are pinned to a commit, so their sha256 and size are known.
        assert re.search(r"/[0-9a-f]{40}/", entry.classes.url) and HEX64.match(entry.classes.sha256)
        assert entry.classes.size > 0 and entry.classes.num_classes > 0
    if entry.data:
        from_dict(DataConfig, dict(entry.data), f"{entry.name}: data")  # valid DataConfig fields and types
    for row in entry.published:
        assert row["source"] in zoo.sources() and row["protocol"] and row["dataset"]
        values = [row.get(k) for k in ("top1", "top5", "map") if row.get(k) is not None]
        assert values and all(0 < v <= 100 for v in values)
        if row.get("top5") is not None:
            assert row["top5"] >= row["top1"]
    if entry.method != "clip" and not (entry.manual or "").startswith("no checkpoint was released"):
        assert entry.published, "a video model's entry cites its published result"


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.method in IMPORTERS], ids=lambda e: e.name)
def test_overrides_are_importer_arguments(entry):
    module, function = IMPORTERS[entry.method].split(":")
    parameters = inspect.signature(getattr(importlib.import_module(module), function)).parameters
    assert set(entry.overrides) <= set(parameters)
    if entry.backbone:
        assert "backbone" in parameters


def test_openai_urls_carry_the_sha256():
    for entry in (e for e in ENTRIES if e.method == "clip"):
        (spec,) = entry.files
        assert spec.url.split("/")[-2] == spec.sha256  # clip.py checks the download against this path part


def test_registry_dataclass_reads_every_key():
    # A key misspelled in zoo.json would be silently dropped; the raw JSON must use known names only.
    import json

    raw = json.loads(zoo.ZOO_FILE.read_text())
    entry_keys = {f.name for f in dataclasses.fields(zoo.ZooEntry)}
    file_keys = {f.name for f in dataclasses.fields(zoo.ZooFile)}
    for item in raw["models"]:
        assert set(item) <= entry_keys, set(item) - entry_keys
        for spec in item["files"] + ([item["classes"]] if item.get("classes") else []):
            assert set(spec) <= file_keys, set(spec) - file_keys


def _table_in(path: Path) -> str:
    text = path.read_text()
    match = re.search(r"<!-- zoo-table:start -->\n(.*?)<!-- zoo-table:end -->", text, re.DOTALL)
    assert match, f"{path}: no zoo table markers"
    return match.group(1)


@pytest.mark.parametrize("document", ["README.md", "docs/zoo.md"])
def test_documented_table_is_generated_from_the_registry(document):
    assert _table_in(ROOT / document) == zoo.markdown_table(), (
        f"{document} is out of date: regenerate with `clipvideo models --markdown`")
