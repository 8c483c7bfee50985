"""Pieces the model benchmarks share (not a benchmark itself: nothing here is timed)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import warnings
from pathlib import Path

# class names for the text towers: real words, so tokenised lengths look like real prompts
CLASS_WORDS = ["dancing", "cooking", "swimming", "running", "reading", "juggling", "skiing", "surfing",
               "climbing", "painting", "knitting", "boxing", "rowing", "singing", "typing", "diving"]


def model_size_parser(description: str, text_layers: int) -> argparse.ArgumentParser:
    """Arguments for a randomly initialised CLIP of chosen size, a clip batch and repeats."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--vision-width", type=int, default=768)
    parser.add_argument("--vision-layers", type=int, default=4)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--text-width", type=int, default=512)
    parser.add_argument("--text-layers", type=int, default=text_layers)
    parser.add_argument("--embed", type=int, default=512)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return parser


# The official code, imported the way the parity fixture generators import it (never part of clipvideo)

REPO = Path(__file__).resolve().parents[1]


def fixture_generator(method: str):
    """tests/fixtures/<method>/make_fixture.py as a module (importing it runs nothing)."""
    path = REPO / "tests" / "fixtures" / method / "make_fixture.py"
    spec = importlib.util.spec_from_file_location(f"_{method}_make_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_aim_classes(checkout: str | Path, option: str = "--aim-repo"):
    """The official ViT_CLIP and I3DHead classes from a checkout of taoyang1122/adapt-image-models,
    with the fixture generator's stand-ins for the mmcv/mmaction names they import; exits with one
    line where the checkout or einops (which vit_clip.py imports) is missing."""
    if not (Path(checkout) / "mmaction" / "models" / "backbones" / "vit_clip.py").is_file():
        sys.exit(f"{option} {checkout}: no mmaction/models/backbones/vit_clip.py there; "
                 "pass a checkout of taoyang1122/adapt-image-models")
    if importlib.util.find_spec("einops") is None:
        sys.exit(f"{option}: the official vit_clip.py imports einops, which is not installed here; "
                 "pip install einops (or put a folder holding it on PYTHONPATH)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm's moved-module notice
        return fixture_generator("aim").import_official(Path(checkout).resolve())
