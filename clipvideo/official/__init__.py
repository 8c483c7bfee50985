"""Importers for officially released checkpoints (and Hugging Face X-CLIP).

`clipvideo.load_official(name, path, **overrides)` returns a ready model in eval mode; each
importer maps the official key names to ours and checks that every tensor was used.
"""

import importlib

# name -> "module:function"; modules are imported on first use.
IMPORTERS: dict[str, str] = {
    "evl": "clipvideo.official.evl:load_official_evl",
    "xclip": "clipvideo.official.xclip:load_official_xclip",
    "hf-xclip": "clipvideo.official.xclip:load_official_hf_xclip",
    "aim": "clipvideo.official.aim:load_official_aim",
    "text4vis": "clipvideo.official.text4vis:load_official_text4vis",
    "froster": "clipvideo.official.froster:load_official_froster",
}


def load_official(name: str, path: str, **overrides):
    """An official checkpoint of method `name` (one of IMPORTERS) as a ready clipvideo model."""
    if name not in IMPORTERS:
        raise ValueError(f"no importer for {name!r}; available: {', '.join(sorted(IMPORTERS))}")
    module_name, function = IMPORTERS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise ValueError(f"the {name!r} importer is not available in this version of clipvideo") from None
        raise
    return getattr(module, function)(path, **overrides)
