"""Evaluation protocols as loops over (video list, class vocabulary) pairs: zero-shot, few-shot,
base-to-novel. Every score comes from `engine.evaluate`; a protocol only chooses the lists and the
class names (`model.set_class_names`, one text encoding per vocabulary) and does the arithmetic.
Exact definitions: docs/protocols.md.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import protocols as shipped
from ..data import read_class_descriptions, read_class_names
from ..data.splits import few_shot_list_name, write_few_shot_lists
from . import checkpoint as ckpt
from ..methods.base import ClassVocabulary
from .config import Config, ConfigError
from .data import build_eval_dataset
from .distributed import barrier, init_distributed, setup_logging
from .evaluate import EvalResult, ShardSampler, evaluate
from .metrics import harmonic_mean, topk_accuracy
from .fastpath import prepare_for_inference
from .precision import resolve_precision

log = logging.getLogger("clipvideo")

FEW_SHOTS = (2, 4, 8, 16)


# ---------------------------------------------------------------------------------------------
# Arithmetic (pure functions; the tests check them by hand)


def mean_std(values, ddof: int = 0) -> tuple[float, float]:
    """Mean and standard deviation; ddof=0 is the population std (numpy's default, Text4Vis)."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=ddof)) if len(array) > ddof else float("nan")


def half_class_draws(num_classes: int, draws: int = 10) -> list[np.ndarray]:
    """Text4Vis's class sets: for split s = 0..draws-1, numpy's legacy generator seeded with s,
    ``permutation(num_classes)[:num_classes // 2]`` (a RandomState(s) draws exactly that)."""
    return [np.random.RandomState(split).permutation(num_classes)[: num_classes // 2] for split in range(draws)]


def half_class_accuracy(scores: torch.Tensor, labels: torch.Tensor, draws: int = 10,
                        failed: torch.Tensor | None = None) -> dict:
    """Top-1/top-5 on each half-class draw, then mean and population std over the draws.

    Per draw: keep the videos whose label is in the drawn set, keep the score columns of the
    sorted labels those videos carry, relabel them 0..n-1, rank (Text4Vis test_zeroshot.py).
    `failed` (V,) videos that could not be read count as wrong, whatever their score row.
    """
    num_classes = scores.shape[1]
    failed = torch.zeros(len(labels), dtype=torch.bool) if failed is None else failed.bool()
    rows = []
    for split, drawn in enumerate(half_class_draws(num_classes, draws)):
        keep = torch.isin(labels, torch.as_tensor(drawn, dtype=labels.dtype))
        present = torch.unique(labels[keep])  # sorted
        relabel = torch.full((num_classes,), -1, dtype=torch.long)
        relabel[present] = torch.arange(len(present))
        sub_scores, sub_labels, sub_failed = scores[keep][:, present], relabel[labels[keep]], failed[keep]
        rows.append({"draw": split, "num_classes": len(present), "num_videos": int(keep.sum()),
                     "top1": topk_accuracy(sub_scores, sub_labels, 1, sub_failed),
                     "top5": topk_accuracy(sub_scores, sub_labels, 5, sub_failed)})
    top1_mean, top1_std = mean_std([r["top1"] for r in rows])
    top5_mean, top5_std = mean_std([r["top5"] for r in rows])
    return {"draws": rows, "top1_mean": top1_mean, "top1_std": top1_std, "top5_mean": top5_mean, "top5_std": top5_std}


def summarize_splits(rows: list[dict], keys=("top1", "top5")) -> dict:
    """Mean and population std of each key over the per-split rows."""
    out = {"splits": rows}
    for key in keys:
        out[f"{key}_mean"], out[f"{key}_std"] = mean_std([r[key] for r in rows])
    return out


def base_to_novel_summary(rows: list[dict]) -> dict:
    """rows of {"base", "novel"} per split -> per-split HM, averaged Base and Novel, HM of the averages
    (the tables' convention: FROSTER 77.8 / 64.3 -> 70.4) and the mean of the per-split HMs."""
    for row in rows:
        row["hm"] = harmonic_mean(row["base"], row["novel"])
    base, novel = mean_std([r["base"] for r in rows]), mean_std([r["novel"] for r in rows])
    return {"splits": rows, "base": base[0], "base_std": base[1], "novel": novel[0], "novel_std": novel[1],
            "hm": harmonic_mean(base[0], novel[0]), "mean_of_split_hm": mean_std([r["hm"] for r in rows])[0]}


# ---------------------------------------------------------------------------------------------
# Scoring a (list, vocabulary) pair with the engine's evaluation


def load_text_model(config: Config, checkpoint: str | None = None, backbone: str | None = None):
    """A text-based model: a native checkpoint, or the recipe's model (`--backbone` = its CLIP weights)."""
    if checkpoint:
        payload = ckpt.read_checkpoint(checkpoint)
        model = ckpt.model_from_payload(payload, checkpoint)
        where = f"{checkpoint}: a {payload['method']} model"
    else:
        from .train import build_model

        config = copy.deepcopy(config)
        if backbone:
            config.model = {**config.model, "backbone": {**config.model.get("backbone", {}), "pretrained": str(backbone)}}
        elif not config.model.get("backbone", {}).get("pretrained"):
            log.warning("no --checkpoint or --backbone and the recipe sets no model.backbone.pretrained: random weights")
        model = build_model(config, 1, None)
        where = f"recipe method {config.method!r}"
    if not model.uses_text:
        raise ConfigError(f"{where} classifies with a trained head; protocols need a text-based model "
                          "(frozen with classifier: text, xclip, text4vis, froster)")
    return model


class Scorer:
    """Scores lists with one model under the recipe's data/test settings (any number of processes)."""

    def __init__(self, config: Config, model):
        self.config = config
        self.dist = init_distributed(config.train.device)
        setup_logging(self.dist.rank)
        self.model = model.to(self.dist.device).eval()
        self.precision = resolve_precision(config.test.precision, self.dist.device)
        prepare_for_inference(self.model, self.precision, cast=config.test.cast_weights)
        self.views = ""

    def __call__(self, list_file: str | Path, class_names: list[str],
                 vocabulary: ClassVocabulary | None = None) -> EvalResult:
        """Scores `list_file` among `class_names`; `vocabulary` (from `protocol_vocabulary`: the names
        with their descriptions) is what the model is given, the bare names when not given."""
        if not Path(list_file).is_file():
            raise ConfigError(f"{list_file}: no such video list")
        self.model.set_classes(vocabulary or class_names)  # the vocabulary's text is encoded once, here
        dataset = build_eval_dataset(self.config.data, self.config.test, class_names, str(list_file))
        first = dataset.video_path(0) if hasattr(dataset, "video_path") and not self.config.data.tar_path else None
        if first is not None and not Path(first).exists():
            # Shipped lists name videos relative to the dataset's folder: stop before logging every video as missing.
            raise ConfigError(f"{list_file}: first video {first} not found; set data.root to the folder holding "
                              f"the listed videos (--set data.root=...)")
        self.views = dataset.describe() if hasattr(dataset, "describe") else ""
        loader = DataLoader(dataset, batch_size=self.config.test.batch_size, num_workers=self.config.test.num_workers,
                            sampler=ShardSampler(len(dataset), self.dist.rank, self.dist.world_size))
        log.info("scoring %s: %d videos, %d classes, %s", list_file, len(dataset), len(class_names), self.views)
        result = evaluate(self.model, loader, self.dist.device, self.precision, self.config.test.aggregate,
                          len(class_names), progress=self.dist.is_main, dataset=dataset)
        if result.metrics["failed_videos"] == result.metrics["num_videos"]:
            raise ConfigError(f"{list_file}: none of the {result.num_videos} videos could be read (see the log); "
                              f"check data.root={self.config.data.root!r}")
        return result


def protocol_vocabulary(model, class_file: str | Path, names: list[str],
                        shipped_descriptions: str | None = None) -> ClassVocabulary:
    """The vocabulary the protocols give the model for `names` (read from `class_file`): with the class
    file's own descriptions (FROSTER's JSON), else, for a model that encodes descriptions (FROSTER),
    the shipped ones matched by name (`protocols.descriptions(names, shipped_descriptions)`), else
    bare (with a warning for such a model). Every method is given it and uses what it needs. The
    one place the protocols choose a vocabulary's text."""
    own = read_class_descriptions(class_file)
    file_names = read_class_names(class_file)
    if any(text != name for name, text in zip(file_names, own)):
        by_name = dict(zip(file_names, own))
        return ClassVocabulary(tuple(names), tuple(by_name.get(name) for name in names))
    if not model.uses_descriptions:  # shipped descriptions only for a model that encodes them
        return ClassVocabulary(tuple(names))
    if shipped_descriptions:
        return ClassVocabulary(tuple(names), tuple(shipped.descriptions(names, shipped_descriptions)))
    log.warning("%s has no class descriptions and none are shipped for it: %s scores the bare class names",
                class_file, type(model).__name__)
    return ClassVocabulary(tuple(names))


def _single_label(config: Config, command: str) -> None:
    if config.data.multi_label:
        raise ConfigError(f"{command}: data.multi_label is set, but the {command} protocol scores single-label lists "
                          "(top-1/top-5); score a multi-label list with `clipvideo test` (mAP)")


def _renamed(split_names: list[str], default_names: list[str], names: list[str]) -> list[str]:
    """A split's classes under the --classes vocabulary: each default name -> the name at its id."""
    position = {name: index for index, name in enumerate(default_names)}
    return [names[position[name]] for name in split_names]


def _row(name: str, result: EvalResult, num_classes: int) -> dict:
    m = result.metrics
    return {"name": name, "top1": m["top1"], "top5": m["top5"], "num_videos": m["num_videos"],
            "failed_videos": m["failed_videos"], "num_classes": num_classes}


def run_zeroshot(config: Config, dataset: str, checkpoint: str | None = None, backbone: str | None = None,
                 classes: str | None = None, list_file: str | None = None, draws: int = 10, model=None) -> dict:
    """Full-class and half-class results on the full list (`list_file`; data.val_list for datasets
    without shipped splits) and mean +- std over the shipped splits (UCF/HMDB test splits, K600 subsets)."""
    name = shipped.canonical(dataset)
    if draws < 1:
        raise ConfigError(f"--draws: the half-class protocol needs at least one draw (Text4Vis: 10), got {draws}")
    _single_label(config, "zeroshot")
    if name == "custom":
        if not classes or not list_file:
            raise ConfigError("--dataset custom needs --classes FILE (class names) and --list FILE (videos)")
        spec = shipped.ZeroShotDataset("custom", Path(classes))
    else:
        spec = shipped.zero_shot_dataset(name)
    class_file = Path(classes) if classes else spec.class_file
    names = read_class_names(class_file)
    default_names = read_class_names(spec.class_file)
    if classes and spec.splits and len(names) != len(default_names):
        raise ConfigError(f"--classes {classes}: {len(names)} classes, but the shipped {name} splits index the "
                          f"{len(default_names)} classes of {spec.class_file}; give a file with the same classes")
    described = None if name in ("custom", "activitynet") else name
    # A recipe's data.val_list often holds one split (with its own labels), so datasets with shipped
    # splits take the full list only from --list.
    full_list = list_file or (None if spec.splits else config.data.val_list)
    if not full_list and not spec.splits:
        raise ConfigError(f"--dataset {name}: give the videos to score with --list FILE (or data.val_list)")
    score = Scorer(config, model if model is not None else load_text_model(config, checkpoint, backbone))
    report = {"protocol": "zeroshot", "dataset": name, "checkpoint": checkpoint or backbone}
    if full_list:
        result = score(full_list, names, protocol_vocabulary(score.model, class_file, names, described))
        report["full"] = {**_row(str(full_list), result, len(names)), "class_file": str(class_file)}
        if config.test.aggregate == "prob" and config.test.num_clips * config.test.num_crops > 1:
            log.warning("half-class draws re-rank the drawn columns of view-averaged probabilities; with one view "
                        "(Text4Vis) or test.aggregate logit/feature this equals re-scoring with the drawn names")
        report["half_classes"] = half_class_accuracy(result.scores, result.labels, draws, result.failed_mask)
    if spec.splits:
        rows = []
        for split in spec.splits:
            split_names, split_class_file = read_class_names(split.class_file), split.class_file
            # K600's subsets have their own description files (zs_split<s>_classes.csv -> kinetics600_zs_split<s>)
            source = f"kinetics600_{Path(split.class_file).stem.removesuffix('_classes')}" if name == "kinetics600" else described
            if classes:  # --classes names the classes the splits pick by id from the default vocabulary
                split_names, split_class_file, source = _renamed(split_names, default_names, names), class_file, described
            texts = protocol_vocabulary(score.model, split_class_file, split_names, source)
            rows.append(_row(split.name, score(split.list_file, split_names, texts), len(split_names)))
        report["splits"] = {"kind": spec.split_kind, **summarize_splits(rows)}
    report["views"], report["precision"] = score.views, score.precision
    return report


def run_b2n(config: Config, dataset: str, checkpoints: list[str | None], backbone: str | None = None,
            base_classes: str | None = None, novel_classes: str | None = None, base_list: str | None = None,
            novel_list: str | None = None, models=None) -> dict:
    """Base accuracy (base test videos among base names), Novel (novel videos among novel names),
    HM, for each checkpoint (one per training split), then averaged."""
    name = shipped.canonical(dataset)
    _single_label(config, "b2n")
    if name == "custom":
        missing = [flag for flag, value in (("--base-classes", base_classes), ("--novel-classes", novel_classes),
                                            ("--base-list", base_list), ("--novel-list", novel_list)) if not value]
        if missing:
            raise ConfigError(f"--dataset custom needs {', '.join(missing)}")
    else:
        spec = shipped.base_to_novel(name)
        base_classes, novel_classes = base_classes or spec.base_classes, novel_classes or spec.novel_classes
        base_list, novel_list = base_list or spec.base_test, novel_list or spec.novel_test
    base_names, novel_names = read_class_names(base_classes), read_class_names(novel_classes)
    overlap = sorted(set(base_names) & set(novel_names))
    if overlap:
        raise ConfigError(f"{base_classes} and {novel_classes} share {len(overlap)} class(es), e.g. {overlap[0]!r}")
    models = models if models is not None else [load_text_model(config, c, backbone) for c in checkpoints]
    described = None if name == "custom" else f"b2n_{name}"
    rows, score = [], None
    for index, model in enumerate(models):
        score = Scorer(config, model)
        base_texts = protocol_vocabulary(model, base_classes, base_names, described and f"{described}_base")
        novel_texts = protocol_vocabulary(model, novel_classes, novel_names, described and f"{described}_novel")
        base = score(base_list, base_names, base_texts).metrics["top1"]
        novel = score(novel_list, novel_names, novel_texts).metrics["top1"]
        rows.append({"name": str(checkpoints[index]) if index < len(checkpoints) and checkpoints[index] else f"model {index + 1}",
                     "base": base, "novel": novel})
    report = {"protocol": "b2n", "dataset": name, **base_to_novel_summary(rows)}
    report["views"], report["precision"] = score.views, score.precision
    return report


def run_fewshot(config: Config, shots: int, seeds: list[int], source_list: str | None = None) -> dict:
    """Train on a seeded K-shot draw of the training list for each seed, test on data.val_list, mean +- std.
    With data.few_shot_repeat (Text4Vis) the draw is repeated to about the full list's length."""
    from .train import fit

    source = source_list or config.data.train_list
    if not source:
        raise ConfigError("few-shot needs the full training list: data.train_list or --from FILE")
    if not config.data.val_list:
        raise ConfigError("few-shot needs data.val_list (the test videos)")
    base_dir = Path(config.output_dir)
    rows = []
    dist = init_distributed(config.train.device)
    if shots < 1:
        raise ConfigError(f"--shots must be positive, got {shots}")
    for seed in seeds:
        list_path = base_dir / "lists" / few_shot_list_name(source, shots, seed)
        if dist.is_main:  # every process trains on the same list; one writes it
            write_few_shot_lists(source, [shots], [seed], base_dir / "lists", rawframes=config.data.format == "rawframes",
                                 separator=config.data.separator, repeat=config.data.few_shot_repeat)
        barrier()
        run = copy.deepcopy(config)
        run.data.train_list, run.train.seed = str(list_path), seed
        run.output_dir = str(base_dir / f"{shots}shot_seed{seed}")
        final = fit(run)["final"] or {}
        rows.append({"name": f"seed {seed}", "seed": seed, "train_list": str(list_path), "run_dir": run.output_dir,
                     "top1": final.get("top1", float("nan")), "top5": final.get("top5", float("nan"))})
    return {"protocol": "fewshot", "shots": shots, **summarize_splits(rows)}


# ---------------------------------------------------------------------------------------------
# Printed reports


def _pm(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def _videos(row: dict) -> str:
    failed = row.get("failed_videos", 0)
    return f"{row['num_videos']} videos" + (f", {failed} unreadable, counted as wrong" if failed else "")


def format_report(report: dict) -> str:
    lines = []
    kind = report["protocol"]
    if kind == "zeroshot":
        lines.append(f"zero-shot on {report['dataset']} ({report.get('views', '')}, {report.get('precision', '')})")
        if "full" in report:
            f = report["full"]
            lines.append(f"  full classes ({f['num_classes']} classes, {_videos(f)}): "
                         f"top-1 {f['top1']:.2f}  top-5 {f['top5']:.2f}")
            h = report["half_classes"]
            lines.append(f"  half classes ({len(h['draws'])} draws of {h['draws'][0]['num_classes']} classes): "
                         f"top-1 {_pm(h['top1_mean'], h['top1_std'])}  top-5 {_pm(h['top5_mean'], h['top5_std'])}")
        if "splits" in report:
            s = report["splits"]
            for row in s["splits"]:
                lines.append(f"  {row['name']:<13} ({row['num_classes']} classes, {_videos(row)}): "
                             f"top-1 {row['top1']:.2f}  top-5 {row['top5']:.2f}")
            lines.append(f"  {s['kind']}: top-1 {_pm(s['top1_mean'], s['top1_std'])}  top-5 {_pm(s['top5_mean'], s['top5_std'])}")
    elif kind == "b2n":
        lines.append(f"base-to-novel on {report['dataset']} ({report.get('views', '')}, {report.get('precision', '')})")
        lines.append(f"  {'split':<40} {'base':>6} {'novel':>6} {'HM':>6}")
        for row in report["splits"]:
            lines.append(f"  {row['name'][-40:]:<40} {row['base']:6.2f} {row['novel']:6.2f} {row['hm']:6.2f}")
        lines.append(f"  {'average (HM of the averages)':<40} {report['base']:6.2f} {report['novel']:6.2f} {report['hm']:6.2f}")
    elif kind == "fewshot":
        lines.append(f"{report['shots']}-shot over {len(report['splits'])} seeds")
        for row in report["splits"]:
            lines.append(f"  {row['name']:<8} top-1 {row['top1']:.2f}  top-5 {row['top5']:.2f}  ({row['run_dir']})")
        lines.append(f"  mean ± std: top-1 {_pm(report['top1_mean'], report['top1_std'])}  top-5 {_pm(report['top5_mean'], report['top5_std'])}")
    return "\n".join(lines)
