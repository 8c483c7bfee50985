"""The training loop, torchvision-references style: build, then train_one_epoch / evaluate.

fit(config) trains on one process or under torchrun (DDP), resumes from the last checkpoint,
logs to a progress bar, a JSONL file and TensorBoard, and finishes with plots.
"""

import json
import logging
import math
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from ..clip import CheckpointError
from ..methods import METHODS
from . import checkpoint as ckpt
from .config import Config, ConfigError, method_config, save_config
from .data import (batch_augment, build_eval_dataset, build_train_dataset, folder_dataset, mix_collate, read_classes,
                   read_vocabulary)
from .distributed import all_reduce_mean, barrier, init_distributed, ranks_all_true, setup_logging
from .evaluate import ShardSampler, check_view_settings, evaluate, write_predictions
from .precision import autocast, resolve_precision

log = logging.getLogger("clipvideo")


def build_model(config: Config, num_classes: int, class_names: list[str] | None):
    model_config = method_config(config.method, config.model, "model")
    if class_names:
        class_names = read_vocabulary(config.data) or class_names  # with the file's descriptions (FROSTER)
    return METHODS[config.method].build(model_config, num_classes, class_names)


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded by rank, able to start mid-epoch.

    Rank r takes positions r, r + W, ... of the permutation (truncated to a multiple of
    W x batch), so W processes with batch b see, step by step, exactly the clips one process
    with batch W*b would see. `start` skips the samples already used before a resume.
    """

    def __init__(self, length: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0
        self.per_rank = (length // (world_size * batch_size)) * batch_size
        if self.per_rank == 0:
            raise ConfigError(
                f"train.batch_size={batch_size} x {world_size} processes is more than the {length} training clips"
            )

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.length, generator=generator)[: self.per_rank * self.world_size]
        mine = order[self.rank :: self.world_size].tolist()
        return iter(mine[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start


class SeededSamples(torch.utils.data.Dataset):
    """Seeds every RNG from (seed, epoch, index) before each sample, so augmentation does not
    depend on which worker or process loads it, nor on where a resumed run restarted."""

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        sample_seed = (self.seed * 1_000_003 + self.epoch * 10_007 + index) % (2**31)
        random.seed(sample_seed)
        np.random.seed(sample_seed)
        torch.manual_seed(sample_seed)
        return self.dataset[index]

    def __getattr__(self, name):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def cosine_with_warmup(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup from 0, then cosine from 1 down to min_ratio."""
    return lr_multiplier(step, total_steps, warmup_steps, min_ratio)


INTERVALS = ("step", "epoch")


def lr_multiplier(
    step: int,
    total_steps: int,
    warmup_steps: int,
    min_ratio: float,
    steps_per_epoch: int = 1,
    num_epochs: int | None = None,
    warmup_start_factor: float = 0.0,
    warmup_interval: str = "step",
    cosine_interval: str = "step",
) -> float:
    """LR multiplier of optimiser step `step` (0-based): linear warmup, then cosine to min_ratio.

    Warmup (steps < warmup_steps) ramps linearly from `warmup_start_factor` to 1 over the warmup,
    by step or by epoch (`warmup_interval`): `f + (1 - f) * p / P` at position p of P (steps or
    epochs). With f = 0 the ramp is counted from p + 1, so no step runs at LR 0.
    Cosine (`cosine_interval`):
      * "step": after the warmup, `min + (1 - min) * (1 + cos(pi * (s - W) / (S - W))) / 2`;
      * "epoch": constant within an epoch e (0-based), `min + (1 - min) * (1 + cos(pi * e / E)) / 2`
        counted from the first epoch, and the warmup scales it (MMCV's CosineAnnealing with
        warmup, as AIM trains: per-iteration warmup from 0.1x, per-epoch cosine).
    A pure function of the step, so a resumed run continues the schedule exactly.
    """
    epoch = step // steps_per_epoch
    if cosine_interval == "epoch":
        num_epochs = num_epochs or max(1, math.ceil(total_steps / steps_per_epoch))
        progress = epoch / num_epochs
    else:
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    cosine = min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    if not warmup_steps or step >= warmup_steps:
        return cosine
    if warmup_interval == "epoch":
        position, length = epoch, warmup_steps / steps_per_epoch
    else:
        position, length = step, warmup_steps
    factor = warmup_start_factor
    ramp = (position + 1) / length if factor == 0 else factor + (1 - factor) * position / length
    return min(ramp, 1.0) * (cosine if cosine_interval == "epoch" else 1.0)


def build_scheduler(optimizer, train, steps_per_epoch: int, total_steps: int, num_epochs: int):
    """LambdaLR over optimiser steps from train.{warmup_epochs, warmup_start_factor, warmup_interval,
    cosine_interval, min_lr}; see `lr_multiplier`."""
    for key in ("warmup_interval", "cosine_interval"):
        if getattr(train, key) not in INTERVALS:
            raise ConfigError(f"train.{key}: expected 'step' or 'epoch', got {getattr(train, key)!r}")
    if not 0.0 <= train.warmup_start_factor <= 1.0:
        raise ConfigError(f"train.warmup_start_factor: expected a fraction of the LR in [0, 1], got {train.warmup_start_factor}")
    warmup = round(train.warmup_epochs * steps_per_epoch)
    min_ratio = train.min_lr / train.lr if train.lr else 0.0
    options = dict(steps_per_epoch=steps_per_epoch, num_epochs=num_epochs, warmup_start_factor=train.warmup_start_factor,
                   warmup_interval=train.warmup_interval, cosine_interval=train.cosine_interval)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, total_steps, warmup, min_ratio, **options))


def build_optimizer(model, train) -> torch.optim.Optimizer:
    groups = model.param_groups(train.weight_decay)
    if not groups:
        raise ConfigError("the model has no trainable parameters; nothing to train")
    for group in groups:
        group["lr"] = train.lr * group["lr_scale"]
        group["initial_lr"] = group["lr"]
    if train.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=train.lr, betas=tuple(train.betas))
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum)
    raise ConfigError(f"train.optimizer: unknown optimizer {train.optimizer!r}; use adamw or sgd")


class RunLog:
    """JSONL lines plus TensorBoard scalars, written by rank 0."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, kind: str, step: int, **values) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"kind": kind, "step": step, **values}) + "\n")
        for key, value in values.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def train_one_epoch(model, loader, optimizer, scheduler, scaler, ema, state, config, dist, run_log, bar_total,
                    augment=None, mixer=None):
    """One pass over this rank's share of the training clips; updates `state` (step counters).

    `augment` (data.augment_on: device) turns each uint8 batch into normalised clips on the device,
    and `mixer` then applies Mixup/CutMix there."""
    train = config.train
    model.train()
    device = dist.device
    accumulation = train.accumulation_steps
    bar = tqdm(total=bar_total, initial=state["step_in_epoch"], desc=f"epoch {state['epoch'] + 1}/{state['epochs']}",
               disable=None if dist.is_main else True, dynamic_ncols=True, leave=False)
    seen, start_time, losses, correct, counted = 0, time.perf_counter(), [], 0, 0
    optimizer.zero_grad(set_to_none=True)
    for batch_index, (video, target, _) in enumerate(loader):
        video = video.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if augment is not None:
            video = augment(video)
        if mixer is not None:
            video, target = mixer.mix(video, target)
        last_micro = (batch_index + 1) % accumulation == 0
        sync = nullcontext() if (last_micro or not dist.enabled) else model.no_sync()
        step_started = time.perf_counter()
        with sync:
            with autocast(device, train.precision):
                out = model(video, target, train.label_smoothing)
            loss = out["loss"]
            check_finite(loss, state["step"], dist)
            scaled = loss / accumulation
            (scaler.scale(scaled) if scaler else scaled).backward()
        if train.compile and batch_index == 0 and dist.is_main:
            log.info("train.compile: the first forward and backward took %.1f s (compiling included)",
                     time.perf_counter() - step_started)
        losses.append(loss.item())
        if "logits" in out:
            hard = target if target.dim() == 1 else target.argmax(dim=1)
            correct += (out["logits"].argmax(dim=1) == hard).sum().item()
            counted += len(hard)
        seen += len(video)
        if not last_micro:
            continue
        if scaler:
            scaler.unscale_(optimizer)
        if train.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], train.grad_clip)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        if ema is not None:
            ema.update_parameters(_unwrap(model))
        state["step"] += 1
        state["step_in_epoch"] += 1
        rate = seen * dist.world_size / (time.perf_counter() - start_time)
        lr = optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}", clips_s=f"{rate:.1f}")
        bar.update(1)
        if state["step"] % train.log_every == 0:
            run_log.write("train", state["step"], loss=float(np.mean(losses[-train.log_every * accumulation:])), lr=lr, clips_per_s=rate)
        if train.checkpoint_every_steps and state["step"] % train.checkpoint_every_steps == 0:
            state["save"](mid_epoch=True)
        if state["step"] >= state["total_steps"]:
            break
    bar.close()
    mean_loss = all_reduce_mean(float(np.mean(losses)) if losses else float("nan"), device)
    accuracy = all_reduce_mean(100.0 * correct / counted, device) if counted else None
    return {"loss": mean_loss, "train_top1": accuracy, "clips_per_s": seen * dist.world_size / (time.perf_counter() - start_time)}


class NonFiniteLossError(FloatingPointError):
    """Raised on every process, together, when any process's loss is NaN or infinite."""


# Fault injection for tests: "RANK:STEP" makes that process's loss NaN at that optimiser step.
NAN_LOSS_FAULT_ENV = "CLIPVIDEO_FAULT_NAN_LOSS"


def check_finite(loss: torch.Tensor, step: int, dist) -> None:
    """Stop every process with one message when any loss is not finite. The flags are gathered
    each step before backward, so no process waits in a gradient all-reduce for one that died."""
    fault = os.environ.get(NAN_LOSS_FAULT_ENV)
    if fault and fault == f"{dist.rank}:{step}":
        loss.data.fill_(float("nan"))
    value = loss.item()
    bad = [dist.rank] if not math.isfinite(value) else []
    if dist.enabled:
        bad = [rank for rank, ok in enumerate(ranks_all_true(math.isfinite(value), dist.device)) if not ok]
    if bad:
        where = f"on process(es) {', '.join(map(str, bad))} of {dist.world_size}" if dist.enabled else f"({value})"
        raise NonFiniteLossError(
            f"the loss is not finite {where} at step {step}; every process stopped. Lower train.lr, "
            "set train.grad_clip, or check the data (resume from the last checkpoint after the fix)"
        )


class TrainStep(torch.nn.Module):
    """forward = the method's loss, so DDP wraps (and syncs gradients of) the whole loss computation."""

    def __init__(self, model, loss: str = "ce"):
        super().__init__()
        self.model = model
        if loss not in ("ce", "bce"):
            raise ConfigError(f"train.loss: expected 'ce' or 'bce', got {loss!r}")
        self.loss_kind = loss

    def forward(self, video, target, label_smoothing: float = 0.0):
        if self.loss_kind == "bce":
            # Multi-label: one sigmoid per class on the method's logits (the method's own loss is bypassed).
            logits = self.model(video)
            if target.dim() == 1:
                target = torch.nn.functional.one_hot(target, logits.shape[1])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target.float())
            return {"loss": loss, "logits": logits}
        return self.model.loss(video, target, label_smoothing)


def _unwrap(model):
    """The method's model inside DDP and/or TrainStep."""
    if isinstance(model, DistributedDataParallel):
        model = model.module
    return model.model if isinstance(model, TrainStep) else model


def _num_classes(config: Config, class_names, dataset) -> int:
    if config.data.num_classes:
        return config.data.num_classes
    if class_names:
        return len(class_names)
    return dataset.num_classes


def fit(config: Config, resume: str | None = None) -> dict:
    """Train `config`; resume from a checkpoint path, or "auto" for the run's last one."""
    dist = init_distributed(config.train.device)
    setup_logging(dist.rank)
    run_dir = Path(config.output_dir)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for line in folder_dataset(config.data, run_dir):  # FOLDER/<class>/<videos>: lists written once
            log.info("%s", line)
        save_config(config, run_dir / "config.yaml")
    barrier()
    if not dist.is_main:
        folder_dataset(config.data, run_dir, write=False)
    train_cfg = config.train
    seed = train_cfg.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    if config.data.index_cache_dir is None and not config.data.dummy:
        # Keyframe indexes built once per video, shared by workers and epochs (data root may be read-only).
        config.data.index_cache_dir = str(run_dir / "keyframe_index")
    class_names = read_classes(config.data)
    train_set = build_train_dataset(config.data, class_names)
    num_classes = _num_classes(config, class_names, train_set)
    seeded = SeededSamples(train_set, seed)
    sampler = EpochSampler(len(seeded), train_cfg.batch_size, seed, dist.rank, dist.world_size)
    collate = mix_collate(config.data, num_classes, train_cfg.label_smoothing)
    augment = batch_augment(config.data)  # data.augment_on: device
    mixer = collate if collate is not None and not collate.in_collate else None
    loader = DataLoader(seeded, batch_size=train_cfg.batch_size, sampler=sampler, drop_last=True,
                        num_workers=config.data.num_workers, collate_fn=collate, pin_memory=dist.device.type == "cuda",
                        generator=torch.Generator().manual_seed(seed + dist.rank))  # own stream: a resume does not shift the global one

    model = build_model(config, num_classes, class_names).to(dist.device)  # same seed on every rank: same init
    check_view_settings(model, config.test.aggregate, config.test.views_per_batch)  # fail before training
    optimizer = build_optimizer(model, train_cfg)
    steps_per_epoch = len(sampler) // train_cfg.batch_size // train_cfg.accumulation_steps
    total_steps = steps_per_epoch * train_cfg.epochs
    if train_cfg.max_steps:
        total_steps = min(total_steps, train_cfg.max_steps) if train_cfg.epochs else train_cfg.max_steps
        epochs = math.ceil(total_steps / steps_per_epoch)
    else:
        epochs = train_cfg.epochs
    scheduler = build_scheduler(optimizer, train_cfg, steps_per_epoch, total_steps, epochs)
    if train_cfg.precision == "fp16" and dist.device.type != "cuda":
        raise ConfigError("train.precision=fp16 needs a CUDA GPU (a gradient scaler); use bf16 on CPU")
    scaler = torch.amp.GradScaler("cuda") if train_cfg.precision == "fp16" else None
    ema = None
    if train_cfg.ema_decay:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(train_cfg.ema_decay))

    # From here each process draws its own random numbers (dropout masks differ across GPUs).
    random.seed(seed + dist.rank)
    np.random.seed(seed + dist.rank)
    torch.manual_seed(seed + dist.rank)
    resume_rng = None
    state = {"epoch": 0, "step": 0, "step_in_epoch": 0, "epochs": epochs, "total_steps": total_steps, "best_top1": None}
    resume_path = ckpt.find_latest(run_dir) if resume == "auto" else (Path(resume) if resume else None)
    if resume_path:
        payload = ckpt.read_checkpoint(resume_path)
        if "optimizer" not in payload:
            raise CheckpointError(f"{resume_path}: no optimiser state to resume from (model.pt and epoch files "
                                  "hold weights only); resume from the run's checkpoint_last.pt")
        ckpt.load_model_state(model, payload["model"], resume_path)  # a teacher is rebuilt, not read
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        if scaler and payload.get("scaler"):
            scaler.load_state_dict(payload["scaler"])
        if ema is not None and payload.get("ema"):
            ema.load_state_dict(payload["ema"])
        state.update(epoch=payload["epoch"], step=payload["step"], step_in_epoch=payload["step_in_epoch"],
                     best_top1=payload.get("metrics", {}).get("best_top1"))
        resume_rng = payload["rng"]
        per_rank = payload.get("rng_per_rank")
        if per_rank and len(per_rank) == dist.world_size:
            resume_rng = per_rank[dist.rank]
        elif dist.enabled or per_rank:
            log.warning("%s was saved by %d process(es), resumed on %d: the random streams (dropout) differ from "
                        "an uninterrupted run", resume_path, len(per_rank or [0]), dist.world_size)
        log.info("resumed from %s at epoch %d, step %d", resume_path, state["epoch"] + 1, state["step"])
    elif resume == "auto":
        log.info("no checkpoint in %s; starting from scratch", run_dir)

    train_model = TrainStep(model, train_cfg.loss)
    if train_cfg.compile:
        train_model.compile()  # in place; the first step compiles (its time is logged), checkpoints keep plain keys
    if dist.enabled:
        train_model = DistributedDataParallel(train_model, device_ids=[dist.device] if dist.device.type == "cuda" else None)
    run_log = RunLog(run_dir, dist.is_main)

    eval_loader, eval_set = None, None
    if config.data.val_list or config.data.dummy:
        eval_set = build_eval_dataset(config.data, config.test, class_names)
        eval_loader = DataLoader(eval_set, batch_size=config.test.batch_size, num_workers=config.test.num_workers,
                                 sampler=ShardSampler(len(eval_set), dist.rank, dist.world_size),
                                 generator=torch.Generator().manual_seed(seed))

    def save(mid_epoch: bool = False, metrics: dict | None = None) -> None:
        rng_per_rank = ckpt.gather_rng_states()  # every rank calls save: each stream is kept
        if not dist.is_main:
            return
        payload = {
            **ckpt.model_payload(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "ema": ema.state_dict() if ema is not None else None,
            "epoch": state["epoch"],
            "step": state["step"],
            "step_in_epoch": state["step_in_epoch"] if mid_epoch else 0,
            "config": config.to_dict(),
            "rng": rng_per_rank[0],
            "rng_per_rank": rng_per_rank,
            "metrics": {**(metrics or {}), "best_top1": state["best_top1"]},
        }
        ckpt.atomic_save(payload, run_dir / "checkpoint_last.pt")
        if train_cfg.keep_epoch_checkpoints and not mid_epoch:
            # For `clipvideo average`: a model file (weights, run config, class names), no optimiser,
            # scheduler, scaler, EMA or RNG state (AdamW's moments alone double the file); only
            # checkpoint_last.pt resumes.
            ckpt.save_model(model, run_dir / f"checkpoint_epoch{state['epoch']:03d}.pt", data=config.data,
                            test=config.test, config=config.to_dict(), epoch=state["epoch"], step=state["step"],
                            metrics=payload["metrics"])

    state["save"] = save
    log.info("method %s, %d classes, %d training clips, %d steps/epoch x %d epochs (%d steps), %d process(es)",
             config.method, num_classes, len(train_set), steps_per_epoch, epochs, total_steps, dist.world_size)
    history = []
    result = None
    eval_precision = resolve_precision(config.test.precision, dist.device, "test.precision")
    if resume_rng is not None:  # restored last, so nothing above draws from the resumed streams
        ckpt.set_rng_state(resume_rng)
    started = time.monotonic()
    out_of_time = False
    while state["epoch"] < epochs and state["step"] < total_steps and not out_of_time:
        epoch = state["epoch"]
        seeded.epoch = epoch
        batches_done = state["step_in_epoch"] * train_cfg.accumulation_steps
        sampler.set_epoch(epoch, start=batches_done * train_cfg.batch_size)
        if hasattr(train_set, "reset_bad_videos"):
            train_set.reset_bad_videos()
        stats = train_one_epoch(train_model, loader, optimizer, scheduler, scaler, ema, state, config, dist,
                                run_log, steps_per_epoch, augment, mixer)
        _report_bad_videos(train_set, epoch)
        row = {"epoch": epoch + 1, **stats}
        out_of_time = bool(train_cfg.max_minutes) and (time.monotonic() - started) / 60 >= train_cfg.max_minutes
        if out_of_time and epoch + 1 < epochs:
            log.info("train.max_minutes=%g reached after epoch %d of %d: stopping", train_cfg.max_minutes, epoch + 1, epochs)
        last_epoch = epoch + 1 >= epochs or state["step"] >= total_steps or out_of_time
        every = train_cfg.eval_every
        if eval_loader is not None and (last_epoch or (every and (epoch + 1) % every == 0)):
            eval_model = ema.module if ema is not None else model
            result = evaluate(eval_model, eval_loader, dist.device, eval_precision, config.test.aggregate,
                              num_classes, progress=dist.is_main, dataset=eval_set,
                              views_per_batch=config.test.views_per_batch)
            row.update({f"val_{k}": v for k, v in result.metrics.items()})
            if state["best_top1"] is None or result.metrics["top1"] > state["best_top1"]:
                state["best_top1"] = result.metrics["top1"]
        history.append(row)
        run_log.write("epoch", state["step"], **{k: v for k, v in row.items() if v is not None})
        log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
        state["epoch"] += 1
        state["step_in_epoch"] = 0
        save(metrics=row)
    run_log.close()
    if dist.is_main:
        ckpt.save_model(ema.module if ema is not None else model, run_dir / "model.pt", data=config.data, test=config.test)
        if result is not None:
            write_predictions(result, run_dir / "predictions.jsonl", class_names, eval_set)
        from .plots import plot_run

        plot_run(run_dir, result, class_names)
    barrier()
    return {"history": history, "final": result.metrics if result else None, "run_dir": str(run_dir),
            "model": model, "num_classes": num_classes}


def _report_bad_videos(dataset, epoch: int) -> None:
    count = getattr(dataset, "bad_video_count", None)
    if callable(count):
        n = count()
        if n:
            log.warning("epoch %d: %d unreadable training videos were replaced by other samples (see log above)", epoch + 1, n)


__all__ = ["fit", "build_model", "train_one_epoch", "cosine_with_warmup", "lr_multiplier", "build_scheduler",
           "EpochSampler"]
