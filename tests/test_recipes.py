"""Every shipped recipe (configs/**/*.yaml): it loads through the config loader, every package file it
names exists (and its lists' labels fit its class file), and its model builds with the backbone swapped
for a tiny random CLIP. The per-method recipe tests check the official values; this one checks that a
new user can run each file at all."""

from pathlib import Path

import pytest
import yaml

from clipvideo import protocols
from clipvideo.clip.model import get_architecture
from clipvideo.data import read_class_names, read_video_list
from clipvideo.engine.config import load_config
from clipvideo.engine.train import build_model

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "configs").glob("**/*.yaml"))
LISTS = ("train_list", "val_list")


def named_paths(values, where=""):
    """(key, value) for every string in the recipe that names a file inside the package."""
    if isinstance(values, dict):
        for key, value in values.items():
            yield from named_paths(value, f"{where}.{key}" if where else key)
    elif isinstance(values, list):
        for index, value in enumerate(values):
            yield from named_paths(value, f"{where}[{index}]")
    elif isinstance(values, str) and values.startswith("clipvideo/"):
        yield where, values


def test_every_method_has_recipes():
    assert {path.parent.name for path in RECIPES} == {"aim", "evl", "froster", "frozen", "text4vis", "xclip"}
    assert len(RECIPES) > 80


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_loads_and_names_only_shipped_files(path):
    config = load_config(path)
    values = yaml.safe_load(path.read_text())
    missing = [f"{key}: {value}" for key, value in named_paths(values) if not (REPO / value).is_file()]
    assert not missing, f"{path.name} names package files that do not exist: {missing}"
    data = config.data
    shipped_classes = data.class_names.startswith("clipvideo/")
    if shipped_classes:
        names = read_class_names(REPO / data.class_names)
        for key in LISTS:
            listed = getattr(data, key)
            if listed.startswith("clipvideo/"):  # labels index the recipe's class file
                read_video_list(REPO / listed, rawframes=data.format == "rawframes", separator=data.separator,
                                num_classes=len(names), multi_label=data.multi_label)
    described = getattr(data, "class_descriptions", "")
    if described:
        assert shipped_classes, f"{path.name}: data.class_descriptions needs a shipped data.class_names"
        texts = protocols.descriptions(names, described)  # every class is described
        assert len(texts) == len(names)


def tiny(config):
    """The recipe with a tiny random CLIP (width 64, the recipe architecture's depth, so layer indices
    stay valid) and no weight files; class names only from shipped files."""
    backbone = config.model.get("backbone", {})
    depth = get_architecture(backbone.get("arch", "ViT-B/16")).vision_layers
    architecture = {**get_architecture("tiny").to_dict(), "vision_layers": depth}
    config.model = {**config.model, "backbone": {**backbone, "pretrained": None, "architecture": architecture}}
    for key in ("init_checkpoint", "classifier_file"):
        if config.model.get(key):
            config.model[key] = None
    if config.model.get("classifier") in ("lda", "file"):
        config.model["classifier"] = "text"  # those read a fitted classifier file
    if config.data.class_names.startswith("clipvideo/"):
        names = read_class_names(REPO / config.data.class_names)
    else:
        config.data.class_names, config.data.class_descriptions = "", ""
        names = [f"class {index}" for index in range(config.data.num_classes or 3)]
    return config, names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_model_builds_at_tiny_size(path):
    config, names = tiny(load_config(path))
    model = build_model(config, len(names), names)
    assert sum(p.numel() for p in model.parameters()) > 0
    if model.uses_descriptions and config.data.class_descriptions:
        # FROSTER's recipes hand the model its descriptions, not the bare names.
        assert model.config.class_texts[0].startswith(f"{names[0]}: ") and len(model.config.class_texts) == len(names)
