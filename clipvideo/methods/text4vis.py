"""Text4Vis: "Revisiting Classifier: Transferring Vision-Language Models for Video Recognition".

Wu, Sun, Ouyang; AAAI 2023, arXiv:2207.01297 (IJCV 2023 extension "A Classifier Perspective").
Official code: github.com/whwu95/Text4Vis.

1. Each of the T frames goes through the CLIP image tower (fine-tuned at 0.1x the base LR).
2. A temporal fusion turns the T frame embeddings into one video embedding: `transf`, the
   official `Transf` video header (6 pre-LN blocks over time, positions from a 77-row table,
   residual to the frame embeddings, LayerNorm eps 1e-12, then the mean over T), or `mean`.
3. The classifier is not learned: a constant (K, E) matrix, by default the frozen CLIP text
   tower's embeddings of "a video of a person {name}." made once per class set (a buffer,
   never a parameter); logits = exp(logit_scale) * cosine(video, class row).
   The paper's other classifiers (`lda`, `random`, `orthogonal`) and an official precomputed
   `text_feats_*.pt` file (`file`) are selectable.

Official behaviour kept: logits to 5e-6 in fp32 for the same weights (tests/text4vis); parameter
names `fusion_model.*`; the two optimiser groups (visual tower and logit_scale at 0.1x, fusion at
1x, weight decay on everything). Official quirks not kept are listed in docs/text4vis.md.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..clip import tokenize
from ..clip.text_cache import ClassEmbeddingCache, encode_by_length
from .base import BackboneConfig, ClassVocabulary, VideoRecognizer, build_clip, freeze
from .temporal import FrameTransformer

FUSIONS = ("transf", "mean")  # official sim_header "Transf" | "None"
CLASSIFIERS = ("text", "lda", "random", "orthogonal", "file")


@dataclass
class Config:
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(arch="ViT-B/32"))
    num_frames: int = 8  # T frames per clip (the fusion's position table has 77 rows: any T up to 77)
    fusion: str = "transf"  # "transf": the official Transf video header | "mean": frame mean (official "None")
    fusion_layers: int = 6  # official: hard-coded 6
    fusion_heads: int | None = None  # default: text width // 64 (official rule; 8 for B, 12 for L)
    fusion_positions: int = 77  # rows of the temporal position table (official: the text context length)
    classifier: str = "text"  # text | lda | random | orthogonal | file (see CLASSIFIERS)
    classifier_file: str | None = None  # (K, E) tensor for "file" (official text_feats_*.pt) and "lda"
    classifier_seed: int = 0  # seed of the "random" and "orthogonal" classifiers
    template: str = "a video of a person {}."  # the single official prompt
    visual_lr_scale: float = 0.1  # official solver.clip_ratio: LR of the image tower and logit_scale
    # Start from a trained Text4Vis model (official train.py file or native): image tower, fusion, logit_scale.
    init_checkpoint: str | None = None


# ---------------------------------------------------------------------------------------------
# 2. Temporal fusion (the official `video_header`)


class TransfFusion(nn.Module):
    """(B, T, E) frame embeddings -> (B, E): the shared `FrameTransformer` with the official
    `frame_position_embeddings` table (77 rows; the first T are used). Keys follow the official
    `fusion_model.frame_position_embeddings.weight`, `fusion_model.transformer.resblocks.i.*`."""

    def __init__(self, width: int, layers: int, heads: int, positions: int = 77):
        super().__init__()
        self.frame_position_embeddings = nn.Embedding(positions, width)
        self.transformer = FrameTransformer(width, layers, heads, ln_eps=1e-12)
        # Official init: Linear and Embedding weights N(0, 0.02), Linear biases 0; the packed
        # attention in-projection keeps its Xavier-uniform weight and zero bias.
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        num_frames = frames.shape[1]
        table = self.frame_position_embeddings.weight
        if num_frames > table.shape[0]:
            raise ValueError(f"Text4Vis fusion has {table.shape[0]} temporal positions, got {num_frames} frames")
        return self.transformer(frames, table[:num_frames])  # (B, E)


# ---------------------------------------------------------------------------------------------
# 3. Classifiers (§b4 of the paper's study): one constant (K, E) matrix per class set


def random_classifier(num_classes: int, dim: int, seed: int) -> torch.Tensor:
    """Rows drawn from N(0, 1) (the paper's random-classifier baseline)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_classes, dim, generator=generator)


def orthogonal_classifier(num_classes: int, dim: int, seed: int) -> torch.Tensor:
    """The first K rows of Q from the QR decomposition of a (E, E) normal matrix (K <= E)."""
    if num_classes > dim:
        raise ValueError(
            f"an orthogonal classifier has at most {dim} rows (embedding width), got {num_classes} classes")
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64), mode="complete")
    return q[:num_classes].float()


def lda_classifier(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                   shrinkage: float = 1e-3) -> torch.Tensor:
    """Linear discriminant analysis on (N, E) features: row k = mu_k Sigma^-1 (sklearn's `coef_`
    without intercepts, which a cosine classifier cannot use); Sigma is the pooled within-class
    covariance, shrunk towards its mean eigenvalue so that few samples per class still invert."""
    features = features.double()
    means = torch.zeros(num_classes, features.shape[1], dtype=torch.float64)
    for k in range(num_classes):
        members = features[labels == k]
        if len(members) == 0:
            raise ValueError(f"LDA: class {k} has no sample; every class needs at least one video")
        means[k] = members.mean(dim=0)
    centred = features - means[labels]
    covariance = centred.t() @ centred / max(1, len(features) - num_classes)
    scale = covariance.diagonal().mean()
    covariance = (1 - shrinkage) * covariance + shrinkage * scale * torch.eye(len(covariance), dtype=torch.float64)
    return torch.linalg.solve(covariance, means.t()).t().float()  # (K, E)


def read_classifier_file(path: str, num_classes: int | None, dim: int) -> torch.Tensor:
    """A (K, E) classifier tensor saved with torch.save (official text_feats_*.pt, our LDA files)."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"{path}: classifier file not found; make it (`clipvideo text4vis-lda RECIPE` for LDA) "
            "or set model.classifier_file")
    try:
        tensor = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ValueError(f"{path}: cannot read the classifier file ({first})") from None
    if isinstance(tensor, dict) and "classifier" in tensor:
        tensor = tensor["classifier"]
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 2:
        found = getattr(tensor, "shape", type(tensor))
        raise ValueError(f"{path}: expected a (num_classes, {dim}) tensor, got {found}")
    if tensor.shape[1] != dim or (num_classes and tensor.shape[0] != num_classes):
        raise ValueError(f"{path}: classifier is {tuple(tensor.shape)}, this model needs ({num_classes or 'K'}, {dim})")
    return tensor.float()


# ---------------------------------------------------------------------------------------------
# The model


class Text4Vis(VideoRecognizer):
    """Video (B, T, 3, H, W), CLIP-normalised -> logits (B, K) against the constant classifier."""

    uses_text = True
    decay_all = True  # official: AdamW weight decay on every parameter, logit_scale included

    def __init__(self, config: Config, clip: nn.Module):
        super().__init__(config)
        if config.fusion not in FUSIONS:
            raise ValueError(f"model.fusion must be one of {FUSIONS}, got {config.fusion!r}")
        if config.classifier not in CLASSIFIERS:
            raise ValueError(f"model.classifier must be one of {CLASSIFIERS}, got {config.classifier!r}")
        if config.classifier in ("lda", "file") and not config.classifier_file:
            raise ValueError(
                f"model.classifier {config.classifier!r} needs model.classifier_file (a (K, E) tensor file)")
        self.clip = clip
        embed_dim = clip.config.embed_dim
        self.fusion_model = None
        if config.fusion == "transf":
            heads = config.fusion_heads or max(1, clip.config.text_width // 64)
            self.fusion_model = TransfFusion(embed_dim, config.fusion_layers, heads, config.fusion_positions)
        # The text tower only encodes class names, once per class set: frozen, outside the optimiser.
        for name, param in clip.named_parameters():
            if not name.startswith("visual.") and name != "logit_scale":
                param.requires_grad_(False)
        for module in self.frozen_modules():
            freeze(module)
        # (K, E) class embeddings, unnormalised as the official cache; saved with the model.
        self.register_buffer("classifier", torch.empty(0, embed_dim))
        self.pending_classifier_error: str | None = None
        self.class_cache = ClassEmbeddingCache("text4vis", entries=1)  # the disk store; the classifier is a buffer

    # -- classifier ------------------------------------------------------------------------------

    def frozen_modules(self) -> list[nn.Module]:
        return [self.clip.token_embedding, self.clip.transformer, self.clip.ln_final]

    @torch.no_grad()
    def encode_class_names(self, names: list[str]) -> torch.Tensor:
        """(K, E) text embeddings of `template.format(name)`, in eval mode, fp32. The text tower
        never trains, so they are read from the disk store when these text weights encoded these
        prompts before (`clip.text_cache`)."""
        prompts = [self.config.template.format(name) for name in names]
        tokens = tokenize(prompts, context_length=self.clip.config.context_length)
        on_device = tokens.to(self.classifier.device)
        return self.class_cache.get(self.clip, tokens,
                                    lambda: encode_by_length(self.clip.encode_text, on_device).float(),
                                    persist=True).clone()  # the buffer is the model's own

    def make_classifier(self, names: list[str]) -> None:
        """Build the classifier for this class set as the config says (once; not per batch)."""
        config, dim = self.config, self.classifier.shape[1]
        if config.classifier == "text":
            weights = self.encode_class_names(names)
        elif config.classifier == "random":
            weights = random_classifier(len(names), dim, config.classifier_seed)
        elif config.classifier == "orthogonal":
            weights = orthogonal_classifier(len(names), dim, config.classifier_seed)
        else:  # lda / file: read now if present; a model file rebuilt for inference brings its own
            if not Path(config.classifier_file).is_file():
                self.pending_classifier_error = (
                    f"{config.classifier_file}: classifier file not found; make it "
                    "(`clipvideo text4vis-lda RECIPE` for LDA) or set model.classifier_file")
                self.classifier = self.classifier.new_empty(0, dim)
                return
            weights = read_classifier_file(config.classifier_file, len(names), dim)
        self.pending_classifier_error = None
        self.classifier = weights.to(self.classifier.device)

    def set_classes(self, classes) -> None:
        """A class set: `text` encodes the names (zero-shot transfer = new names); `random` and
        `orthogonal` draw K rows; `file`/`lda` rows are fixed, so names only label them."""
        names = ClassVocabulary.of(classes).names
        fixed_rows = self.config.classifier in ("file", "lda") and self.classifier.numel()
        if fixed_rows and len(self.classifier) != len(names):
            raise ValueError(
                f"this model's {self.config.classifier!r} classifier has {len(self.classifier)} rows, got "
                f"{len(names)} class names; only model.classifier=text can take a new class set")
        super().set_classes(classes)

    def vocabulary_changed(self) -> None:
        if not (self.config.classifier in ("file", "lda") and self.classifier.numel()):
            self.make_classifier(self.class_names)

    def class_embeddings(self) -> torch.Tensor:
        """(K, E) classifier rows (unnormalised, as the official cache), made once per class set."""
        if self.pending_classifier_error:
            raise RuntimeError(self.pending_classifier_error)
        if self.classifier.numel() == 0:
            raise RuntimeError("Text4Vis has no classifier yet: call model.set_class_names([...]) first")
        return self.classifier

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A saved classifier (any class count) replaces ours, so the buffer takes its shape first.
        saved = state_dict.get(prefix + "classifier")
        if saved is not None:
            self.classifier = self.classifier.new_empty(saved.shape)
            self.pending_classifier_error = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- video side ------------------------------------------------------------------------------

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, E) video embeddings, not normalised (views average these)."""
        if video.ndim != 5:
            raise ValueError(f"Text4Vis expects video shaped (B, T, 3, H, W), got {tuple(video.shape)}")
        batch, num_frames = video.shape[:2]
        frames = self.clip.encode_image(video.flatten(0, 1)).view(batch, num_frames, -1)  # (B, T, E)
        if self.fusion_model is None:
            return frames.mean(dim=1)
        return self.fusion_model(frames)  # (B, E)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, E) video embeddings -> (B, K): exp(logit_scale) * cosine with each class row."""
        video = F.normalize(features, dim=-1)
        classes = F.normalize(self.class_embeddings().to(video.dtype), dim=-1)
        return self.clip.logit_scale.exp().to(video.dtype) * video @ classes.t()

    def input_config(self) -> dict:
        """The official test input: T uniform segments (Text4Vis positions), short side 256 for 224
        crops (else the crop size), centre crop, CLIP mean/std; video features averaged over views
        before the classifier (official)."""
        size = self.clip.config.image_resolution
        return {"data": {"num_frames": self.config.num_frames, "sampling": "segment", "sampling_protocol": "text4vis",
                         "input_size": size, "short_side": 256 if size == 224 else size, "normalization": "clip"},
                "test": {"aggregate": "feature"}}

    # -- optimisation ----------------------------------------------------------------------------

    def lr_scale(self, name: str) -> float:
        """Official groups: the image tower and logit_scale at clip_ratio (0.1), the fusion at 1."""
        return self.config.visual_lr_scale if ("visual" in name or "logit_scale" in name) else 1.0


def load_init_checkpoint(model: Text4Vis, path: str) -> None:
    """Copy the image tower, fusion and logit_scale of a trained Text4Vis model (official `pretrain`:
    UCF/HMDB/ANet fine-tuning starts from a Kinetics-400 model). Official or native file; every
    tensor the model needs must be there with its shape; the text tower stays the backbone's."""
    from ..clip import CheckpointError
    from ..clip.checkpoint_io import read_checkpoint
    from ..clip.load import unwrap_state_dict

    raw = read_checkpoint(path)
    sd = unwrap_state_dict(raw.get("model", raw) if isinstance(raw, dict) and "method" in raw else raw, path)
    sd = {("clip." + k if k.startswith("visual.") or k == "logit_scale" else k): v for k, v in sd.items()}
    wanted = {k: v for k, v in model.state_dict().items()
              if k.startswith(("clip.visual.", "fusion_model.")) or k == "clip.logit_scale"}
    missing = sorted(set(wanted) - set(sd))
    if missing:
        raise CheckpointError(f"{path}: model.init_checkpoint lacks {len(missing)} tensors, e.g. {missing[:3]}")
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in wanted.items() if sd[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{path}: model.init_checkpoint shape mismatch, e.g. {wrong[0]} (file vs model)")
    model.load_state_dict({k: sd[k] for k in wanted}, strict=False)


def build(config: Config, num_classes: int, class_names: list[str] | None = None) -> Text4Vis:
    model = Text4Vis(config, build_clip(config.backbone))
    if config.init_checkpoint:
        load_init_checkpoint(model, config.init_checkpoint)
        # Recorded in the run's config.yaml; a model file rebuilt for inference carries the weights itself.
        config.init_checkpoint = None
    if class_names is not None:
        if num_classes and len(class_names) != num_classes:
            raise ValueError(f"Text4Vis got {len(class_names)} class names for {num_classes} classes")
        model.set_class_names(class_names)
    return model


__all__ = ["Config", "Text4Vis", "TransfFusion", "build", "lda_classifier", "random_classifier",
           "orthogonal_classifier", "read_classifier_file", "load_init_checkpoint"]
