"""CLIP backbone in clipvideo's own code, with OpenAI state-dict key names.

    from clipvideo.clip import load_clip, create_clip, tokenize
    model = load_clip("ViT-B-16.pt")                  # OpenAI TorchScript, state dict, open_clip, safetensors
    model = create_clip("tiny")                       # random weights, named architecture
    feats = model.visual.forward_intermediates(images, indices=4)   # last 4 blocks: out, q, k, v
"""

from .attention import Attention
from .layers import MLP, LayerNorm, QuickGELU
from .load import (
    CheckpointError,
    clip_state_dict,
    config_from_state_dict,
    load_clip,
    load_weights,
    read_state_dict,
    read_torchscript_tensors,
)
from .model import ARCHITECTURES, CLIP, CLIPConfig, get_architecture
from .tokenizer import tokenize
from .transformer import BlockOutput, ResidualAttentionBlock, Transformer
from .vision import VisionIntermediates, VisionTransformer, resize_positional_embedding


def create_clip(architecture: str | CLIPConfig = "tiny", pretrained: str | None = None, **kwargs) -> CLIP:
    """A CLIP model by architecture name (random weights) or from a weights file.

    With `pretrained`, the architecture is read from the file and `architecture` is only
    checked by name; kwargs go to `load_clip` (heads, text_heads, vision_block, ...) or, for
    random weights, to the CLIP constructor (vision_block, with_text, vision_output_dim).
    """
    if pretrained:
        return load_clip(pretrained, **kwargs)
    config = architecture if isinstance(architecture, CLIPConfig) else get_architecture(architecture)
    for key in ("heads", "text_heads"):
        if kwargs.get(key):
            field = "vision_heads" if key == "heads" else "text_heads"
            config = CLIPConfig.from_dict({**config.to_dict(), field: kwargs.pop(key)})
        kwargs.pop(key, None)
    kwargs.pop("new_keys", None)
    return CLIP(config, **kwargs)


__all__ = [
    "ARCHITECTURES",
    "Attention",
    "BlockOutput",
    "CLIP",
    "CLIPConfig",
    "CheckpointError",
    "LayerNorm",
    "MLP",
    "QuickGELU",
    "ResidualAttentionBlock",
    "Transformer",
    "VisionIntermediates",
    "VisionTransformer",
    "clip_state_dict",
    "config_from_state_dict",
    "create_clip",
    "get_architecture",
    "load_clip",
    "load_weights",
    "read_state_dict",
    "read_torchscript_tensors",
    "resize_positional_embedding",
    "tokenize",
]
