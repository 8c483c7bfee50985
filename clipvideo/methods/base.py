"""What every method shares: the model contract, the CLIP backbone settings, parameter groups.

The contract (docs/contract.md). Every method implements all of it; no command looks for optional
hooks, so a method that leaves a part out fails loudly (NotImplementedError), never silently.

- `forward_features(video (B, T, 3, H, W)) -> (B, D)`: the video's features, before the classifier.
- `forward_head(features (B, D)) -> (B, K)`: the classifier on them. `forward` is their composition.
  Features average over views (`test.aggregate: feature`) before the head.
- `input_config() -> {"data": {...}, "test": {...}}`: how the model is fed (frames, sampling and its
  protocol, input size, short side, normalisation, views, view aggregation), as DataConfig and
  TestConfig fields: the one record predict, test, serve, export and the zoo read (a run's own
  `data:`/`test:` saved in its model file override it field by field).
- `loss(video, target)` -> dict with "loss" (and "logits"); target (B,) ids or (B, K) soft targets.
- `param_groups(weight_decay)` lists the trainable parameters with their groups.
- `config`: the method's resolved config dataclass, saved in checkpoints.
- `training_only_prefixes`: state-dict key prefixes (a distillation teacher) never saved in model
  files nor averaged.

Text-classifying methods (`uses_text = True`) also implement:
- `class_embeddings() -> (K, D')`: the one tensor the head compares features with, computed once per
  vocabulary and cached (recomputed only when the vocabulary or the text weights change).
- `vocabulary_changed()`: drop what was derived from the previous vocabulary (tokens, caches).
They receive classes as a `ClassVocabulary` (names plus, where a release has them, descriptions)
through `set_classes`; `set_class_names(names)` is the same with bare names. Descriptions once given
are kept: the same name given bare later gets its description back.
`freeze_classes()` (export) fixes the class embeddings as a buffer and drops the text tower.

Module level: `Config`, `build(config, num_classes, class_names)`, and optionally
`inference_config(config) -> config`: the config a model is rebuilt with from a model file
(FROSTER: no teacher).
"""

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..clip import CLIP, CLIPConfig, ResidualAttentionBlock, get_architecture, load_clip


@dataclass
class BackboneConfig:
    """Which CLIP to start from."""

    arch: str = "ViT-B/16"  # named architecture, used for random weights when `pretrained` is empty
    pretrained: str | None = None  # local CLIP weights: OpenAI .pt (TorchScript or state dict), open_clip, safetensors
    heads: int | None = None  # vision heads; default width // 64 (tensor shapes cannot tell)
    text_heads: int | None = None  # text heads; default width // 64
    quick_gelu: bool = True  # OpenAI weights use QuickGELU; LAION open_clip models mostly GELU
    image_resolution: int | None = None  # resize positional embeddings to this input size
    architecture: dict | None = None  # resolved CLIP architecture, filled in on build (lets checkpoints rebuild)
    grad_checkpointing: bool = False  # recompute block activations in backward to save memory


def build_clip(
    cfg: BackboneConfig,
    vision_block=ResidualAttentionBlock,
    new_keys=lambda key: False,
    with_text: bool = True,
    vision_output_dim: int | None | bool = True,
) -> CLIP:
    """A CLIP model from weights (cfg.pretrained), a resolved architecture, or a named one.

    Records the resolved architecture in cfg.architecture so a saved model rebuilds without the file.
    """
    if cfg.pretrained:
        model = load_clip(
            cfg.pretrained,
            heads=cfg.heads,
            text_heads=cfg.text_heads,
            quick_gelu=cfg.quick_gelu,
            image_resolution=cfg.image_resolution,
            with_text=with_text,
            vision_output_dim=vision_output_dim,
            vision_block=vision_block,
            new_keys=new_keys,
        )
    else:
        if cfg.architecture:
            config = CLIPConfig.from_dict(cfg.architecture)
        else:
            config = get_architecture(cfg.arch, quick_gelu=cfg.quick_gelu)
            if cfg.heads:
                config = replace(config, vision_heads=cfg.heads)
            if cfg.text_heads:
                config = replace(config, text_heads=cfg.text_heads)
            if cfg.image_resolution:
                config = replace(config, image_resolution=cfg.image_resolution)
        model = CLIP(config, vision_block=vision_block, with_text=with_text, vision_output_dim=vision_output_dim)
    cfg.architecture = model.config.to_dict()
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model


def freeze(module: nn.Module) -> nn.Module:
    """No gradients and eval mode (kept by VideoRecognizer.train for modules in `frozen_modules`)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross entropy for (B,) class ids or (B, K) soft targets (Mixup/CutMix already smoothed)."""
    if target.dim() == 1:
        return F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
    return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def is_no_decay(name: str, param: nn.Parameter) -> bool:
    """Norm weights, biases, embeddings and tokens: the usual no-weight-decay set (timm, open_clip)."""
    return param.ndim <= 1 or "embedding" in name or "token" in name or name.endswith("logit_scale")


@dataclass(frozen=True)
class ClassVocabulary:
    """The classes a text method scores: names and, where a release has them, descriptions
    (FROSTER's rephrased classes); a description of None means the bare name."""

    names: tuple[str, ...]
    descriptions: tuple[str | None, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        descriptions = tuple(self.descriptions) or (None,) * len(self.names)
        if len(descriptions) != len(self.names):
            raise ValueError(f"{len(descriptions)} class descriptions for {len(self.names)} class names")
        # A description equal to its name carries nothing: store it as bare.
        object.__setattr__(self, "descriptions", tuple(
            None if d is None or str(d) == n else str(d) for n, d in zip(self.names, descriptions)))

    @classmethod
    def of(cls, classes) -> "ClassVocabulary":
        """A ClassVocabulary as is, or one of bare names from any sequence of strings."""
        return classes if isinstance(classes, ClassVocabulary) else cls(tuple(classes))

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def with_descriptions(self, known: dict[str, str]) -> "ClassVocabulary":
        """This vocabulary, bare names given the description `known` holds for them."""
        return ClassVocabulary(self.names, tuple(d if d is not None else known.get(n)
                                                 for n, d in zip(self.names, self.descriptions)))

    def texts(self) -> list[str]:
        """"Name: description" per class ("Name" where it has none), FROSTER's entry format."""
        return [n if d is None else f"{n}: {d}" for n, d in zip(self.names, self.descriptions)]


class VideoRecognizer(nn.Module):
    """Base class of every method; the contract is in this module's docstring (docs/contract.md)."""

    uses_text: ClassVar[bool] = False  # True: classes come from set_classes, not a fixed head
    uses_descriptions: ClassVar[bool] = False  # True: the class descriptions are the text it encodes (FROSTER)
    decay_all: ClassVar[bool] = False  # True: weight decay on every trainable parameter (EVL recipe)
    training_only_prefixes: ClassVar[tuple[str, ...]] = ()  # state-dict prefixes left out of model files (teachers)

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.class_names: list[str] | None = None
        self.vocabulary: ClassVocabulary | None = None
        self.known_descriptions: dict[str, str] = {}  # every description given, by class name

    # -- the contract ---------------------------------------------------------------------------

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) normalised video -> (B, D) video features."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_features (docs/contract.md)")

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) video features -> (B, K) logits."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_head (docs/contract.md)")

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(video))

    def input_config(self) -> dict:
        """{"data": DataConfig fields, "test": TestConfig fields}: how this model is fed."""
        raise NotImplementedError(f"{type(self).__name__} must implement input_config (docs/contract.md)")

    def class_embeddings(self) -> torch.Tensor:
        """(K, D') class embeddings of the current vocabulary, cached (text methods only)."""
        raise NotImplementedError(f"{type(self).__name__} classifies with a trained head; it has no class embeddings")

    def vocabulary_changed(self) -> None:
        """Text methods: the vocabulary changed; re-derive tokens, drop cached class embeddings."""
        raise NotImplementedError(f"{type(self).__name__} must implement vocabulary_changed (docs/contract.md)")

    def set_classes(self, classes) -> None:
        """A ClassVocabulary (or class names) to score. Bare names get the descriptions given
        before for the same names; the same vocabulary again changes nothing (caches kept)."""
        if not self.uses_text:
            raise ValueError(
                f"{type(self).__name__} classifies with a trained linear head; it cannot take new class "
                "names. Use a text-based method (frozen, xclip, text4vis, froster) for zero-shot."
            )
        vocabulary = ClassVocabulary.of(classes)
        if not len(vocabulary):
            raise ValueError(f"{type(self).__name__} needs at least one class name")
        self.known_descriptions.update({n: d for n, d in zip(vocabulary.names, vocabulary.descriptions) if d})
        vocabulary = vocabulary.with_descriptions(self.known_descriptions)
        if vocabulary == self.vocabulary:
            return
        self.vocabulary = vocabulary
        self.class_names = list(vocabulary.names)
        self.vocabulary_changed()

    def set_class_names(self, names) -> None:
        """`set_classes` with names (or a ClassVocabulary)."""
        self.set_classes(names)

    def freeze_classes(self) -> None:
        """Fix the current class embeddings as a buffer and drop the text tower (for export):
        the model then holds no text weights and `class_embeddings()` returns the buffer."""
        if not self.uses_text:
            return
        with torch.no_grad():
            embeddings = self.class_embeddings().detach().clone()
        self.register_buffer("frozen_class_embeddings", embeddings)
        self.class_embeddings = self._frozen_class_embeddings  # the instance attribute shadows the method
        self.drop_text_tower()

    def _frozen_class_embeddings(self) -> torch.Tensor:
        return self.frozen_class_embeddings

    def drop_text_tower(self) -> None:
        """Remove the text encoder (text methods keep their CLIP in `self.clip`; override otherwise)."""
        self.clip.drop_text_tower()

    # Modules that must stay in eval mode and out of the optimiser (frozen backbones, teachers).
    def frozen_modules(self) -> list[nn.Module]:
        return []

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen_modules():
            if module is not None:  # a text tower dropped by freeze_classes
                module.eval()
        return self

    def loss(self, video: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> dict[str, torch.Tensor]:
        logits = self(video)
        return {"loss": soft_cross_entropy(logits, target, label_smoothing), "logits": logits}

    def no_weight_decay(self, name: str, param: nn.Parameter) -> bool:
        """True for parameters kept out of weight decay (methods with an official rule override)."""
        return is_no_decay(name, param)

    def lr_scale(self, name: str) -> float:
        """Learning-rate multiplier for a trainable parameter (methods override, e.g. X-CLIP)."""
        return 1.0

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Trainable parameters grouped by (weight decay, lr scale); frozen ones are left out."""
        groups: dict[tuple[float, float], dict] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            decay = weight_decay if (self.decay_all or not self.no_weight_decay(name, param)) else 0.0
            scale = self.lr_scale(name)
            group = groups.setdefault(
                (decay, scale), {"params": [], "names": [], "weight_decay": decay, "lr_scale": scale}
            )
            group["params"].append(param)
            group["names"].append(name)
        return list(groups.values())
