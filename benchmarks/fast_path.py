"""How close bf16 inference comes to this machine's bf16 matrix-multiply ceiling, measured in the same run.

For each method (default EVL and AIM, ViT-B/16, 8 frames, 224 px, random weights at published size)
and batch size (default 1 and 4), it times the model's forward in:
  fp32       fp32 weights, no autocast
  autocast   bf16 autocast over fp32 weights (`test.cast_weights: false`; clipvideo before the fast path)
  fast       the fast path (`prepare_for_inference`: bf16 weights, folded QuickGELU, fp32-statistics norms)
  compiled   the fast path under torch.compile with freezing (`--compile` / `test.compile: true`), with
             the first call's (compiling) time
and reports clips/s and the share of the ceiling: forward FLOPs (2 x the multiply-adds that torch's
FlopCounterMode counts, attention included) x clips/s over the ceiling. The ceiling is the fastest bf16
matmul measured in this run: square 2048 and 4096 and the model's own widest linear layer, timed
before and after the models (the best of all), so a machine that slows down mid-run lowers the
shares rather than raising them. Each time is the best of --rounds rounds of at least --seconds.

    python benchmarks/fast_path.py                         # EVL and AIM, batch 1 and 4, with compile
    python benchmarks/fast_path.py --methods all --no-compile
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from clipvideo.engine.compare import METHODS, CompareSettings, gflops_per_view, recipe  # noqa: E402
from clipvideo.engine.config import build_config  # noqa: E402
from clipvideo.engine.fastpath import prepare_for_inference, timed_first_call  # noqa: E402
from clipvideo.engine.machine import load_average, load_report  # noqa: E402
from clipvideo.engine.precision import autocast  # noqa: E402
from clipvideo.engine.train import build_model  # noqa: E402

CPU = torch.device("cpu")


def best_seconds(fn, rounds: int, seconds: float) -> float:
    """Best over `rounds` of the mean call time over at least `seconds` (and 2 calls)."""
    best = float("inf")
    for _ in range(rounds):
        start, calls = time.perf_counter(), 0
        while calls < 2 or time.perf_counter() - start < seconds:
            fn()
            calls += 1
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def matmul_tflops(m: int, k: int, n: int, rounds: int) -> float:
    a, b = torch.randn(m, k).bfloat16(), torch.randn(k, n).bfloat16()
    return 2 * m * k * n / best_seconds(lambda: a @ b, rounds, 1.0) / 1e12


def ceiling(shapes, rounds: int) -> dict:
    return {"x".join(map(str, s)): matmul_tflops(*s, rounds) for s in shapes}


def build(method: str, frames: int, arch: str):
    settings = CompareSettings(data="unused", out=tempfile.mkdtemp(), num_frames=frames, precision="bf16")
    values = recipe(settings, method)
    values["model"]["backbone"] = {"arch": arch}
    for key in ("decoder_heads", "mit_heads", "prompt_heads", "fusion_heads"):
        values["model"].pop(key, None)
    values["data"].update(input_size=224, short_side=224, num_classes=400)
    config = build_config(values, f"fast_path {method}")
    return build_model(config, 400, [f"class {i}" for i in range(400)]).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["evl", "aim"], help="methods, or 'all'")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--arch", default="ViT-B/16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled rows (each compiles 20-40 s)")
    parser.add_argument("--skip-fp32", action="store_true")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    methods = list(METHODS) if args.methods == ["all"] else args.methods
    torch.manual_seed(0)
    load_before = load_average()

    width, hidden, tokens = 768, 3072, 197  # the widest linear layer of a B/16 block, per frame
    shapes = [(2048, 2048, 2048), (4096, 4096, 4096)] + [(b * args.frames * tokens, width, hidden) for b in args.batches]
    ceilings = ceiling(shapes, args.rounds)
    rows = []
    for method in methods:
        model = build(method, args.frames, args.arch)
        macs = gflops_per_view(model, (args.frames, 3, 224, 224))  # multiply-adds per clip, GMAC
        variants = {} if args.skip_fp32 else {"fp32": (model, "fp32")}
        variants["autocast"] = (prepare_for_inference(copy.deepcopy(model), "bf16", cast=False), "bf16")
        variants["fast"] = (prepare_for_inference(copy.deepcopy(model), "bf16"), "bf16")
        if not args.no_compile:
            variants["compiled"] = (prepare_for_inference(copy.deepcopy(model), "bf16", compile=True), "bf16")
        for batch in args.batches:
            video = torch.randn(batch, args.frames, 3, 224, 224)
            for name, (variant, precision) in variants.items():
                first = timed_first_call(variant, video, CPU, precision)  # warm-up; compiles the compiled one

                def call():
                    with torch.no_grad(), autocast(CPU, precision):
                        variant(video)

                seconds = best_seconds(call, args.rounds, args.seconds)
                rows.append({"method": method, "batch": batch, "path": name, "ms": 1000 * seconds,
                             "clips_per_s": batch / seconds, "gmac_per_clip": macs,
                             "tflops": 2 * macs * batch / seconds / 1e3, "first_call_s": first})
                print(f"{method} b{batch} {name}: {1000 * seconds:.0f} ms", file=sys.stderr, flush=True)
        del model, variants
    ceilings.update({f"{k} (after)": v for k, v in ceiling(shapes, args.rounds).items()})
    best = max(ceilings.values())
    for row in rows:
        row["share_of_ceiling"] = row["tflops"] / best

    print(f"bf16 matmul ceiling: {best:.2f} TFLOP/s (best of " +
          ", ".join(f"{k} {v:.2f}" for k, v in ceilings.items()) + ")")
    print(f"{args.arch}, {args.frames} frames, 224 px, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| method | batch | path | ms per call | clips/s | TFLOP/s | share of ceiling | first call s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['batch']} | {r['path']} | {r['ms']:.0f} | {r['clips_per_s']:.2f} | {r['tflops']:.2f} | "
              f"{100 * r['share_of_ceiling']:.0f}% | {r['first_call_s']:.1f} |")
    if load_before:
        print(f"load average before the run: {load_before[0]:.2f}")
    print(load_report(torch.get_num_threads()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ceiling_tflops": best, "ceilings": ceilings, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
