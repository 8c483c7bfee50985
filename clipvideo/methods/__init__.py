"""Video recognition methods built on the CLIP backbone, one module each.

Each module provides `Config` (a dataclass of its hyper-parameters) and
`build(config, num_classes, class_names) -> VideoRecognizer`. This dict is the registry.
"""

from types import ModuleType

from .base import BackboneConfig, VideoRecognizer, build_clip

METHODS: dict[str, ModuleType] = {}


def _register() -> None:
    import importlib

    for name in ("frozen", "evl", "xclip", "text4vis", "froster", "aim", "aim_timm"):
        try:
            METHODS[name] = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:  # a method not written yet
            if error.name != f"{__name__}.{name}":
                raise


_register()

__all__ = ["METHODS", "BackboneConfig", "VideoRecognizer", "build_clip"]
