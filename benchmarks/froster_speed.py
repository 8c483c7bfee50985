"""FROSTER speed and memory at ViT-B/16 size (random weights): cached classifier vs re-encoding.

Inference (eval mode, no_grad, `--batch` clips of `--frames` frames, `--classes` classes with
"Name: description" texts of FROSTER's length):
  - "cached classifier": clipvideo encodes the 29 x K prompts once per class set and reuses them;
  - "re-encoded every call": the cache is cleared before each call, which is what the official
    forward does (29 x K prompts through the text tower per batch). Ours trims the padding after
    the longest prompt; the official encodes all 77 positions (`--official-context`).
Training step (forward + CE + distillation + backward + AdamW step, teacher included), one fresh
process per row so that the peak memory (CPU: peak RSS of the process; GPU: max allocated) is that
row's: 2 x K prompts per step (one template + the bare description, as official) for
K = `--train-classes`; rows ending in "c" use activation checkpointing of both towers.
Wall-clock and CPU time (all threads) per call/step: medians over `--repeats` after a warm-up.

    python benchmarks/froster_speed.py                          # ViT-B/16, 400 classes, K = 25, 100, 400 (checkpointed)
    python benchmarks/froster_speed.py --device cuda --precision bf16 --batch 8
"""

import argparse
import os
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipvideo.engine.machine import load_average, load_report  # noqa: E402
from clipvideo.methods.base import BackboneConfig  # noqa: E402
from clipvideo.methods.froster import Config, build  # noqa: E402

ACTIONS = ["brushing hair", "doing a cartwheel", "pouring", "skiing", "juggling balls", "rowing", "knitting",
           "climbing a rope", "playing violin", "surfing", "boxing", "typing", "diving", "singing"]


def class_texts(count: int) -> list[str]:
    """FROSTER-like "Name: description" entries (one sentence, ~12-16 words)."""
    texts = []
    for i in range(count):
        action = ACTIONS[i % len(ACTIONS)]
        texts.append(f"{action.capitalize()} {i}: A person is {action} with both hands while standing "
                     f"in a room, variant {i}")
    return texts


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ViT-B/16")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--classes", type=int, default=400, help="classes for the inference rows")
    parser.add_argument("--train-classes", default="25,100,400c",
                        help="K per training row; a trailing c = activation checkpointing")
    parser.add_argument("--repeats", type=int, default=3, help="timed cached inference calls")
    parser.add_argument("--reencode-repeats", type=int, default=1, help="timed re-encoding calls")
    parser.add_argument("--train-steps", type=int, default=1, help="timed training steps per row")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--official-context", action="store_true",
                        help="re-encoding rows encode all 77 token positions, as the official code (default: trimmed)")
    parser.add_argument("--concurrent", action="store_true",
                        help="run the training rows (one after another) while the inference rows run; on a "
                             "shared machine wall times then compete, CPU times much less")
    parser.add_argument("--row-workers", type=int, default=1,
                        help="training rows run at once (each in its own process; mind the memory)")
    parser.add_argument("--train-one", help=argparse.SUPPRESS)  # internal: one training row in this process
    return parser.parse_args(argv)


def make_model(args, classes: int, distillation: bool, checkpointing: bool = False):
    config = Config(backbone=BackboneConfig(arch=args.arch, grad_checkpointing=checkpointing),
                    num_frames=args.frames, distillation=distillation)
    torch.manual_seed(0)
    model = build(config, classes, class_texts(classes)).to(args.device)
    size = model.clip.config.image_resolution
    video = torch.randn(args.batch, args.frames, 3, size, size, device=args.device)
    return model, video


def autocast(args):
    return torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16, enabled=args.precision == "bf16")


def sync(args) -> None:
    if torch.device(args.device).type == "cuda":
        torch.cuda.synchronize()


def timed(args, fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `repeats` calls (after the caller's warm-up)."""
    walls, cpus = [], []
    for _ in range(repeats):
        sync(args)
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        sync(args)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def inference(args) -> dict[str, tuple[float, float]]:
    model, video = make_model(args, 4, distillation=False)
    model.eval()

    def cached():
        with torch.no_grad(), autocast(args):
            model(video)

    def reencoded():
        model.class_cache.clear()  # what the official forward does: encode every prompt again
        cached()

    cached()  # warm-up on 4 classes (kernels, allocations), so no timed call pays for it
    model.set_class_names(class_texts(args.classes))
    if args.official_context:  # encode all 77 positions, as the official code does (same result)
        tokens = model.text_tokens
        model.text_tokens = torch.nn.functional.pad(tokens, (0, model.clip.config.context_length - tokens.shape[-1]))
    # The re-encoding rows run first: their last call leaves the cache of the full class set filled.
    rows = {"re-encoded every call (official)": timed(args, reencoded, args.reencode_repeats)}
    rows["cached classifier"] = timed(args, cached, args.repeats)
    return rows


def train_one(args, row: str) -> dict:
    """One training row in this process: step time and peak memory."""
    classes, checkpointing = int(row.rstrip("c")), row.endswith("c")
    model, video = make_model(args, classes, distillation=True, checkpointing=checkpointing)
    model.train()
    optimizer = torch.optim.AdamW(model.param_groups(0.01), lr=1e-6)
    target = torch.arange(args.batch, device=args.device) % classes
    cuda = torch.device(args.device).type == "cuda"
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def step():
        with autocast(args):
            loss = model.loss(video, target)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    step()  # warm-up: optimiser state, teacher text cache for that template
    wall, cpu = timed(args, step, args.train_steps)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"row": row, "wall": wall, "cpu": cpu, "peak_mb": peak, "built_mb": rss_built}


def training(args, options: list[str]) -> list[dict]:
    """Each row in a fresh process running this script with `options` plus --train-one ROW, at most
    `--row-workers` at a time; rows are reported in the order given."""
    from concurrent.futures import ThreadPoolExecutor

    def run(row: str) -> dict:
        command = [sys.executable, __file__, *options, "--train-one", row]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            return {"row": row, "error": f"{last[:120]} (exit code {done.returncode})"}
        return json.loads(done.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=args.row_workers) as pool:
        return list(pool.map(run, filter(None, args.train_classes.split(","))))


def report(args, infer: dict, train: list[dict], load_at_start=None) -> str:
    lines = [f"FROSTER {args.arch}, {args.frames} frames x batch {args.batch}, {args.precision}, {args.device}",
             load_report(torch.get_num_threads(), load_at_start)]
    lines += ["", f"Inference, {args.classes} classes (29 prompt sets each):", "",
              "| classifier | s/call (wall) | s/call (CPU) | clips/s |", "| --- | --- | --- | --- |"]
    for name, (wall, cpu) in infer.items():
        lines.append(f"| {name} | {wall:.3f} | {cpu:.3f} | {args.batch / wall:.3g} |")
    cached, reencoded = infer["cached classifier"], infer["re-encoded every call (official)"]
    lines += ["", f"cached classifier: {reencoded[0] / cached[0]:.0f}x faster per call "
              f"(wall; CPU time: {reencoded[1] / cached[1]:.0f}x)", "",
              "Training step (teacher + distillation, AdamW), 2 prompt sets x K classes:", "",
              "| K | activation checkpointing | s/step (wall) | s/step (CPU) | peak memory MB | after build MB |",
              "| --- | --- | --- | --- | --- | --- |"]
    for row in train:
        k, ck = row["row"].rstrip("c"), "yes" if row["row"].endswith("c") else "no"
        if "error" in row:
            lines.append(f"| {k} | {ck} | failed: {row['error']} | | | |")
        else:
            lines.append(f"| {k} | {ck} | {row['wall']:.2f} | {row['cpu']:.2f} | {row['peak_mb']:.0f} | {row['built_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    # Re-encoding rows must encode, not read stored class embeddings (benchmarks/text_cache.py times those).
    os.environ["CLIPVIDEO_TEXT_CACHE"] = "0"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_one:
        print(json.dumps(train_one(args, args.train_one)))
        return
    load_at_start = load_average()
    if args.concurrent:
        import threading

        train: list[dict] = []
        worker = threading.Thread(target=lambda: train.extend(training(args, argv)))
        worker.start()
        infer = inference(args)
        worker.join()
    else:
        infer, train = inference(args), training(args, argv)
    print(report(args, infer, train, load_at_start))


if __name__ == "__main__":
    main()
