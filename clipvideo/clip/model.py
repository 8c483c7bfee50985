"""CLIP: the vision transformer plus the text transformer, with OpenAI state-dict key names.

The text tower's parameters sit at the top level (`token_embedding`, `positional_embedding`,
`transformer`, `ln_final`, `text_projection`) exactly as in OpenAI's checkpoints, so
`CLIP(config).load_state_dict(openai_state_dict)` works with strict=True.
"""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from .layers import LayerNorm, QuickGELU
from .transformer import ResidualAttentionBlock, Transformer
from .vision import VisionTransformer


@dataclass(frozen=True)
class CLIPConfig:
    """Architecture of a CLIP model; every field but the head counts can be read off tensor shapes."""

    embed_dim: int = 512  # joint image-text embedding size E
    image_resolution: int = 224
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12  # shapes cannot tell; OpenAI models use width // 64
    vision_patch_size: int = 16
    context_length: int = 77
    vocab_size: int = 49408
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8  # shapes cannot tell; OpenAI models use width // 64
    mlp_ratio: float = 4.0
    quick_gelu: bool = True  # OpenAI weights need QuickGELU; open_clip's non-"-quickgelu" models use GELU

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CLIPConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown CLIP config keys {unknown}; valid keys: {sorted(known)}")
        return cls(**values)


# The published OpenAI architectures plus a tiny one for tests and demos.
ARCHITECTURES: dict[str, CLIPConfig] = {
    "ViT-B/32": CLIPConfig(512, 224, 768, 12, 12, 32, text_width=512, text_layers=12, text_heads=8),
    "ViT-B/16": CLIPConfig(512, 224, 768, 12, 12, 16, text_width=512, text_layers=12, text_heads=8),
    "ViT-L/14": CLIPConfig(768, 224, 1024, 24, 16, 14, text_width=768, text_layers=12, text_heads=12),
    "ViT-L/14-336": CLIPConfig(768, 336, 1024, 24, 16, 14, text_width=768, text_layers=12, text_heads=12),
    "tiny": CLIPConfig(64, 64, 64, 2, 2, 16, text_width=64, text_layers=2, text_heads=2),
}


def get_architecture(name: str, **overrides) -> CLIPConfig:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown CLIP architecture {name!r}; choose one of {sorted(ARCHITECTURES)}")
    return replace(ARCHITECTURES[name], **overrides)


class CLIP(nn.Module):
    """Image tower `visual` (N, 3, H, W) -> (N, E); text tower `encode_text` (K, L) -> (K, E).

    `vision_block` swaps the vision blocks for a method's subclass of ResidualAttentionBlock.
    `with_text=False` builds the image tower alone (EVL and AIM never use text).
    """

    def __init__(
        self,
        config: CLIPConfig,
        vision_block: Callable[..., nn.Module] = ResidualAttentionBlock,
        with_text: bool = True,
        vision_output_dim: int | None | bool = True,
    ):
        super().__init__()
        self.config = config
        act_layer = QuickGELU if config.quick_gelu else nn.GELU
        output_dim = config.embed_dim if vision_output_dim is True else (vision_output_dim or None)
        self.visual = VisionTransformer(
            config.image_resolution,
            config.vision_patch_size,
            config.vision_width,
            config.vision_layers,
            config.vision_heads,
            output_dim,
            config.mlp_ratio,
            act_layer,
            vision_block,
        )
        self.with_text = with_text
        if with_text:
            self.token_embedding = nn.Embedding(config.vocab_size, config.text_width)
            self.positional_embedding = nn.Parameter(torch.empty(config.context_length, config.text_width))
            self.transformer = Transformer(
                config.text_width, config.text_layers, config.text_heads, config.mlp_ratio, act_layer
            )
            self.ln_final = LayerNorm(config.text_width)
            self.text_projection = nn.Parameter(torch.empty(config.text_width, config.embed_dim))
            # Boolean causal mask (True = may attend), so it works in any dtype.
            mask = torch.ones(config.context_length, config.context_length, dtype=torch.bool).tril()
            self.register_buffer("attn_mask", mask, persistent=False)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.init_parameters()

    def init_parameters(self) -> None:
        """OpenAI's initialisation, for training from scratch; loading weights overwrites it."""
        visual = self.visual
        nn.init.normal_(visual.class_embedding, std=visual.width**-0.5)
        nn.init.normal_(visual.positional_embedding, std=visual.width**-0.5)
        towers = [visual.transformer] + ([self.transformer] if self.with_text else [])
        for tower in towers:
            proj_std = (tower.width**-0.5) * ((2 * tower.layers) ** -0.5)
            for block in tower.resblocks:
                nn.init.normal_(block.attn.in_proj_weight, std=tower.width**-0.5)
                nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
                nn.init.normal_(block.mlp.c_fc.weight, std=(2 * tower.width) ** -0.5)
                nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        if self.with_text:
            nn.init.normal_(self.token_embedding.weight, std=0.02)
            nn.init.normal_(self.positional_embedding, std=0.01)
            nn.init.normal_(self.text_projection, std=self.transformer.width**-0.5)

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def encode_image(self, images: torch.Tensor, **block_kwargs) -> torch.Tensor:
        """(N, 3, H, W) -> (N, E), not normalised. `block_kwargs` (e.g. num_frames for video blocks
        that mix frames, N = B*T) go to every vision block."""
        return self.visual(images, **block_kwargs)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(K, L) token ids -> (K, E) at the end-of-text position, not normalised."""
        if not self.with_text:
            raise RuntimeError("this CLIP model was built without its text tower (with_text=False)")
        length = tokens.shape[1]
        if length > self.config.context_length:
            raise ValueError(f"{length} tokens exceed the text context length {self.config.context_length}")
        x = self.token_embedding(tokens) + self.positional_embedding[:length]  # (K, L, W)
        x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])
        x = self.ln_final(x)
        # The end-of-text token has the largest id in CLIP's vocabulary.
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # (K, W)
        return x @ self.text_projection

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Image-text logits (N, K): logit_scale.exp() * cosine similarity."""
        image_features = nn.functional.normalize(self.encode_image(images), dim=-1)
        text_features = nn.functional.normalize(self.encode_text(tokens), dim=-1)
        return self.logit_scale.exp() * image_features @ text_features.t()

    def drop_text_tower(self) -> None:
        """Delete the text encoder (an exported classifier keeps its class embeddings instead);
        the image tower and logit_scale stay."""
        for name in ("token_embedding", "transformer", "ln_final"):
            setattr(self, name, None)
        for name in ("positional_embedding", "text_projection"):
            self.register_parameter(name, None)
        self.register_buffer("attn_mask", None, persistent=False)
        self.with_text = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)
        if self.with_text:
            self.transformer.grad_checkpointing = enable
