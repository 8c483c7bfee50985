"""clipvideo against the official EVL, AIM, X-CLIP, Text4Vis and FROSTER code: same run, same weights, CPU.

For each method whose official checkout is given, the official model is built from the official
code (random weights at published size: ViT-B/16, 8 frames, 224 px, 400 classes), its weights are
written as an official checkpoint and loaded into clipvideo through our importers
(`clipvideo.load_official(method, ...)`), and the fp32 logits of the two are compared (max
difference printed). Then it times, official and ours taking turns so that a change in machine load
hits both, each row the best of `--rounds` rounds of at least `--seconds`:
  - inference (eval, no_grad) at each `--batches` size in fp32 (both plain) and bf16 (official: bf16
    autocast over its fp32 model, as its users would run it on a CPU; ours: what `clipvideo test`
    runs in bf16, `prepare_for_inference(model, "bf16")` under autocast), and with `--compile` ours
    compiled (first-call time reported) against the official bf16 row again;
  - a training step (forward, backward, AdamW step) at batch `--train-batch` in bf16 autocast, each
    training what its official recipe trains (EVL: decoder and head, frozen backbone; AIM: adapters,
    temporal embedding, ln_post and head; X-CLIP: every parameter in the optimiser, the text
    features cached as MODEL.FIX_TEXT does; Text4Vis: image tower, fusion and logit_scale against the
    frozen text classifier; FROSTER: the whole student CLIP and the projectors, with the frozen
    teacher's distillation loss), with the growth of peak resident memory during the first step
    (AdamW state included; both in this one process, after the inference rows, so memory the
    allocator kept from earlier work can hide part of a step's peak: a rough comparison).
The text methods classify 400 class names the way their official code does at inference, noted in
each row: X-CLIP encodes the names once and caches them (use_cache), Text4Vis's test script encodes
its classifier once before the loop, FROSTER re-encodes all 29 prompt sets (11,600 prompts) in every
call. Ours encodes once per dtype (`clip.text_cache`, stored under a temporary folder here so each
run starts cold); the first call's time is noted. A FROSTER official inference call takes minutes,
so it is timed once per row (no warm-up, one round; its fp32 logit check runs at the first batch
size and is that fp32 row's official call). Its training step at ViT-B/16 with 400 classes (official
and ours in one process, gradients through 800 prompts) outgrew a 23 GB machine (killed at 24.4 GB
resident, 2026-12-06): run it where there is more memory. A method whose checkout is not given still
gets its clipvideo rows (its model built natively), with a printed line saying why the official
column is empty.

How the official code is imported and run on a CPU is the fixture generators' own mechanism,
reused here by importing them by path (`tests/fixtures/<method>/make_fixture.py`, `import_official`):
EVL (the CUDA-only buffer of the temporal cross-attention allocated on the CPU by monkeypatching),
AIM (stand-ins for the mmcv/mmaction names), X-CLIP (the folder on sys.path; where `yacs`, which
its utils/config.py imports, is not installed, a stand-in node class takes its place: the config is
never read here), Text4Vis (stand-ins for train.py's training-only imports) and FROSTER (stand-ins
for PySlowFast's registry, logging and config, the official `load` building from in-memory weights,
`Tensor.cuda` as the identity while FROSTER runs). The official AIM file also imports `einops` (pip
install einops, or put a folder holding it on PYTHONPATH). No official code is part of clipvideo.

Official checkouts: a clone of each repository, or the files the run imports taken from a bare
mirror (the commits the parity fixtures record; an archive of a whole HEAD can fail on a large
file a mirror lacks, so take only what is imported):

    git clone https://github.com/OpenGVLab/efficient-video-recognition /tmp/evl
    git clone https://github.com/taoyang1122/adapt-image-models /tmp/aim
    git clone https://github.com/microsoft/VideoX /tmp/videox      # --xclip-repo /tmp/videox/X-CLIP
    git clone https://github.com/whwu95/Text4Vis /tmp/text4vis
    git clone https://github.com/Visual-AI/FROSTER /tmp/froster
    # or, from bare mirrors:
    mkdir /tmp/evl /tmp/aim /tmp/videox /tmp/text4vis /tmp/froster
    git --git-dir=MIRROR/OpenGVLab+efficient-video-recognition/repo archive b282e8b | tar -x -C /tmp/evl
    git --git-dir=MIRROR/taoyang1122+adapt-image-models/repo archive b3580d2 mmaction | tar -x -C /tmp/aim
    git --git-dir=MIRROR/microsoft+VideoX/repo archive 1744b21 X-CLIP | tar -x -C /tmp/videox
    git --git-dir=MIRROR/whwu95+Text4Vis/repo archive d61b34d clip modules train.py | tar -x -C /tmp/text4vis
    git --git-dir=MIRROR/Visual-AI+FROSTER/repo archive 230ae88 slowfast configs | tar -x -C /tmp/froster

Usage:

    python benchmarks/vs_official.py --evl-repo /tmp/evl --aim-repo /tmp/aim --compile --json vs.json
    python benchmarks/vs_official.py --methods xclip text4vis --xclip-repo /tmp/videox/X-CLIP \\
        --text4vis-repo /tmp/text4vis --rounds 2 --seconds 3 --json vs_text.json
    python benchmarks/vs_official.py --methods froster --froster-repo /tmp/froster --batches 1 --rounds 1 --json vs_froster.json
    python benchmarks/vs_official.py --evl-repo /tmp/evl --arch tiny --resolution 64 --frames 4 \\
        --batches 1 --rounds 1 --seconds 0.1                               # smoke run, seconds
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.util
import json
import os
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from clipvideo.clip import create_clip, get_architecture  # noqa: E402
from clipvideo.engine.fastpath import prepare_for_inference, timed_first_call  # noqa: E402
from clipvideo.engine.machine import load_average, load_report, peak_kib, reset_peak, resident_kib  # noqa: E402
from clipvideo.engine.precision import autocast  # noqa: E402
from clipvideo.methods import aim, evl, froster, text4vis, xclip  # noqa: E402
from clipvideo.methods.base import BackboneConfig  # noqa: E402
from clipvideo.official import load_official  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from _shared import CLASS_WORDS, fixture_generator, official_aim_classes  # noqa: E402

CPU = torch.device("cpu")
NUM_CLASSES = 400
SEED = 0
LEARNING_RATE, WEIGHT_DECAY = 3e-4, 0.05
METHODS = ("evl", "aim", "xclip", "text4vis", "froster")
# What marks a checkout of each official repository (relative to the folder given).
CHECKOUT_MARKERS = {"evl": "model.py", "aim": "mmaction/models/backbones/vit_clip.py", "xclip": "models/xclip.py",
                    "text4vis": "modules/video_clip.py", "froster": "slowfast/models/temporalclip_video_model.py"}
LABELS = {"evl": "EVL", "aim": "AIM", "xclip": "X-CLIP", "text4vis": "Text4Vis", "froster": "FROSTER"}


# ---------------------------------------------------------------------------------------------
# The two models of each method: official (a callable on the official layout) and ours


class Pair:
    """One method's official model (or None) and ours, with the same weights.

    run_official(video): official logits for our (B, T, 3, H, W) video, in the official layout and
    call. official_loss(video, target) and official_parameters: one official training step's loss and
    what its optimiser holds; official_training and ours_training: the models that train (default
    `official` and `ours`). official_once:
    an official inference call is timed once per row (one round, no warm-up): it takes minutes.
    notes: row kind ("inference", "training") -> text for the notes column. cleanup: undoes
    process-wide patches the official code needed."""

    def __init__(self, method: str, ours: nn.Module, official: nn.Module | None = None, run_official=None,
                 official_loss=None, official_parameters=None, official_training: nn.Module | None = None,
                 ours_training: nn.Module | None = None, official_once: bool = False, notes: dict | None = None,
                 cleanup=None):
        self.method, self.ours, self.official = method, ours, official
        self.run_official, self.official_loss, self.official_parameters = run_official, official_loss, official_parameters
        self.official_training = official_training if official_training is not None else official
        self.ours_training = ours_training if ours_training is not None else ours
        self.official_once, self.notes, self.cleanup = official_once, notes or {}, cleanup
        self.uses_text = getattr(ours, "uses_text", False)  # classes given as text: the first call may encode them


class Recognizer(nn.Module):
    """The official AIM Recognizer3D's test path (backbone, then I3D head), under its key names."""

    def __init__(self, backbone: nn.Module, cls_head: nn.Module):
        super().__init__()
        self.backbone, self.cls_head = backbone, cls_head

    def forward(self, video):
        return self.cls_head(self.backbone(video))


def to_official_layout(video: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W), ours -> (B, 3, T, H, W), the EVL, AIM and FROSTER codes'."""
    return video.transpose(1, 2).contiguous()


def cross_entropy_loss(forward):
    """The plain classification loss over an official forward (video, target) -> loss."""
    return lambda video, target: F.cross_entropy(forward(video).float(), target)


def architecture(args):
    return get_architecture(args.arch, image_resolution=args.resolution)


def decoder_layers(args) -> int:
    return min(4, architecture(args).vision_layers)


def class_names(count: int) -> list[str]:
    """Real words with a group number: tokenised lengths like real class names."""
    return [f"{CLASS_WORDS[i % len(CLASS_WORDS)]} {i // len(CLASS_WORDS)}" for i in range(count)]


def class_descriptions(count: int) -> list[str]:
    """FROSTER's "Name: description" class texts."""
    return [f"{name}: a person is {name.split()[0]} in the style number {i}" for i, name in enumerate(class_names(count))]


def import_official(args, method: str):
    """(the method's fixture generator, the official modules it imports from `--<method>-repo`),
    the official files' import-time warnings hushed."""
    generator = fixture_generator(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generator, generator.import_official(Path(getattr(args, f"{method}_repo")).resolve())


def native_text_pair(method: str, module, args, texts: list[str], notes: dict) -> Pair:
    """Ours alone, built natively (no official checkout given), with random weights of SEED."""
    torch.manual_seed(SEED)
    ours = module.build(module.Config(**text_model_config(args)), args.classes, class_names=texts)
    return Pair(method, ours.eval(), notes=notes)


def write_backbone(args, path: Path) -> None:
    """A random CLIP image tower of `--arch` as an OpenAI-style TorchScript file (`.visual` with
    OpenAI names): what the official EVL loader reads with torch.jit.load, and our importer too."""
    torch.manual_seed(SEED)
    visual = create_clip(architecture(args), with_text=False).visual.eval()

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = visual

        def forward(self, images):
            return self.visual(images)

    example = torch.zeros(1, 3, args.resolution, args.resolution)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        torch.jit.trace(Holder(), example, check_trace=False).save(str(path))


def evl_pair(args, workdir: Path) -> Pair:
    arch = architecture(args)
    if args.evl_repo is None:
        config = evl.Config(backbone=BackboneConfig(arch=args.arch, image_resolution=args.resolution),
                            num_frames=args.frames, decoder_layers=decoder_layers(args))
        torch.manual_seed(SEED)
        return Pair("evl", evl.build(config, args.classes).eval())
    generator, official_code = import_official(args, "evl")
    # A preset of the chosen size in the official preset table (ViT-B/16 at 224 px equals 'ViT-B/16-lnpre').
    preset = f"clipvideo {args.arch} {args.resolution}px"
    sys.modules["vision_transformer"].vit_presets[preset] = dict(
        feature_dim=arch.vision_width, input_size=(args.resolution,) * 2, patch_size=(arch.vision_patch_size,) * 2,
        num_heads=arch.vision_heads, num_layers=arch.vision_layers, mlp_factor=arch.mlp_ratio, ln_pre=True)
    backbone = workdir / "clip_visual.torchscript.pt"
    write_backbone(args, backbone)
    width = arch.vision_width
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = generator.build(official_code, backbone, "freeze_fp32", num_frames=args.frames, backbone_name=preset,
                                   num_classes=args.classes, decoder_num_layers=decoder_layers(args),
                                   decoder_qkv_dim=width, decoder_num_heads=max(1, width // 64), decoder_mlp_factor=4.0)
    generator.randomize_decoder(official, SEED)  # the zero-initialised tables too, so they are compared
    checkpoint = workdir / "evl_official.pth"
    torch.save({"model": official.state_dict()}, checkpoint)  # what the official training code saves
    ours = load_official("evl", str(checkpoint), backbone=str(backbone), heads=arch.vision_heads)
    run = lambda video: official(to_official_layout(video))  # noqa: E731
    # The frozen backbone is not a registered submodule: every parameter, decoder and head, trains.
    return Pair("evl", ours, official, run, cross_entropy_loss(run), list(official.parameters()))


def aim_pair(args, workdir: Path) -> Pair:
    arch = architecture(args)
    if args.aim_repo is None:
        torch.manual_seed(SEED)
        config = aim.Config(backbone=BackboneConfig(arch=args.arch, image_resolution=args.resolution),
                            num_frames=args.frames)
        return Pair("aim", aim.build(config, args.classes).eval())
    ViT_CLIP, I3DHead = official_aim_classes(args.aim_repo)
    generator = fixture_generator("aim")
    torch.manual_seed(SEED)
    official = Recognizer(
        ViT_CLIP(args.resolution, args.frames, arch.vision_patch_size, arch.vision_width, arch.vision_layers,
                 arch.vision_heads, drop_path_rate=0.2, num_tadapter=1, adapter_scale=0.5),  # the K400 recipe
        I3DHead(num_classes=args.classes, in_channels=arch.vision_width, spatial_type="avg", dropout_ratio=0.5))
    official.backbone.init_weights()
    official.cls_head.init_weights()
    generator.randomize(official, torch.Generator().manual_seed(SEED))  # non-zero adapters, so they are compared
    trains = lambda name: any(part in name for part in generator.TRAINABLE_NAME_PARTS)  # noqa: E731 (official rule)
    for name, param in official.named_parameters():
        param.requires_grad_(trains(name))
    checkpoint = workdir / "aim_official.pth"
    torch.save({"state_dict": official.state_dict()}, checkpoint)  # the runner's layout (meta left out)
    ours = load_official("aim", str(checkpoint), heads=arch.vision_heads)
    run = lambda video: official(to_official_layout(video))  # noqa: E731
    parameters = [p for name, p in official.named_parameters() if trains(name)]
    return Pair("aim", ours, official.eval(), run, cross_entropy_loss(run), parameters)


def text_model_config(args, **fields) -> dict:
    """Backbone and frames of a natively built text method (no official checkout given)."""
    return dict(backbone=BackboneConfig(arch=args.arch, image_resolution=args.resolution), num_frames=args.frames,
                **fields)


def xclip_pair(args, workdir: Path) -> Pair:
    names = class_names(args.classes)
    inference_note = "official: class text encoded on the first call, then cached (use_cache); ours: cached per dtype"
    if args.xclip_repo is None:
        return native_text_pair("xclip", xclip, args, names, {"inference": inference_note})
    arch = architecture(args)
    if importlib.util.find_spec("yacs") is None:
        # utils/config.py builds its default config from yacs nodes at import; it is never read here.
        node = fixture_generator("froster").ConfigNode
        sys.modules["yacs"] = types.SimpleNamespace(config=types.SimpleNamespace(CfgNode=node))
        sys.modules["yacs.config"] = sys.modules["yacs"].config
    generator, official_code = import_official(args, "xclip")
    tokens = official_code.clip.tokenize(names, context_length=arch.context_length)  # the official prompt: the bare name
    torch.manual_seed(SEED)
    # The published X-CLIP-B/16 (official build_model defaults: MIT 1 layer, prompt generator 2, alpha 0.1);
    # head counts are the official width // 64 everywhere, as our importer assumes.
    official = official_code.xclip.XCLIP(**dict(
        generator.HYPERPARAMETERS, embed_dim=arch.embed_dim, image_resolution=args.resolution,
        vision_layers=arch.vision_layers, vision_width=arch.vision_width, vision_patch_size=arch.vision_patch_size,
        context_length=arch.context_length, vocab_size=arch.vocab_size, transformer_width=arch.text_width,
        transformer_heads=max(1, arch.text_width // 64), transformer_layers=arch.text_layers, T=args.frames))
    generator.randomize(official, torch.unique(tokens))
    checkpoint = workdir / "xclip_official.pth"
    torch.save({"model": official.state_dict()}, checkpoint)  # the official epoch_saving's model entry
    ours = load_official("xclip", str(checkpoint))
    ours.set_class_names(names)
    run = lambda video: official(video, tokens)  # noqa: E731
    training_note = ("official: every parameter in AdamW, its forward reuses the cached text features (FIX_TEXT), "
                     "so the text tower gets no gradient; ours: image tower, MIT, prompts (train_text false)")
    return Pair("xclip", ours, official.eval(), run, cross_entropy_loss(run), list(official.parameters()),
                notes={"inference": inference_note, "training": training_note})


def text4vis_pair(args, workdir: Path) -> Pair:
    names = class_names(args.classes)
    inference_note = "official: classifier encoded once before the loop (test.py), fp32; ours: cached per dtype"
    if args.text4vis_repo is None:
        return native_text_pair("text4vis", text4vis, args, names, {"inference": inference_note})
    arch = architecture(args)
    generator, official_code = import_official(args, "text4vis")
    tokens = official_code.clip.tokenize([generator.TEMPLATE.format(name) for name in names])
    torch.manual_seed(SEED)
    base = official_code.CLIP(
        embed_dim=arch.embed_dim, image_resolution=args.resolution, vision_layers=arch.vision_layers,
        vision_width=arch.vision_width, vision_patch_size=arch.vision_patch_size, context_length=arch.context_length,
        vocab_size=arch.vocab_size, transformer_width=arch.text_width,
        transformer_heads=max(1, arch.text_width // 64), transformer_layers=arch.text_layers)
    # An OpenAI-style CLIP state dict in fp16, as released (the official loader rounds the weights to
    # fp16 before its CPU .float(); an fp32 file would give it other text weights than ours).
    clip_file = workdir / "text4vis_clip.pt"
    clip_weights = generator.redraw(base.state_dict(), torch.Generator().manual_seed(SEED + 1), torch.unique(tokens))
    torch.save({k: v.half() for k, v in clip_weights.items()}, clip_file)
    del base
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip_model, clip_state = official_code.clip.load(str(clip_file), device="cpu", jit=False, T=args.frames)
    official = official_code.VideoCLIP(clip_model, official_code.video_header("Transf", clip_state), args.frames)
    official.load_state_dict(generator.redraw(official.state_dict(), torch.Generator().manual_seed(SEED + 2)))
    official.eval()
    with torch.no_grad():
        classifier = clip_model.encode_text(tokens)  # (K, E), once, as the official test script does
    checkpoint = workdir / "text4vis_official.pt"
    optimizer = torch.optim.AdamW(official.parameters())
    official_code.epoch_saving(0, official, optimizer, str(checkpoint))  # train.py's checkpoint layout
    ours = load_official("text4vis", str(checkpoint), backbone=str(clip_file), num_frames=args.frames, class_names=names)
    run = lambda video: official(video.flatten(0, 1), classifier)  # noqa: E731 (frames (B*T, 3, H, W))
    # VideoCLIP holds the image tower, the fusion and logit_scale: what train.py's two groups train.
    return Pair("text4vis", ours, official, run, cross_entropy_loss(run), list(official.parameters()),
                notes={"inference": inference_note,
                       "training": "both: image tower, fusion, logit_scale; text classifier frozen"})


def froster_pair(args, workdir: Path) -> Pair:
    texts = class_descriptions(args.classes)
    inference_note = (f"official: re-encodes {args.classes} classes x 29 prompt sets ({29 * args.classes:,} prompts) "
                      "every call, timed once; ours: cached per dtype")
    training_note = ("both: student CLIP (both towers), projectors; frozen teacher's distillation "
                     f"(one template + the description: {2 * args.classes} prompts per tower per step)")
    if args.froster_repo is None:
        return native_text_pair("froster", froster, args, texts, {"inference": inference_note, "training": training_note})
    arch = architecture(args)
    generator, official_code = import_official(args, "froster")
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self  # the official text code moves tokens to the GPU every call

    def cleanup():
        torch.Tensor.cuda = cuda

    # The official WCLIP at `--arch` (heads width // 64, as the official build_model): an "original"
    # CLIP for the teacher and a "fine-tuned" one for the student, each the WCLIP init plus noise.
    generator.ARCH = (arch.embed_dim, args.resolution, arch.vision_layers, arch.vision_width, arch.vision_patch_size,
                      arch.context_length, arch.vocab_size, arch.text_width, max(1, arch.text_width // 64),
                      arch.text_layers)
    original = generator.draw_clip(official_code, SEED + 1, 3.3)
    student = generator.draw_clip(official_code, SEED + 2, 3.4)
    generator.patch_load(official_code, student, original)
    class_file = workdir / "froster_classes.json"
    class_file.write_text(json.dumps({str(i): text for i, text in enumerate(texts)}))

    def config(keep_teacher: bool):
        cfg = generator.config(official_code, keep_teacher)
        cfg.merge({"DATA": {"NUM_FRAMES": args.frames, "TRAIN_CROP_SIZE": args.resolution,
                            "TEST_CROP_SIZE": args.resolution, "INDEX_LABEL_MAPPING_FILE": str(class_file)},
                   "MODEL": {"NUM_CLASSES": args.classes}, "TRAIN": {"BATCH_SIZE": args.train_batch}})
        return cfg

    model_class = official_code.model.TemporalClipVideo
    build_classifier = model_class.achieve_csf_matrix
    # The constructor encodes every prompt into a classifier that neither forward path timed here reads
    # (both encode the prompts again); skipped while building, restored for the forwards.
    model_class.achieve_csf_matrix = lambda self, *a, **k: None
    try:
        torch.manual_seed(SEED)
        official = model_class(config(keep_teacher=False)).eval()
        torch.manual_seed(SEED)
        official_training = model_class(config(keep_teacher=True))
    finally:
        model_class.achieve_csf_matrix = build_classifier
    for projector in (official_training.projector_v, official_training.projector_t):
        torch.nn.init.normal_(projector[2].weight, std=0.05)  # the zero init would leave them out of the loss
    checkpoint = workdir / "froster_official.pyth"
    torch.save({"model_state": official.state_dict()}, checkpoint)  # PySlowFast's checkpoint entry
    ours = load_official("froster", str(checkpoint), num_frames=args.frames)
    ours.set_class_names(texts)
    # Ours in training: the same student with the official teacher and projectors.
    trainer = froster.build(dataclasses.replace(ours.config, distillation=True, build_teacher=True), 0)
    trainer.clip.load_state_dict(ours.clip.state_dict())
    teacher_keys = trainer.teacher.state_dict().keys()
    trainer.teacher.load_state_dict({k: v for k, v in original.items() if k in teacher_keys})
    trainer.projector_v.load_state_dict(official_training.projector_v.state_dict())
    trainer.projector_t.load_state_dict(official_training.projector_t.state_dict())
    trainer.set_class_names(texts)
    ratio = official_training.cfg.MODEL.DISTILLATION_RATIO

    def official_loss(video, target):
        # The official classifier divides in place the tensor torch.norm has just saved for backward:
        # under CUDA AMP (its recipe) norm runs on an fp32 copy, so backward works; on a CPU it fails.
        # Here norm reads a copy, as under CUDA AMP (same values).
        norm = torch.Tensor.norm
        torch.Tensor.norm = lambda self, *a, **k: norm(self.clone(), *a, **k)
        try:
            (pred, frames_hat, text_hat), (_, teacher_frames, teacher_text) = official_training([to_official_layout(video)])
        finally:
            torch.Tensor.norm = norm
        return F.cross_entropy(pred.float(), target) + ratio * (  # the loss of the official tools/train_net.py
            (1 - F.cosine_similarity(frames_hat.float(), teacher_frames.float(), dim=-1).mean())
            + (1 - F.cosine_similarity(text_hat.float(), teacher_text.float(), dim=-1).mean()))

    parameters = [p for p in official_training.parameters() if p.requires_grad]
    return Pair("froster", ours, official, lambda video: official([to_official_layout(video)]), official_loss,
                parameters, official_training=official_training, ours_training=trainer, official_once=True,
                cleanup=cleanup,
                notes={"inference": inference_note,
                       "training": training_note + "; one timed step each; official: torch.norm on a copy, as under "
                       "its CUDA AMP (its in-place division fails backward otherwise)"})


PAIRS = {"evl": evl_pair, "aim": aim_pair, "xclip": xclip_pair, "text4vis": text4vis_pair, "froster": froster_pair}


def forget_official_code(folder: str | None) -> None:
    """Drop the modules imported from an official checkout (X-CLIP and Text4Vis both have a
    top-level `clip` package), so that the next method imports its own."""
    if folder is None:
        return
    root = str(Path(folder).resolve())
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(root):
            del sys.modules[name]
    sys.path[:] = [entry for entry in sys.path if entry != root]


# ---------------------------------------------------------------------------------------------
# Timing


def timed_in_turns(calls: dict, rounds: int, seconds: float, once: tuple = ()) -> dict[str, float]:
    """Best over `rounds` of each call's mean time over at least `seconds` (and 2 calls); in each
    round the calls take turns, so that a change in load affects them alike. A call named in `once`
    runs a single time, in the first round."""
    best = {name: float("inf") for name in calls}
    for round_index in range(rounds):
        for name, call in calls.items():
            if name in once and round_index:
                continue
            start, count = time.perf_counter(), 0
            while count < (1 if name in once else 2) or (name not in once and time.perf_counter() - start < seconds):
                call()
                count += 1
            best[name] = min(best[name], (time.perf_counter() - start) / count)
    return best


def inference_call(forward, video, precision: str):
    def call():
        with torch.no_grad(), autocast(CPU, precision):
            return forward(video)
    return call


def training_step(parameters, loss_fn, video, target):
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)

    def step():
        with autocast(CPU, "bf16"):
            loss = loss_fn(video, target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def step_memory_mib(step) -> float | None:
    """Growth of peak resident memory during one step, MiB; None where the peak cannot be reset."""
    if not reset_peak():
        return None
    before = resident_kib()
    step()
    return (peak_kib(True) - before) / 1024


def seconds_of(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(pair: Pair, args) -> tuple[list[dict], dict]:
    rows, check = [], {}
    ours, has_official = pair.ours.eval(), pair.official is not None
    label = LABELS[pair.method]
    generator = torch.Generator().manual_seed(SEED + 1)
    # An official call that takes minutes (timed once) is checked at the first batch size, and that
    # call is its fp32 row's timing: the same call, not run twice.
    check_batch = args.batches[0] if pair.official_once else 2
    if has_official:
        check_video = video = torch.randn(check_batch, args.frames, 3, args.resolution, args.resolution,
                                          generator=generator)
        with torch.no_grad():
            start = time.perf_counter()
            theirs = pair.run_official(video)
            middle = time.perf_counter()
            mine = ours(video)
            end = time.perf_counter()
        # A text method's first fp32 call encodes its classes (both sides): these two calls.
        check = {"max_abs_logit_difference": (theirs - mine).abs().max().item(),
                 "max_abs_logit": theirs.abs().max().item(),
                 "first_call_s": {"official": middle - start, "clipvideo": end - middle}}
        print(f"{label}: fp32 logits, official vs clipvideo (same weights, batch {check_batch}): max |difference| "
              f"{check['max_abs_logit_difference']:.2e} (largest |logit| {check['max_abs_logit']:.2f}); "
              f"first calls official {middle - start:.1f} s, clipvideo {end - middle:.1f} s", flush=True)

    fast = prepare_for_inference(copy.deepcopy(ours), "bf16")  # what `clipvideo test` runs in bf16
    compiled = prepare_for_inference(copy.deepcopy(ours), "bf16", compile=True) if args.compile else None
    once = ("official",) if pair.official_once else ()
    for batch in args.batches:
        reuse_check = has_official and pair.official_once and batch == check_batch == args.batches[0]
        if reuse_check:
            video = check_video
        else:
            video = torch.randn(batch, args.frames, 3, args.resolution, args.resolution, generator=generator)
        variants = [("fp32", ours, "fp32", None), ("bf16", fast, "bf16", None)]
        if compiled is not None:
            variants.append(("bf16 compiled", compiled, "bf16", timed_first_call(compiled, video, CPU, "bf16")))
        for name, model, precision, first_call in variants:
            calls = {"clipvideo": inference_call(model, video, precision)}
            checked = reuse_check and name == "fp32"  # the official call of the logit check is this row's
            if has_official and not checked:
                calls["official"] = inference_call(pair.run_official, video, precision)
            # Warm-up; a text method's first call may encode its classes, so it is reported.
            first_calls = {side: seconds_of(call) for side, call in calls.items() if side not in once}
            notes = []
            if pair.uses_text and batch == args.batches[0] and name != "bf16 compiled":  # once per precision
                notes = [pair.notes["inference"]] if "inference" in pair.notes else []
                if name == "fp32" and check:  # the logit check made the first fp32 calls
                    first_calls = check["first_call_s"]
                notes.append("first call: " + ", ".join(f"{side} {t:.1f} s" for side, t in sorted(first_calls.items())))
            seconds = timed_in_turns(calls, args.rounds, args.seconds, once)
            if checked:
                seconds["official"] = check["first_call_s"]["official"]
            rows.append(row(f"{label} inference b{batch} {name}", seconds, first_call_s=first_call, notes=notes or None))
            print(rows[-1]["row"], "done", file=sys.stderr, flush=True)
    del fast, compiled

    batch = args.train_batch
    video = torch.randn(batch, args.frames, 3, args.resolution, args.resolution, generator=generator)
    target = torch.randint(0, args.classes, (batch,), generator=generator)
    # The last rows: the models train in place.
    trainer = pair.ours_training.train()
    steps = {"clipvideo": training_step(trainer.param_groups(WEIGHT_DECAY),
                                        lambda video, target: trainer.loss(video, target)["loss"], video, target)}
    if has_official:
        pair.official_training.train()
        steps["official"] = training_step(pair.official_parameters, pair.official_loss, video, target)
    memory = {name: step_memory_mib(step) for name, step in steps.items()}  # also the warm-up (AdamW state)
    once = ("official", "clipvideo") if pair.official_once else ()  # after the first step (above), one timed step
    rows.append(row(f"{label} training step b{batch} bf16",
                    timed_in_turns(steps, args.rounds, args.seconds, once),
                    memory_mib=memory, notes=[pair.notes["training"]] if "training" in pair.notes else None))
    return rows, check


def row(name: str, seconds: dict, **extra) -> dict:
    ours, theirs = seconds["clipvideo"], seconds.get("official")
    return {"row": name, "official_ms": None if theirs is None else 1000 * theirs, "clipvideo_ms": 1000 * ours,
            "ratio": None if theirs is None else ours / theirs, **{k: v for k, v in extra.items() if v is not None}}


def table(rows: list[dict]) -> str:
    lines = ["| row | official ms | clipvideo ms | clipvideo / official | notes |", "|---|---:|---:|---:|---|"]
    for r in rows:
        notes = list(r.get("notes", []))
        if "first_call_s" in r:
            notes.append(f"first call {r['first_call_s']:.1f} s (compiling)")
        for name, mib in r.get("memory_mib", {}).items():
            if mib is not None:
                notes.append(f"{name} peak RSS +{mib:.0f} MiB")
        theirs = "-" if r["official_ms"] is None else f"{r['official_ms']:.1f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['row']} | {theirs} | {r['clipvideo_ms']:.1f} | {ratio} | {'; '.join(notes)} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evl-repo", help="checkout of OpenGVLab/efficient-video-recognition (else no official EVL rows)")
    parser.add_argument("--aim-repo", help="checkout of taoyang1122/adapt-image-models (else no official AIM rows)")
    parser.add_argument("--xclip-repo", help="the X-CLIP folder of a checkout of microsoft/VideoX (or the checkout "
                        "itself; else no official X-CLIP rows)")
    parser.add_argument("--text4vis-repo", help="checkout of whwu95/Text4Vis (else no official Text4Vis rows)")
    parser.add_argument("--froster-repo", help="checkout of Visual-AI/FROSTER (else no official FROSTER rows)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--arch", default="ViT-B/16", help="CLIP architecture (clipvideo.clip.ARCHITECTURES)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4], help="inference batch sizes")
    parser.add_argument("--classes", type=int, default=NUM_CLASSES,
                        help="classes (the published 400; fewer only to make a smoke run of the text methods short)")
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="each round's minimum length per row and side")
    parser.add_argument("--compile", action="store_true", help="also ours under torch.compile (compiles per batch size)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    if args.xclip_repo is not None and (Path(args.xclip_repo) / "X-CLIP" / CHECKOUT_MARKERS["xclip"]).is_file():
        args.xclip_repo = str(Path(args.xclip_repo) / "X-CLIP")  # the VideoX checkout itself
    for method, marker in CHECKOUT_MARKERS.items():
        folder = getattr(args, f"{method}_repo")
        if folder is not None and not (Path(folder) / marker).is_file():
            parser.error(f"--{method}-repo {folder}: no {marker} there; pass a checkout of the official repository")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_at_start = load_average()
    rows, checks, skipped = [], {}, []
    text_cache_setting = os.environ.get("CLIPVIDEO_TEXT_CACHE")
    with tempfile.TemporaryDirectory(prefix="vs_official_") as workdir:
        # Class embeddings stored by an earlier run would make our first call a disk read.
        os.environ["CLIPVIDEO_TEXT_CACHE"] = str(Path(workdir) / "text_cache")
        for method in args.methods:
            repo = getattr(args, f"{method}_repo")
            if repo is None:
                skipped.append(f"official {LABELS[method]}: not run (no --{method}-repo); clipvideo rows only")
                print(skipped[-1], flush=True)
            pair = PAIRS[method](args, Path(workdir))
            try:
                method_rows, check = measure(pair, args)
            finally:
                if pair.cleanup is not None:
                    pair.cleanup()
            rows += method_rows
            if check:
                checks[method] = check
            del pair
            forget_official_code(repo)
    if text_cache_setting is None:
        del os.environ["CLIPVIDEO_TEXT_CACHE"]
    else:
        os.environ["CLIPVIDEO_TEXT_CACHE"] = text_cache_setting
    header = (f"clipvideo vs official code, same run: {args.arch}, {args.frames} frames, {args.resolution} px, "
              f"{args.classes} classes, random weights; best of {args.rounds} rounds of >= {args.seconds} s, taking turns; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    lines = [header, table(rows)]
    lines += [f"{LABELS[m]} fp32 logits max |official - clipvideo|: {c['max_abs_logit_difference']:.2e}"
              for m, c in checks.items()]
    lines += skipped + [load_report(torch.get_num_threads(), load_at_start)]
    print("\n".join(lines))
    result = {"settings": {k: v for k, v in vars(args).items() if k != "json"}, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "logit_checks": checks, "skipped": skipped, "rows": rows,
              "load_average_start": load_at_start, "load_average_end": load_average()}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
