"""`clipvideo bench data|model|train RECIPE`: size cores per accelerator from measured numbers.

- data: the recipe's training pipeline (list, decoder or prepared store, sampling, transforms) in
  one process with one thread, as one DataLoader worker runs it: clips per wall second and per
  CPU-second.
- model: the recipe's model on random clips of the recipe's shape, forward only, per precision:
  clips/s and peak memory.
- train: a few training steps (forward, backward, optimiser): seconds per step, clips/s, peak memory.

Peak memory is CUDA's max allocated on a GPU and the growth of the process's peak resident set on CPU.
The numbers print as a table, or JSON with ``--json``; load average and threads are reported
beside them, since other processes on the same cores slow every row.
"""

from __future__ import annotations

import copy
import os
import time

import torch

from .config import Config
from .data import build_train_dataset, read_classes
from .machine import load_average, load_report, peak_kib, reset_peak, resident_kib
from .fastpath import prepare_for_inference
from .precision import autocast, resolve_precision


class PeakMemory:
    """Peak memory while the block runs, MiB: CUDA's max allocated, or the growth of the resident set
    on CPU (the kernel's peak, reset at the start where /proc allows it)."""

    def __init__(self, device: torch.device):
        self.device, self.peak_mib = device, 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.before_kib, self.resettable = resident_kib(), reset_peak()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.peak_mib = max(0, peak_kib(self.resettable) - self.before_kib) / 1024
        return False


def environment() -> dict:
    load = load_average()
    threads = torch.get_num_threads()
    return {"load_average_1min": round(load[0], 2) if load else None, "threads": threads, "cores": os.cpu_count(),
            "report": load_report(threads)}


def _class_setup(config: Config) -> tuple[int, list[str]]:
    names = read_classes(config.data)
    num_classes = config.data.num_classes or (len(names) if names else 400)
    return num_classes, names or [f"class {i}" for i in range(num_classes)]


def bench_data(config: Config, clips: int = 32) -> list[dict]:
    """One process, one thread: what one DataLoader worker delivers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        names = read_classes(config.data)
        dataset = build_train_dataset(config.data, names)
        dataset[0]  # open files, build indexes: not part of the steady state
        generator = torch.Generator().manual_seed(config.train.seed)
        order = torch.randint(len(dataset), (clips,), generator=generator).tolist()
        wall, cpu = time.perf_counter(), time.process_time()
        for index in order:
            clip = dataset[index][0]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        torch.set_num_threads(threads)
    bad = dataset.bad_video_count() if hasattr(dataset, "bad_video_count") else 0
    source = f"store {config.data.store}" if config.data.store else f"{config.data.backend} decoding"
    return [{"row": f"data ({source}, {config.data.sampling})", "clips": clips, "clips_per_s": clips / wall,
             "clips_per_cpu_s": clips / cpu, "ms_per_clip": 1000 * wall / clips, "clip_shape": list(clip.shape),
             "bad_videos": bad}]


def _build(config: Config, device: torch.device):
    from .train import build_model

    num_classes, names = _class_setup(config)
    model = build_model(config, num_classes, names).to(device)
    shape = (config.data.num_frames, 3, config.data.input_size, config.data.input_size)
    return model, num_classes, shape


def bench_model(config: Config, device: torch.device, batch_size: int = 1, repeats: int = 3,
                precisions: tuple[str, ...] = ("fp32", "bf16"), model: torch.nn.Module | None = None,
                min_seconds: float = 1.0) -> list[dict]:
    """Forward clips/s and peak memory of the recipe's model (or of `model`, fed the recipe's clip shape):
    at least `repeats` calls and `min_seconds` of them (a tiny model's millisecond calls need many to
    time well). bf16/fp16 rows time what `clipvideo test` runs: a copy made ready by
    `prepare_for_inference` (the fast path unless test.cast_weights is false; compiled with
    test.compile, the first call's time in `first_call_s`)."""
    if model is None:
        model, _, shape = _build(config, device)
    else:
        model = model.to(device)
        shape = (config.data.num_frames, 3, config.data.input_size, config.data.input_size)
    model.eval()
    video = torch.randn(batch_size, *shape, device=device)
    rows = []
    for precision in precisions:
        precision = resolve_precision(precision, device)
        runner = model
        if precision != "fp32" or config.test.compile:
            runner = prepare_for_inference(copy.deepcopy(model), precision, compile=config.test.compile,
                                           cast=config.test.cast_weights)
        with torch.no_grad(), autocast(device, precision):
            start = time.perf_counter()
            runner(video)  # warm-up (and the text classifier of text-based models; compiling, when compiled)
            first = time.perf_counter() - start
            with PeakMemory(device) as memory:
                start, calls = time.perf_counter(), 0
                while calls < repeats or time.perf_counter() - start < min_seconds:
                    runner(video)
                    calls += 1
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                seconds = (time.perf_counter() - start) / calls
        path = "" if precision == "fp32" else (", fast path" if config.test.cast_weights else ", autocast")
        path += ", compiled" if config.test.compile else ""
        rows.append({"row": f"model forward ({precision}{path}, batch {batch_size})", "clips_per_s": batch_size / seconds,
                     "ms_per_batch": 1000 * seconds, "peak_memory_mib": memory.peak_mib, "first_call_s": first})
    return rows


def bench_train(config: Config, device: torch.device, steps: int = 3) -> list[dict]:
    from .train import build_optimizer

    model, num_classes, shape = _build(config, device)
    model.train()
    optimizer = build_optimizer(model, config.train)
    batch = config.train.batch_size
    video = torch.randn(batch, *shape, device=device)
    target = torch.randint(num_classes, (batch,), device=device)
    precision = config.train.precision

    def step():
        with autocast(device, precision):
            loss = model.loss(video, target)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: optimiser state, allocator
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / steps
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return [{"row": f"train step ({precision}, batch {batch})", "s_per_step": seconds, "clips_per_s": batch / seconds,
             "peak_memory_mib": memory.peak_mib, "trainable_params_m": trainable / 1e6}]


def format_rows(rows: list[dict], env: dict) -> str:
    keys = [k for k in ("clips_per_s", "clips_per_cpu_s", "ms_per_clip", "ms_per_batch", "first_call_s", "s_per_step",
                        "peak_memory_mib", "trainable_params_m", "bad_videos") if any(k in r for r in rows)]
    header = "| what | " + " | ".join(keys) + " |"
    lines = [header, "|---" * (len(keys) + 1) + "|"]
    for row in rows:
        cells = [f"{row[k]:.3g}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in keys]
        lines.append(f"| {row['row']} | " + " | ".join(cells) + " |")
    lines.append(env["report"])
    return "\n".join(lines)
