"""Helpers shared by the X-CLIP tests (a uniquely named module: other test folders have conftests)."""

from pathlib import Path

from clipvideo.methods import xclip
from clipvideo.methods.base import BackboneConfig

FIXTURES = Path(__file__).parents[1] / "fixtures" / "xclip"
CLASSES = ["moving left", "rotating clockwise", "a dog playing fetch"]


def tiny_config(**overrides) -> xclip.Config:
    """The "tiny" CLIP (width 64, 2 layers, 2 heads, 64 px, patch 16) with 4 frames."""
    values = dict(backbone=BackboneConfig(arch="tiny"), num_frames=4, mit_heads=2, prompt_heads=2)
    values.update(overrides)
    return xclip.Config(**values)


def tiny_model(class_names=CLASSES, **overrides) -> xclip.XCLIP:
    return xclip.build(tiny_config(**overrides), num_classes=len(class_names), class_names=class_names)
