"""clipvideo against the official EVL and AIM code: same run, same weights, CPU.

For each method whose official checkout is given, the official model is built from the official
code (random weights at published size: ViT-B/16, 8 frames, 224 px, 400 classes), its weights are
written as an official checkpoint and loaded into clipvideo through our importers
(`clipvideo.load_official("evl" | "aim", ...)`), and the fp32 logits of the two are compared (max
difference printed). Then it times, official and ours taking turns so that a change in machine load
hits both, each row the best of `--rounds` rounds of at least `--seconds`:
  - inference (eval, no_grad) at each `--batches` size in fp32 (both plain) and bf16 (official: bf16
    autocast over its fp32 model, as its users would run it on a CPU; ours: what `clipvideo test`
    runs in bf16, `prepare_for_inference(model, "bf16")` under autocast), and with `--compile` ours
    compiled (first-call time reported) against the official bf16 row again;
  - a training step (forward, backward, AdamW step) at batch `--train-batch` in bf16 autocast, each
    training what its official recipe trains (EVL: decoder and head, frozen backbone; AIM: adapters,
    temporal embedding, ln_post and head), with the growth of peak resident memory during the first
    step (AdamW state included; both in this one process, after the inference rows, so memory the
    allocator kept from earlier work can hide part of a step's peak: a rough comparison).
A method whose checkout is not given still gets its clipvideo rows (its model built natively), with
a printed line saying why the official column is empty.

How the official code is imported and run on a CPU is the fixture generators' own mechanism,
reused here by importing them by path: `tests/fixtures/evl/make_fixture.py` (`import_official`: the
CUDA-only buffer of the temporal cross-attention allocated on the CPU by monkeypatching) and
`tests/fixtures/aim/make_fixture.py` (`import_official`: stand-ins for the mmcv/mmaction names the
two official files import). The official AIM file also imports `einops` (pip install einops, or put a
folder holding it on PYTHONPATH). No official code is part of clipvideo.

Official checkouts: a clone of each repository, or the files the run imports taken from a bare
mirror (the commits the parity fixtures record; an archive of all of AIM's HEAD can fail on a
large notebook a mirror may lack, so take only `mmaction`):

    git clone https://github.com/OpenGVLab/efficient-video-recognition /tmp/evl
    git clone https://github.com/taoyang1122/adapt-image-models /tmp/aim
    # or, from bare mirrors:
    mkdir /tmp/evl /tmp/aim
    git --git-dir=MIRROR/OpenGVLab+efficient-video-recognition/repo archive b282e8b | tar -x -C /tmp/evl
    git --git-dir=MIRROR/taoyang1122+adapt-image-models/repo archive b3580d2 mmaction | tar -x -C /tmp/aim

Usage:

    python benchmarks/vs_official.py --evl-repo /tmp/evl --aim-repo /tmp/aim --compile --json vs.json
    python benchmarks/vs_official.py --evl-repo /tmp/evl --arch tiny --resolution 64 --frames 4 \\
        --batches 1 --rounds 1 --seconds 0.1                               # smoke run, seconds
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
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
from clipvideo.methods import aim, evl  # noqa: E402
from clipvideo.methods.base import BackboneConfig  # noqa: E402
from clipvideo.official import load_official  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from _shared import fixture_generator, official_aim_classes  # noqa: E402

CPU = torch.device("cpu")
NUM_CLASSES = 400
SEED = 0
LEARNING_RATE, WEIGHT_DECAY = 3e-4, 0.05


# ---------------------------------------------------------------------------------------------
# The two models of each method: official (a callable on the official layout) and ours


class Pair:
    """One method's official model (or None) and ours, with the same weights."""

    def __init__(self, method: str, ours: nn.Module, official: nn.Module | None = None,
                 official_input=None, official_trains=None):
        self.method, self.ours, self.official = method, ours, official
        self.official_input = official_input  # (B, T, 3, H, W) -> the official layout
        self.official_trains = official_trains  # parameter name -> whether the official recipe trains it


class Recognizer(nn.Module):
    """The official AIM Recognizer3D's test path (backbone, then I3D head), under its key names."""

    def __init__(self, backbone: nn.Module, cls_head: nn.Module):
        super().__init__()
        self.backbone, self.cls_head = backbone, cls_head

    def forward(self, video):
        return self.cls_head(self.backbone(video))


def to_official_layout(video: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W), ours -> (B, 3, T, H, W), both official codes'."""
    return video.transpose(1, 2).contiguous()


def architecture(args):
    return get_architecture(args.arch, image_resolution=args.resolution)


def decoder_layers(args) -> int:
    return min(4, architecture(args).vision_layers)


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
        return Pair("evl", evl.build(config, NUM_CLASSES).eval())
    generator = fixture_generator("evl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official_code = generator.import_official(Path(args.evl_repo).resolve())
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
                                   num_classes=NUM_CLASSES, decoder_num_layers=decoder_layers(args),
                                   decoder_qkv_dim=width, decoder_num_heads=max(1, width // 64), decoder_mlp_factor=4.0)
    generator.randomize_decoder(official, SEED)  # the zero-initialised tables too, so they are compared
    checkpoint = workdir / "evl_official.pth"
    torch.save({"model": official.state_dict()}, checkpoint)  # what the official training code saves
    ours = load_official("evl", str(checkpoint), backbone=str(backbone), heads=arch.vision_heads)
    # The frozen backbone is not a registered submodule: every parameter, decoder and head, trains.
    return Pair("evl", ours, official, to_official_layout, lambda name: True)


def aim_pair(args, workdir: Path) -> Pair:
    arch = architecture(args)
    if args.aim_repo is None:
        torch.manual_seed(SEED)
        config = aim.Config(backbone=BackboneConfig(arch=args.arch, image_resolution=args.resolution),
                            num_frames=args.frames)
        return Pair("aim", aim.build(config, NUM_CLASSES).eval())
    ViT_CLIP, I3DHead = official_aim_classes(args.aim_repo)
    generator = fixture_generator("aim")
    torch.manual_seed(SEED)
    official = Recognizer(
        ViT_CLIP(args.resolution, args.frames, arch.vision_patch_size, arch.vision_width, arch.vision_layers,
                 arch.vision_heads, drop_path_rate=0.2, num_tadapter=1, adapter_scale=0.5),  # the K400 recipe
        I3DHead(num_classes=NUM_CLASSES, in_channels=arch.vision_width, spatial_type="avg", dropout_ratio=0.5))
    official.backbone.init_weights()
    official.cls_head.init_weights()
    generator.randomize(official, torch.Generator().manual_seed(SEED))  # non-zero adapters, so they are compared
    trains = lambda name: any(part in name for part in generator.TRAINABLE_NAME_PARTS)  # noqa: E731 (official rule)
    for name, param in official.named_parameters():
        param.requires_grad_(trains(name))
    checkpoint = workdir / "aim_official.pth"
    torch.save({"state_dict": official.state_dict()}, checkpoint)  # the runner's layout (meta left out)
    ours = load_official("aim", str(checkpoint), heads=arch.vision_heads)
    return Pair("aim", ours, official.eval(), to_official_layout, trains)


# ---------------------------------------------------------------------------------------------
# Timing


def timed_in_turns(calls: dict, rounds: int, seconds: float) -> dict[str, float]:
    """Best over `rounds` of each call's mean time over at least `seconds` (and 2 calls); in each
    round the calls take turns, so that a change in load affects them alike."""
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start, count = time.perf_counter(), 0
            while count < 2 or time.perf_counter() - start < seconds:
                call()
                count += 1
            best[name] = min(best[name], (time.perf_counter() - start) / count)
    return best


def inference_call(model, video, precision: str):
    def call():
        with torch.no_grad(), autocast(CPU, precision):
            return model(video)
    return call


def training_step(model, parameters, loss_fn, video, target):
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)

    def step():
        with autocast(CPU, "bf16"):
            loss = loss_fn(model, video, target)
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


def official_loss(model, video, target):
    return F.cross_entropy(model(video).float(), target)


def our_loss(model, video, target):
    return model.loss(video, target)["loss"]


def measure(pair: Pair, args) -> tuple[list[dict], dict]:
    rows, check = [], {}
    ours, official = pair.ours.eval(), pair.official
    label = pair.method.upper()
    generator = torch.Generator().manual_seed(SEED + 1)
    if official is not None:
        video = torch.randn(2, args.frames, 3, args.resolution, args.resolution, generator=generator)
        with torch.no_grad():
            theirs, mine = official(pair.official_input(video)), ours(video)
        check = {"max_abs_logit_difference": (theirs - mine).abs().max().item(),
                 "max_abs_logit": theirs.abs().max().item()}
        print(f"{label}: fp32 logits, official vs clipvideo (same weights, batch 2): max |difference| "
              f"{check['max_abs_logit_difference']:.2e} (largest |logit| {check['max_abs_logit']:.2f})", flush=True)

    fast = prepare_for_inference(copy.deepcopy(ours), "bf16")  # what `clipvideo test` runs in bf16
    compiled = prepare_for_inference(copy.deepcopy(ours), "bf16", compile=True) if args.compile else None
    for batch in args.batches:
        video = torch.randn(batch, args.frames, 3, args.resolution, args.resolution, generator=generator)
        variants = [("fp32", ours, "fp32", None), ("bf16", fast, "bf16", None)]
        if compiled is not None:
            variants.append(("bf16 compiled", compiled, "bf16", timed_first_call(compiled, video, CPU, "bf16")))
        for name, model, precision, first_call in variants:
            calls = {"clipvideo": inference_call(model, video, precision)}
            if official is not None:
                calls["official"] = inference_call(official, pair.official_input(video), precision)
            for call in calls.values():
                call()  # warm-up
            rows.append(row(f"{label} inference b{batch} {name}", timed_in_turns(calls, args.rounds, args.seconds),
                            first_call_s=first_call))
            print(rows[-1]["row"], "done", file=sys.stderr, flush=True)
    del fast, compiled

    batch = args.train_batch
    video = torch.randn(batch, args.frames, 3, args.resolution, args.resolution, generator=generator)
    target = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    # The last rows: the models train in place.
    steps = {"clipvideo": training_step(ours.train(), ours.param_groups(WEIGHT_DECAY), our_loss, video, target)}
    if official is not None:
        parameters = [p for name, p in official.named_parameters() if pair.official_trains(name)]
        steps["official"] = training_step(official.train(), parameters, official_loss, pair.official_input(video), target)
    memory = {name: step_memory_mib(step) for name, step in steps.items()}  # also the warm-up (AdamW state)
    rows.append(row(f"{label} training step b{batch} bf16", timed_in_turns(steps, args.rounds, args.seconds),
                    memory_mib=memory))
    return rows, check


def row(name: str, seconds: dict, **extra) -> dict:
    ours, theirs = seconds["clipvideo"], seconds.get("official")
    return {"row": name, "official_ms": None if theirs is None else 1000 * theirs, "clipvideo_ms": 1000 * ours,
            "ratio": None if theirs is None else ours / theirs, **{k: v for k, v in extra.items() if v is not None}}


def table(rows: list[dict]) -> str:
    lines = ["| row | official ms | clipvideo ms | clipvideo / official | notes |", "|---|---:|---:|---:|---|"]
    for r in rows:
        notes = []
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
    parser.add_argument("--methods", nargs="+", choices=["evl", "aim"], default=["evl", "aim"])
    parser.add_argument("--arch", default="ViT-B/16", help="CLIP architecture (clipvideo.clip.ARCHITECTURES)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4], help="inference batch sizes")
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="each round's minimum length per row and side")
    parser.add_argument("--compile", action="store_true", help="also ours under torch.compile (compiles per batch size)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    for option in ("evl_repo", "aim_repo"):
        folder = getattr(args, option)
        marker = {"evl_repo": "model.py", "aim_repo": "mmaction/models/backbones/vit_clip.py"}[option]
        if folder is not None and not (Path(folder) / marker).is_file():
            parser.error(f"--{option.replace('_', '-')} {folder}: no {marker} there; pass a checkout of the official repository")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_at_start = load_average()
    rows, checks, skipped = [], {}, []
    with tempfile.TemporaryDirectory(prefix="vs_official_") as workdir:
        for method in args.methods:
            repo_option = f"--{method}-repo"
            if getattr(args, f"{method}_repo") is None:
                skipped.append(f"official {method.upper()}: not run (no {repo_option}); clipvideo rows only")
                print(skipped[-1], flush=True)
            pair = (evl_pair if method == "evl" else aim_pair)(args, Path(workdir))
            method_rows, check = measure(pair, args)
            rows += method_rows
            if check:
                checks[method] = check
            del pair
    header = (f"clipvideo vs official code, same run: {args.arch}, {args.frames} frames, {args.resolution} px, "
              f"{NUM_CLASSES} classes, random weights; best of {args.rounds} rounds of >= {args.seconds} s, taking turns; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    lines = [header, table(rows)]
    lines += [f"{m.upper()} fp32 logits max |official - clipvideo|: {c['max_abs_logit_difference']:.2e}"
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
