"""How close bf16 inference comes to this machine's bf16 matrix-multiply ceiling, measured in the same run.

For each method (default EVL and AIM, ViT-B/16, 8 frames, 224 px, random weights at published size)
and batch size (default 1 and 4), it times the model's forward in:
  fp32       fp32 weights, no autocast
  autocast   bf16 autocast over fp32 weights (`test.cast_weights: false`; clipvideo before the fast path)
  fast       the fast path (`prepare_for_inference`: bf16 weights, folded QuickGELU, fp32-statistics norms)
  compiled   the fast path under torch.compile with freezing (`--compile` / `test.compile: true`), with
             the first call's (compiling) time
and reports clips/s and the share of the ceiling: forward FLOPs (2 x the multiply-adds that torch's
FlopCounterMode counts, attention included) x clips/s over the ceiling. The ceiling is the faster of
a 2048^3 bf16 matmul and the model's own widest linear layer at that batch, measured at the start of
every round; each round then times every path once (>= --seconds), so all paths and their ceiling
see the same machine. On a shared 2-core VM the matmul rate itself moved between 1.6 and 3.1
TFLOP/s within one run, which is why a share is only computed against its own round's ceiling.
Each row reports the round with the best share.

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
    rows, ceilings = [], []
    for method in methods:
        model = build(method, args.frames, args.arch)
        size = model.input_config()["data"]["input_size"]  # 224 for B/16; a smoke run's tiny model has its own
        macs = gflops_per_view(model, (args.frames, 3, size, size))  # multiply-adds per clip, GMAC
        variants = {} if args.skip_fp32 else {"fp32": (model, "fp32")}
        variants["autocast"] = (prepare_for_inference(copy.deepcopy(model), "bf16", cast=False), "bf16")
        variants["fast"] = (prepare_for_inference(copy.deepcopy(model), "bf16"), "bf16")
        if not args.no_compile:
            variants["compiled"] = (prepare_for_inference(copy.deepcopy(model), "bf16", compile=True), "bf16")
        for batch in args.batches:
            video = torch.randn(batch, args.frames, 3, size, size)
            shapes = [(2048, 2048, 2048), (batch * args.frames * tokens, width, hidden)]
            first = {name: timed_first_call(variant, video, CPU, precision)  # warm-up; compiles the compiled one
                     for name, (variant, precision) in variants.items()}
            times = {name: [] for name in variants}
            round_ceilings, round_linear = [], []
            for _ in range(args.rounds):  # each round: the ceiling, then every variant once, in turn
                square, linear = (matmul_tflops(*shape, 1) for shape in shapes)
                round_ceilings.append(max(square, linear))
                round_linear.append(linear)
                for name, (variant, precision) in variants.items():
                    def call(variant=variant, precision=precision):
                        with torch.no_grad(), autocast(CPU, precision):
                            variant(video)

                    times[name].append(best_seconds(call, 1, args.seconds))
            ceilings.append({"method": method, "batch": batch, "per_round_tflops": round_ceilings,
                             "per_round_widest_linear_tflops": round_linear})
            for name in variants:
                # share per round against that round's ceiling: a machine that speeds up or slows down
                # between rounds moves both; the best round is reported, with its ceiling
                shares = [2 * macs * batch / t / 1e3 / c for t, c in zip(times[name], round_ceilings)]
                best = max(range(args.rounds), key=shares.__getitem__)
                seconds = times[name][best]
                rows.append({"method": method, "batch": batch, "path": name, "ms": 1000 * seconds,
                             "best_ms": 1000 * min(times[name]), "clips_per_s": batch / seconds,
                             "gmac_per_clip": macs, "tflops": 2 * macs * batch / seconds / 1e3,
                             "ceiling_tflops": round_ceilings[best], "share_of_ceiling": shares[best],
                             "widest_linear_tflops": round_linear[best],
                             "shares": shares, "first_call_s": first[name]})
                print(f"{method} b{batch} {name}: {1000 * seconds:.0f} ms, {100 * shares[best]:.0f}%",
                      file=sys.stderr, flush=True)
        del model, variants

    print(f"{args.arch}, {args.frames} frames, 224 px, random weights, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads. Ceiling: the faster of a 2048^3 bf16 matmul and the model's "
          f"widest linear layer (tokens x {width} x {hidden}), measured before each round; each row is the "
          f"round with the best share ({args.rounds} rounds of >= {args.seconds:g} s)")
    print("| method | batch | path | ms per call | clips/s | TFLOP/s | ceiling TFLOP/s | widest linear alone TFLOP/s | "
          "share of ceiling | shares, all rounds | first call s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['batch']} | {r['path']} | {r['ms']:.0f} | {r['clips_per_s']:.2f} | {r['tflops']:.2f} | "
              f"{r['ceiling_tflops']:.2f} | {r['widest_linear_tflops']:.2f} | {100 * r['share_of_ceiling']:.0f}% | "
              f"{' / '.join(f'{100 * x:.0f}' for x in r['shares'])} | {r['first_call_s']:.1f} |")
    if load_before:
        print(f"load average before the run: {load_before[0]:.2f}")
    print(load_report(torch.get_num_threads()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ceilings": ceilings, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
