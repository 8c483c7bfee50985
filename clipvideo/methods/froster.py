"""FROSTER: "Frozen CLIP is a Strong Teacher for Open-Vocabulary Action Recognition".

Huang, Zhou, Yao, Han; ICLR 2024, arXiv:2402.03241. Official code: github.com/Visual-AI/FROSTER
(built on Open-VCLIP and PySlowFast).

In data-flow order:
1. Student = Open-VCLIP's temporal CLIP: both towers fine-tuned; in every vision block each
   frame's queries attend to its own keys/values and to those of the previous and next frame
   (`ExpandTemporalViewBlock`, no new parameter). Every frame is embedded on its own.
2. Classes are rephrased descriptions "Name: description"; the classifier averages 28 templated
   prompt sets plus the bare description (each set L2-normalised); training draws 2 sets per step.
3. Logits = exp(logit_scale) x cosine(frame, class), averaged over frames.
4. Training only: a frozen copy of the original CLIP (the teacher) and residual feature
   distillation: s + 0.1 * projector(s) is pulled towards the teacher's features by a cosine
   loss, per frame (vision) and per class (text); loss = CE + ratio x (both terms).
At inference the model is the student alone; teacher and projectors are not used.

Official behaviour kept: logits to 1e-5 in fp32 for the same weights, including the unmasked zero
key/value blocks at the clip's ends, the prompt wording and the set averaging, the training-time
draw of one template (Python `random`) plus the bare description, weight patching with the
original CLIP. Official quirks fixed: the class set is encoded once and cached (the official
forward re-encodes 29 x K prompts on every call); no in-place normalisation (it breaks backward
on CPU); the teacher's classifier for each template is cached (the teacher never changes);
prompts over 77 tokens are truncated with a warning instead of raising; no `.cuda()` calls.
"""

import random
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..clip import CLIP, ResidualAttentionBlock, tokenize
from ..clip.text_cache import ClassEmbeddingCache, encode_by_length
from ..clip.tokenizer import END_OF_TEXT, encode
from .base import BackboneConfig, ClassVocabulary, VideoRecognizer, build_clip, freeze, soft_cross_entropy

# ---------------------------------------------------------------------------------------------
# 1. The student's temporal attention


def expand_temporal_view(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B*T, H, L, d) per-frame keys or values -> (B*T, H, 3L, d): [next frame, previous frame,
    own frame] along the token axis. The first frame has no previous and the last no next
    frame: those blocks are zeros, not masked (score 0 in the softmax, as official)."""
    frames, heads, length, dim = x.shape
    video = x.view(frames // num_frames, num_frames, heads, length, dim)  # (B, T, H, L, d)
    # One output buffer filled by three slice copies (cheaper than nested concatenations).
    out = video.new_empty(video.shape[0], num_frames, heads, 3 * length, dim)
    out[:, :-1, :, :length] = video[:, 1:]  # frame t sees t+1
    out[:, -1, :, :length] = 0
    out[:, 1:, :, length: 2 * length] = video[:, :-1]  # frame t sees t-1
    out[:, 0, :, length: 2 * length] = 0
    out[:, :, :, 2 * length:] = video
    return out.view(frames, heads, 3 * length, dim)


class ExpandTemporalViewBlock(ResidualAttentionBlock):
    """A CLIP vision block whose attention looks at the neighbouring frames too (Open-VCLIP).

    (B*T, L, C) -> (B*T, L, C), frames of one clip adjacent; OpenAI names, so CLIP weights load.
    """

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, *, num_frames: int) -> torch.Tensor:
        q, k, v = self.attn.project_qkv(self.ln_1(x))  # each (B*T, H, L, d)
        k = expand_temporal_view(k, num_frames)  # (B*T, H, 3L, d)
        v = expand_temporal_view(v, num_frames)
        x = x + self.attn.attend(q, k, v, attn_mask)  # (B*T, L, C)
        return x + self.feed_forward(x)


# ---------------------------------------------------------------------------------------------
# 2. Rephrased class descriptions and their prompts

_PREFIXES = ("a photo of", "a video of", "a example of", "a demonstration of")  # sic, as official
_MIDDLES = ("", "a person ", "a person using ", "a person doing ", "a person during ", "a person performing ",
            "a person practicing ")
TEMPLATES = tuple(f"{prefix} {middle}{{}}." for prefix in _PREFIXES for middle in _MIDDLES)  # 28


def split_class_text(text: str) -> tuple[str, str]:
    """"Brush hair: A person is ..." -> ("Brush hair", the whole text); a bare name is both."""
    return text.split(":")[0], text


def prompt_sets(texts: list[str], templates: tuple[str, ...] = TEMPLATES, bare: bool = True) -> list[list[str]]:
    """One list of K prompts per template ("<template filled with the name> <text>"), then the
    bare texts: 28 + 1 = 29 sets at test time, as official."""
    pairs = [split_class_text(t) for t in texts]
    sets = [[f"{template.format(name)} {text}" for name, text in pairs] for template in templates]
    return sets + ([list(texts)] if bare else [])


def tokenize_truncating(prompts: list[str], context_length: int) -> torch.Tensor:
    """(N, context_length) ids; prompts that do not fit are cut (end token kept) with one warning
    naming the first one (the official tokenizer raises instead)."""
    tokens = tokenize(prompts, context_length=context_length, truncate=True)
    # Only rows whose end token sits in the last column can have been cut; re-check just those.
    full = (tokens[:, -1] == END_OF_TEXT).nonzero().flatten().tolist()
    too_long = [prompts[i] for i in full if len(encode(prompts[i])) + 2 > context_length]
    if too_long:
        warnings.warn(
            f"FROSTER: {len(too_long)} prompt(s) exceed {context_length} tokens and were truncated, e.g. "
            f"{too_long[0][:80]!r}...; shorten the class descriptions to keep all of their words",
            stacklevel=3,
        )
    return tokens


# ---------------------------------------------------------------------------------------------
# The model


@dataclass
class Config:
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(arch="ViT-B/16"))
    num_frames: int = 8  # T (official DATA.NUM_FRAMES); the attention itself works for any T
    distillation: bool = True  # frozen-teacher residual feature distillation while training (FROSTER)
    distillation_ratio: float = 2.0  # weight of the two cosine terms (official MODEL.DISTILLATION_RATIO)
    residual_weight: float = 0.1  # alpha in s + alpha * projector(s) (hard-coded 0.1 officially)
    train_prompt_sets: int = 1  # templates drawn per training step, plus the bare description (official: 1)
    text_batch: int = 256  # prompts encoded at once (sorted by length) when building the test-time classifier
    build_teacher: bool = True  # False for a model rebuilt for inference: no teacher, no distillation
    # "Name: description" per class, kept so a saved model re-encodes the same prompts; set by set_class_names.
    class_texts: list[str] | None = None


class FROSTER(VideoRecognizer):
    """Video (B, T, 3, H, W), CLIP-normalised -> logits (B, K) over the classes set by description."""

    uses_text = True
    uses_descriptions = True  # it encodes "Name: description" prompts; bare names lose FROSTER's protocol
    training_only_prefixes = ("teacher.",)

    def __init__(self, config: Config, clip: CLIP, teacher: CLIP | None = None):
        super().__init__(config)
        self.clip = clip  # the student: both towers and logit_scale are trained
        embed = clip.config.embed_dim
        self.teacher = freeze(teacher) if teacher is not None else None
        if config.distillation:
            self.projector_v = self._projector(embed)
            self.projector_t = self._projector(embed)
        # Descriptions a saved model was given (files before ClassVocabulary stored only these).
        self.known_descriptions.update(_descriptions(config.class_texts or []))
        self.text_tokens: torch.Tensor | None = None  # (P, K, L) ids of every prompt set
        self.class_cache = ClassEmbeddingCache("froster")  # test-time (K, E) classifiers, memory and disk
        self._teacher_text_cache: dict[tuple, torch.Tensor] = {}  # (sets, key) -> teacher (K, E)

    @staticmethod
    def _projector(dim: int) -> nn.Sequential:
        """Linear -> GELU -> Linear, no biases; the last layer starts at zero, so s + 0.1 p(s) = s."""
        projector = nn.Sequential(nn.Linear(dim, dim, bias=False), nn.GELU(), nn.Linear(dim, dim, bias=False))
        nn.init.kaiming_normal_(projector[0].weight)
        nn.init.zeros_(projector[2].weight)
        return projector

    def frozen_modules(self) -> list[nn.Module]:
        return [self.teacher] if self.teacher is not None else []

    # -- text side ------------------------------------------------------------------------------

    def set_classes(self, classes) -> None:
        """A ClassVocabulary, or entries as "Name: description" (FROSTER's rephrased files) or bare
        names; the label is the text before the first colon. Bare names keep the descriptions
        given before for them. Prompts are tokenised now, encoded on first use."""
        if not isinstance(classes, ClassVocabulary):
            pairs = [_name_and_description(str(t)) for t in classes]
            classes = ClassVocabulary(tuple(name for name, _ in pairs), tuple(text for _, text in pairs))
        super().set_classes(classes)

    def vocabulary_changed(self) -> None:
        texts = self.vocabulary.texts()
        sets = prompt_sets(texts)
        tokens = tokenize_truncating([p for prompts in sets for p in prompts], self.clip.config.context_length)
        # Under the causal mask nothing after the last end token reaches an end-token feature.
        tokens = tokens[:, : int(tokens.argmax(dim=-1).max()) + 1]  # (P*K, L)
        self.config.class_texts = texts  # saved with the model: a rebuilt one re-encodes the same prompts
        self.text_tokens = tokens.view(len(sets), len(texts), -1)  # (P, K, L)
        self._teacher_text_cache = {}

    def _tokens(self) -> torch.Tensor:
        if self.text_tokens is None:
            raise RuntimeError("FROSTER classifies with class descriptions: call model.set_class_names([...]) first")
        return self.text_tokens

    def encode_prompt_sets(self, clip: CLIP, tokens: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        """(P, K, L) ids -> (K, E) classifier: normalise each set, average the sets, normalise."""
        sets, classes, length = tokens.shape
        flat = tokens.reshape(sets * classes, length).to(clip.positional_embedding.device)
        features = encode_by_length(clip.encode_text, flat, batch or len(flat))  # (P*K, E)
        features = F.normalize(features.view(sets, classes, -1), dim=-1)  # (P, K, E)
        return F.normalize(features.mean(dim=0), dim=-1)  # (K, E)

    def class_embeddings(self) -> torch.Tensor:
        """(K, E) test-time classifier over all 29 prompt sets, encoded without gradients. Kept per
        (text weights, prompts, dtype, autocast, device), a few at a time, so a weight change
        (optimiser step, load_state_dict, patching) re-encodes and fp32/bf16 calls each hit their
        own; stored on disk too in eval mode without gradients (`clip.text_cache`)."""
        tokens = self._tokens()
        return self.class_cache.get(
            self.clip, tokens,
            lambda: self.encode_prompt_sets(self.clip, tokens, self.config.text_batch),
            persist=not self.training and not torch.is_grad_enabled())

    def draw_training_sets(self) -> list[int]:
        """Indices of the prompt sets for one training step: templates drawn uniformly with Python's
        `random` (as official), plus the bare description (the last set)."""
        tokens = self._tokens()
        bare = tokens.shape[0] - 1
        return [random.randint(0, bare - 1) for _ in range(self.config.train_prompt_sets)] + [bare]

    def teacher_class_embeddings(self, sets: list[int]) -> torch.Tensor:
        """(K, E) teacher classifier for these prompt sets; cached, the teacher never changes."""
        device = self.teacher.positional_embedding.device
        autocast = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
        key = (tuple(sets), id(self.text_tokens), device, self.teacher.positional_embedding.dtype, autocast)
        if key not in self._teacher_text_cache:
            with torch.no_grad():
                self._teacher_text_cache[key] = self.encode_prompt_sets(self.teacher, self._tokens()[sets])
        return self._teacher_text_cache[key]

    # -- video side -----------------------------------------------------------------------------

    def frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> L2-normalised student frame embeddings (B*T, E), frames adjacent."""
        if video.ndim != 5:
            raise ValueError(f"FROSTER expects video shaped (B, T, 3, H, W), got {tuple(video.shape)}")
        num_frames = video.shape[1]
        frames = self.clip.visual(video.flatten(0, 1), num_frames=num_frames)  # (B*T, E)
        return F.normalize(frames, dim=-1)

    def logits(self, frames: torch.Tensor, classifier: torch.Tensor, batch: int) -> torch.Tensor:
        """exp(logit_scale) x cosine per frame, averaged over the frames: (B*T, E) -> (B, K)."""
        per_frame = self.clip.logit_scale.exp() * frames @ classifier.to(frames.dtype).t()  # (B*T, K)
        return per_frame.view(batch, -1, per_frame.shape[-1]).mean(dim=1)

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, E): the mean of the normalised frame embeddings (the per-frame
        cosines averaged over frames equal the cosine with this mean: the head is linear in it)."""
        frames = self.frame_features(video)  # (B*T, E)
        return frames.view(video.shape[0], -1, frames.shape[-1]).mean(dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.clip.logit_scale.exp() * features @ self.class_embeddings().to(features.dtype).t()  # (B, K)

    # -- training: classification plus residual feature distillation ----------------------------

    def loss(self, video: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> dict[str, torch.Tensor]:
        sets = self.draw_training_sets()
        frames = self.frame_features(video)  # (B*T, E)
        classifier = self.encode_prompt_sets(self.clip, self._tokens()[sets])  # (K, E), with gradients
        logits = self.logits(frames, classifier, video.shape[0])  # (B, K)
        classification = soft_cross_entropy(logits, target, label_smoothing)
        if not self.config.distillation:
            return {"loss": classification, "logits": logits}
        if self.teacher is None:
            raise RuntimeError(
                "this FROSTER model was rebuilt for inference without its frozen teacher; train from a recipe "
                "(model.backbone.pretrained = the original CLIP) or set model.distillation=false"
            )
        with torch.no_grad():
            teacher_frames = F.normalize(self.teacher.visual(video.flatten(0, 1)), dim=-1)  # (B*T, E)
        teacher_classifier = self.teacher_class_embeddings(sets)  # (K, E)
        alpha = self.config.residual_weight
        frames_hat = frames + alpha * self.projector_v(frames)
        classifier_hat = classifier + alpha * self.projector_t(classifier)
        visual_term = 1 - F.cosine_similarity(frames_hat.float(), teacher_frames.float(), dim=-1).mean()
        text_term = 1 - F.cosine_similarity(classifier_hat.float(), teacher_classifier.float(), dim=-1).mean()
        distill = visual_term + text_term
        loss = classification + self.config.distillation_ratio * distill
        return {"loss": loss, "logits": logits, "classification": classification.detach(),
                "distillation": distill.detach()}

    # -- evaluation options and settings --------------------------------------------------------

    def patch_weights(self, original: dict[str, torch.Tensor], ratio: float) -> None:
        """Weight patching (Open-VCLIP, TEST.PATCHING_MODEL): every student tensor that the original
        CLIP also has becomes ratio * original + (1 - ratio) * fine-tuned (ratio weights the original,
        in the original's dtype first, as official)."""
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"patching_ratio must lie in [0, 1], got {ratio}")
        own = self.clip.state_dict()
        unknown = sorted(set(original) - set(own))
        if unknown:
            raise ValueError(f"the original CLIP has {len(unknown)} tensors the student lacks, e.g. {unknown[:3]}")
        with torch.no_grad():
            for key, value in original.items():
                if own[key].shape != value.shape:
                    raise ValueError(f"original CLIP {key}: shape {tuple(value.shape)} vs {tuple(own[key].shape)}")
                patched = (value * ratio).to(own[key].dtype) + own[key] * (1 - ratio)
                own[key].copy_(patched)
        self.class_cache.clear()
        self._teacher_text_cache = {}

    def input_config(self) -> dict:
        """The official input: 8 frames at stride 16 (30 fps), FROSTER's frame positions, short side
        224 and centre crop at test, U[224, 256] short side then a random 224 crop in training,
        CLIP mean/std; logits averaged over views (PySlowFast's ensemble method "sum")."""
        size = self.clip.config.image_resolution
        return {"data": {"num_frames": self.config.num_frames, "sampling": "dense", "frame_stride": 16,
                         "sampling_protocol": "froster", "input_size": size, "short_side": size,
                         "train_short_side": [size, round(size * 256 / 224)], "train_crop": "random",
                         "normalization": "clip"},
                "test": {"aggregate": "logit"}}

    def no_weight_decay(self, name: str, param: nn.Parameter) -> bool:
        """Official ZERO_WD_1D_PARAM: 1-D tensors and biases are not decayed (the 0-d logit_scale is)."""
        return param.ndim == 1 or name.endswith(".bias")


def _name_and_description(text: str) -> tuple[str, str | None]:
    """"Brush hair: A person is ..." -> ("Brush hair", "A person is ..."); a bare name -> (name, None)."""
    name, colon, description = text.partition(":")
    return (name.strip(), description.strip()) if colon and description.strip() else (text.strip(), None)


def _descriptions(texts: list[str]) -> dict[str, str]:
    """{name: description} for the "Name: description" entries that carry one."""
    return {name: text for name, text in map(_name_and_description, texts) if text}


def inference_config(config: Config) -> Config:
    """The config a model is rebuilt with for inference: the teacher is not built (not in files)."""
    config.build_teacher = False
    return config


def build(config: Config, num_classes: int, class_names: list[str] | None = None) -> FROSTER:
    clip = build_clip(config.backbone, vision_block=ExpandTemporalViewBlock)
    teacher = None
    if config.distillation and config.build_teacher:
        # The teacher is the CLIP the student starts from, with plain (per-frame) attention.
        teacher = CLIP(clip.config)
        teacher.load_state_dict(clip.state_dict())
    model = FROSTER(config, clip, teacher)
    if class_names is not None:
        if num_classes and len(class_names) != num_classes:
            raise ValueError(f"FROSTER got {len(class_names)} class names for {num_classes} classes")
        model.set_class_names(class_names)
    return model
