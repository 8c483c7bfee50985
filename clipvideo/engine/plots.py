"""PNG plots at the end of a run: loss and accuracy curves, confusion matrix (<= 100 classes)."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .metrics import confusion_matrix  # noqa: E402


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_run(run_dir: str | Path, result=None, class_names: list[str] | None = None) -> list[Path]:
    run_dir = Path(run_dir)
    rows = _read_log(run_dir / "metrics.jsonl")
    written = []
    steps = [(r["step"], r["loss"]) for r in rows if r["kind"] == "train" and "loss" in r]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    if steps or epochs:
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
        if steps:
            ax_loss.plot(*zip(*steps), label="train loss (per log interval)")
        if epochs:
            ax_loss.plot([r["step"] for r in epochs], [r["loss"] for r in epochs], "o-", label="train loss (epoch)")
            for key, label in (("train_top1", "train top-1"), ("val_top1", "val top-1"), ("val_top5", "val top-5")):
                points = [(r["epoch"], r[key]) for r in epochs if r.get(key) is not None]
                if points:
                    ax_acc.plot(*zip(*points), "o-", label=label)
        ax_loss.set(xlabel="step", ylabel="loss", title="loss")
        ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=(0, 100))
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend()
        fig.tight_layout()
        path = run_dir / "curves.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if result is not None and result.scores.shape[1] <= 100 and result.labels.dim() == 1:  # not for multi-label
        num_classes = result.scores.shape[1]
        matrix = confusion_matrix(result.scores, result.labels, num_classes, result.failed_mask)
        size = min(4 + 0.35 * num_classes, 20)
        fig, ax = plt.subplots(figsize=(size, size))
        ax.imshow(matrix, cmap="Blues")
        names = class_names if class_names and len(class_names) == num_classes else [str(i) for i in range(num_classes)]
        ax.set_xticks(range(num_classes), names, rotation=90, fontsize=7 if num_classes > 30 else 9)
        ax.set_yticks(range(num_classes), names, fontsize=7 if num_classes > 30 else 9)
        if num_classes <= 30:
            for i in range(num_classes):
                for j in range(num_classes):
                    if matrix[i, j]:
                        ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                                color="white" if matrix[i, j] > matrix.max() / 2 else "black")
        ax.set(xlabel="predicted", ylabel="true", title=f"confusion matrix ({result.num_videos} videos)")
        fig.tight_layout()
        path = run_dir / "confusion_matrix.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
