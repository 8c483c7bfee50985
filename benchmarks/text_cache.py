"""Class-embedding cache at ViT-B/16 size (random weights): FROSTER's 29 prompt sets x K classes.

Rows, all in one run (wall and CPU seconds, CPU = all threads of the process):
  - weights digest: blake2b over the text tower's tensors, once per model load (the disk key);
  - encoder speed (prompts/s), fp32 and bf16: the former path (batches of 2048 prompts in prompt
    order, padded to the longest prompt of the vocabulary) against batches of 256 sorted by length,
    each cut after its own longest prompt (now used);
  - first build (cold): an empty disk store, the classifier encoded and written;
  - second process (disk hit): a new Python process builds the same model and reads the file;
  - in-memory hit: `class_embeddings()` again in the same model;
  - alternating fp32 / bf16 calls, per call: before (one in-memory entry, no disk: every call
    re-encodes) and now (one entry per dtype).
The disk store is a temporary folder (never the user's cache). "Name: description" texts of 6 to 28
words, so prompt lengths vary as FROSTER's rephrased classes do.

    python benchmarks/text_cache.py                      # ViT-B/16, 400 classes
    python benchmarks/text_cache.py --classes 40         # on a busy machine
"""

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipvideo.clip.text_cache import tensor_digest, text_weights  # noqa: E402
from clipvideo.engine.fastpath import prepare_for_inference  # noqa: E402
from clipvideo.engine.machine import load_average, load_report  # noqa: E402
from clipvideo.methods.base import BackboneConfig  # noqa: E402
from clipvideo.methods.froster import Config, build  # noqa: E402

ACTIONS = ["brushing hair", "doing a cartwheel", "pouring water", "skiing", "juggling balls", "rowing a boat",
           "knitting", "climbing a rope", "playing violin", "surfing", "boxing", "typing", "diving", "singing"]
FILLER = ("while standing in a bright room with both hands moving slowly and carefully as a friend watches "
          "from the doorway and the camera follows").split()


def class_texts(count: int) -> list[str]:
    """FROSTER-like "Name: description" entries, 6 to 28 words of description."""
    texts = []
    for i in range(count):
        action = ACTIONS[i % len(ACTIONS)]
        words = FILLER[: (i * 7) % 23]
        texts.append(f"{action.capitalize()} {i}: A person is {action} {' '.join(words)}".strip())
    return texts


def make_model(args):
    torch.manual_seed(0)  # the same random weights in every process
    config = Config(backbone=BackboneConfig(arch=args.arch), num_frames=8, distillation=False)
    return build(config, args.classes, class_texts(args.classes)).eval()


def timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def autocast(dtype: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")


def encode_in_prompt_order(model, batch: int) -> torch.Tensor:
    """The former path: batches in prompt order, all padded to the longest prompt."""
    tokens = model.text_tokens.flatten(0, 1)
    return torch.cat([model.clip.encode_text(tokens[i: i + batch]) for i in range(0, len(tokens), batch)])


def child(args) -> None:
    """The second process: build the same model, read the classifier from the disk store."""
    build_wall, _, model = timed(lambda: make_model(args))
    calls = []
    encode = model.clip.encode_text
    model.clip.encode_text = lambda tokens: calls.append(len(tokens)) or encode(tokens)
    with torch.no_grad():
        wall, cpu, _ = timed(model.class_embeddings)
    print(json.dumps({"wall": wall, "cpu": cpu, "build_wall": build_wall, "encoded_prompts": sum(calls)}))


def row(name: str, wall: float, cpu: float, extra: str = "") -> None:
    print(f"| {name} | {wall:.4g} | {cpu:.4g} | {extra} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ViT-B/16")
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--alternations", type=int, default=10, help="fp32/bf16 pairs timed with the cache")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        return child(args)

    load_before = load_average()
    store = tempfile.mkdtemp(prefix="clipvideo-text-cache-bench-")
    os.environ["CLIPVIDEO_TEXT_CACHE"] = store
    try:
        run(args, load_before)
    finally:
        shutil.rmtree(store, ignore_errors=True)


def run(args, load_before) -> None:
    model = make_model(args)
    prompts = model.text_tokens.shape[0] * model.text_tokens.shape[1]
    weights = text_weights(model.clip)
    megabytes = sum(w.numel() * w.element_size() for w in weights) / 2**20
    print(f"FROSTER {args.arch}, random weights, {args.classes} classes x {model.text_tokens.shape[0]} prompt sets "
          f"= {prompts} prompts (longest {model.text_tokens.shape[-1]} tokens); {torch.get_num_threads()} threads")
    print("| row | wall s | CPU s | |")
    print("| --- | ---: | ---: | --- |")
    wall, cpu, _ = timed(lambda: tensor_digest(weights))
    row("weights digest (blake2b, once per load)", wall, cpu, f"{megabytes:.0f} MiB, {megabytes / wall:.0f} MiB/s")

    cold = {}
    with torch.no_grad():
        for dtype in ("fp32", "bf16"):
            with autocast(dtype):
                before = timed(lambda: encode_in_prompt_order(model, 2048))  # the former text_batch
                now = timed(lambda: model.class_embeddings())  # empty store: encoded, then written
            cold[dtype] = now
            row(f"encode {dtype}, prompt order (former)", *before[:2], f"{prompts / before[0]:.0f} prompts/s")
            row(f"first build {dtype} (cold: length-sorted, written)", *now[:2],
                f"{prompts / now[0]:.0f} prompts/s, {before[0] / now[0]:.2f}x the former")

    fast = prepare_for_inference(copy.deepcopy(model), "bf16")  # what test/predict/serve run in bf16
    with torch.no_grad(), autocast("bf16"):
        now = timed(lambda: fast.class_embeddings())
    row("first build bf16, fast path (bf16 weights; cold)", *now[:2],
        f"{prompts / now[0]:.0f} prompts/s, {cold['bf16'][0] / now[0]:.2f}x bf16 autocast")
    del fast

    result = subprocess.run([sys.executable, __file__, "--child", "--classes", str(args.classes), "--arch", args.arch]
                            + (["--threads", str(args.threads)] if args.threads else []),
                            capture_output=True, text=True, check=True, env=os.environ)
    hit = json.loads(result.stdout.strip().splitlines()[-1])
    row("second process, fp32 (disk hit, digest included)", hit["wall"], hit["cpu"],
        f"{hit['encoded_prompts']} prompts encoded; {cold['fp32'][0] / hit['wall']:.0f}x faster than cold")

    with torch.no_grad():
        repeats = 100
        wall, cpu, _ = timed(lambda: [model.class_embeddings() for _ in range(repeats)])
        row("in-memory hit, per call", wall / repeats, cpu / repeats)

        def alternate(pairs: int):
            for _ in range(pairs):
                for dtype in ("fp32", "bf16"):
                    with autocast(dtype):
                        model.class_embeddings()
        # Before: one in-memory entry and no disk store, as the former cache.
        os.environ["CLIPVIDEO_TEXT_CACHE"] = "0"
        model.class_cache.entries = 1
        model.class_cache.clear()
        alternate(1)  # leave the bf16 entry, so the timed pair starts with a miss, as every later call
        wall, cpu, _ = timed(lambda: alternate(1))
        row("alternating fp32/bf16, per call, before (one entry)", wall / 2, cpu / 2)
        before_wall = wall / 2
        model.class_cache.entries = 4
        alternate(1)  # fills the fp32 entry (untimed)
        wall, cpu, _ = timed(lambda: alternate(args.alternations))
        calls = 2 * args.alternations
        row("alternating fp32/bf16, per call, now", wall / calls, cpu / calls,
            f"{before_wall / (wall / calls):.0f}x faster")
    print(load_report(before=load_before))


if __name__ == "__main__":
    main()
