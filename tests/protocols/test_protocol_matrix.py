"""The text-method rows of the conformance matrix: `zeroshot`, `b2n` and `fewshot` through the CLI for
frozen CLIP, X-CLIP, Text4Vis and FROSTER, each from its tiny recipe (configs/<method>/tiny_synthetic.yaml)
with a tiny random CLIP, on synthetic videos (CPU, seconds per cell).

The class files are FROSTER-style JSON ("Name: description"): every method reads the names from them,
FROSTER must encode the descriptions. A spy on each method's `set_classes` checks which text reached
the model, so a method that loses its descriptions (or a protocol that hands bare names to FROSTER)
fails here.
"""

import json
from pathlib import Path

import pytest

from clipvideo.cli import main
from clipvideo.data import read_video_list
from clipvideo.methods.froster import FROSTER
from clipvideo.methods.frozen import FrozenCLIP
from clipvideo.methods.text4vis import Text4Vis
from clipvideo.methods.xclip import XCLIP

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MODEL_CLASSES = {"frozen": FrozenCLIP, "xclip": XCLIP, "text4vis": Text4Vis, "froster": FROSTER}
DESCRIPTIONS = {"moving left": "a small square slides from the right edge to the left edge",
                "moving right": "a small square slides from the left edge to the right edge",
                "moving up": "a small square rises from the bottom edge to the top edge",
                "moving down": "a small square falls from the top edge to the bottom edge"}
CLASSES = list(DESCRIPTIONS)
BASE, NOVEL = [0, 2], [1, 3]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from clipvideo.data.synthetic import make_motion_dataset

    return make_motion_dataset(tmp_path_factory.mktemp("matrix"), num_videos_per_class=3, num_val_per_class=2,
                               num_frames=8, size=(64, 64), fps=8, seed=3, classes=CLASSES)


def described_classes(path: Path, labels: list[int]) -> Path:
    """FROSTER's class-file layout: {"0": "Name: description", ...}."""
    path.write_text(json.dumps({str(i): f"{CLASSES[c]}: {DESCRIPTIONS[CLASSES[c]]}" for i, c in enumerate(labels)}))
    return path


def subset(videos, folder: Path, labels: list[int], name: str) -> tuple[Path, Path]:
    """The val videos of `labels`, relabelled 0..n-1 (absolute paths), and their described class file."""
    lines = [f"{Path(videos.root) / r.path} {labels.index(r.label)}" for r in read_video_list(videos.val_list)
             if r.label in labels]
    (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return folder / f"{name}.txt", described_classes(folder / f"{name}.json", labels)


def overrides(method: str, videos, classes: Path, clip: Path, output: Path) -> list[str]:
    """The tiny recipe on the synthetic videos: the tiny CLIP file, one short epoch, no workers."""
    values = [f"model.backbone.pretrained={clip}", "model.backbone.heads=2", "model.backbone.text_heads=2",
              f"data.root={videos.root}", f"data.train_list={videos.train_list}", f"data.val_list={videos.val_list}",
              f"data.class_names={classes}", "data.num_workers=0", "test.num_workers=0", "test.batch_size=4",
              "train.epochs=1", "train.batch_size=4", "train.eval_every=0", "train.warmup_epochs=0",
              "train.keep_epoch_checkpoints=false", f"output_dir={output}"]
    if method == "frozen":
        values.append("model.classifier=text")  # the tiny recipe trains a linear head; the protocols need text
    return values


def expected_texts(method: str, labels: list[int]) -> list[str]:
    names = [CLASSES[c] for c in labels]
    return [f"{n}: {DESCRIPTIONS[n]}" for n in names] if method == "froster" else names


def spy_vocabularies(monkeypatch, method: str) -> list[list[str]]:
    """The text each `set_classes` call leaves the model encoding: "Name: description" entries for a
    model that classifies with descriptions (FROSTER), the names for the others."""
    seen, model_class = [], MODEL_CLASSES[method]
    original = model_class.set_classes

    def recording(self, classes):
        original(self, classes)
        seen.append(self.vocabulary.texts() if self.uses_descriptions else list(self.vocabulary.names))

    monkeypatch.setattr(model_class, "set_classes", recording)
    return seen


def run_json(capsys, args) -> dict:
    assert main([str(a) for a in args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("method", sorted(MODEL_CLASSES))
def test_zeroshot(method, videos, tiny_clip_file, tmp_path, capsys, monkeypatch):
    classes = described_classes(tmp_path / "classes.json", [0, 1, 2, 3])
    seen = spy_vocabularies(monkeypatch, method)
    report = run_json(capsys, ["zeroshot", CONFIGS / method / "tiny_synthetic.yaml",
                               "--set", *overrides(method, videos, classes, tiny_clip_file, tmp_path / "run"),
                               "--backbone", tiny_clip_file, "--dataset", "custom", "--classes", classes,
                               "--list", videos.val_list, "--draws", "3", "--json"])
    full = report["full"]
    assert (full["num_videos"], full["num_classes"], full["failed_videos"]) == (8, 4, 0)
    assert 0 <= full["top1"] <= full["top5"] == 100.0  # 4 classes: the top 5 holds every class
    assert len(report["half_classes"]["draws"]) == 3
    assert seen[-1] == expected_texts(method, [0, 1, 2, 3])


@pytest.mark.parametrize("method", sorted(MODEL_CLASSES))
def test_b2n(method, videos, tiny_clip_file, tmp_path, capsys, monkeypatch):
    base_list, base_classes = subset(videos, tmp_path, BASE, "base")
    novel_list, novel_classes = subset(videos, tmp_path, NOVEL, "novel")
    seen = spy_vocabularies(monkeypatch, method)
    report = run_json(capsys, ["b2n", CONFIGS / method / "tiny_synthetic.yaml",
                               "--set", *overrides(method, videos, base_classes, tiny_clip_file, tmp_path / "run"),
                               "--backbone", tiny_clip_file, "--dataset", "custom",
                               "--base-classes", base_classes, "--novel-classes", novel_classes,
                               "--base-list", base_list, "--novel-list", novel_list, "--json"])
    row, = report["splits"]
    for key in ("base", "novel"):
        assert 0 <= row[key] <= 100 and row[key] == report[key]
    assert seen[-2:] == [expected_texts(method, BASE), expected_texts(method, NOVEL)]


@pytest.mark.parametrize("method", sorted(MODEL_CLASSES))
def test_fewshot(method, videos, tiny_clip_file, tmp_path, capsys, monkeypatch):
    classes = described_classes(tmp_path / "classes.json", [0, 1, 2, 3])
    seen = spy_vocabularies(monkeypatch, method)
    report = run_json(capsys, ["fewshot", CONFIGS / method / "tiny_synthetic.yaml",
                               "--set", *overrides(method, videos, classes, tiny_clip_file, tmp_path / "run"),
                               "--shots", "1", "--seeds", "0", "--json"])
    row, = report["splits"]
    records = read_video_list(row["train_list"])
    assert len({r.path for r in records}) == 4  # one video per class
    full = len(read_video_list(videos.train_list))
    assert len(records) == (4 * (full // 4) if method == "text4vis" else 4)  # Text4Vis repeats to a full epoch
    assert (Path(row["run_dir"]) / "model.pt").is_file() and 0 <= row["top1"] <= 100
    assert expected_texts(method, [0, 1, 2, 3]) in seen  # the model was trained on the described classes
