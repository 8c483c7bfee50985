"""The protocol commands end to end on synthetic videos with a tiny random CLIP (CPU, seconds)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from clipvideo import protocols
from clipvideo.cli import main
from clipvideo.data import read_video_list
from clipvideo.data.splits import write_few_shot_lists
from clipvideo.engine.config import ConfigError, build_config
from clipvideo.engine.protocols import (
    format_report,
    half_class_draws,
    run_fewshot,
)
from clipvideo.engine.train import TrainStep, fit

CLASSES = ["moving left", "moving right", "moving up", "moving down", "still red square", "still green circle"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from clipvideo.data.synthetic import make_motion_dataset

    return make_motion_dataset(tmp_path_factory.mktemp("videos"), num_videos_per_class=4, num_val_per_class=3,
                               num_frames=8, size=(64, 64), fps=8, seed=2, classes=CLASSES)


def recipe(tmp_path, videos, **data):
    """Frozen CLIP zero-shot (frame mean, cosine with class-name text): 4 frames, 64 px, one view."""
    values = {
        "method": "frozen",
        "model": {"backbone": {"arch": "tiny"}, "num_frames": 4, "temporal": "mean", "classifier": "text"},
        "data": {"root": videos.root, "class_names": videos.class_names_file, "num_frames": 4, "sampling": "segment",
                 "input_size": 64, "short_side": 64, "num_workers": 0, **data},
        "test": {"batch_size": 6, "num_workers": 0, "precision": "fp32"},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def subset_list(videos, tmp_path, labels, name):
    """The val videos of `labels`, relabelled 0..n-1 in the given order, and their class file."""
    lines = []
    for record in read_video_list(videos.val_list):
        if record.label in labels:
            lines.append(f"{record.path} {labels.index(record.label)}")
    (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / f"{name}.csv").write_text("id,name\n" + "".join(f"{i},{CLASSES[c]}\n" for i, c in enumerate(labels)))
    return tmp_path / f"{name}.txt", tmp_path / f"{name}.csv"


def run_json(capsys, *args):
    assert main([str(a) for a in args]) == 0
    return json.loads(capsys.readouterr().out)


def model_flags(kind, tmp_path, tiny_clip_file):
    """Frozen CLIP from the recipe with --backbone, or a tiny X-CLIP saved as a native checkpoint."""
    if kind == "frozen":
        return ["--backbone", tiny_clip_file]
    from clipvideo.engine.checkpoint import save_model
    from clipvideo.methods import xclip
    from clipvideo.methods.base import BackboneConfig

    torch.manual_seed(0)
    config = xclip.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4, mit_heads=2, prompt_heads=2)
    save_model(xclip.build(config, num_classes=2, class_names=["a", "b"]), tmp_path / "xclip.pt")
    return ["--checkpoint", tmp_path / "xclip.pt"]


@pytest.mark.parametrize("kind", ["frozen", "xclip"])
def test_zeroshot_full_and_half_classes(tmp_path, videos, tiny_clip_file, capsys, kind):
    config = recipe(tmp_path, videos)
    model = model_flags(kind, tmp_path, tiny_clip_file)
    report = run_json(capsys, "zeroshot", config, *model, "--dataset", "custom",
                      "--classes", videos.class_names_file, "--list", videos.val_list, "--json")
    full, half = report["full"], report["half_classes"]
    assert (full["num_videos"], full["num_classes"], full["failed_videos"]) == (18, 6, 0)
    assert report["views"] == "4 frames x 1 clip x 1 crop"
    assert len(half["draws"]) == 10 and {d["num_classes"] for d in half["draws"]} == {3}
    assert {d["num_videos"] for d in half["draws"]} == {9}  # 3 classes x 3 val videos
    top1 = np.array([d["top1"] for d in half["draws"]])
    assert half["top1_mean"] == pytest.approx(top1.mean()) and half["top1_std"] == pytest.approx(top1.std(ddof=0))

    # With one view, ranking the drawn columns equals re-scoring with only the drawn class names.
    for draw in (0, 3):
        drawn = sorted(half_class_draws(6, 10)[draw].tolist())
        sub_list, sub_classes = subset_list(videos, tmp_path, drawn, f"draw{draw}")
        again = run_json(capsys, "zeroshot", config, *model, "--dataset", "custom",
                         "--classes", sub_classes, "--list", sub_list, "--json")
        assert again["full"]["top1"] == pytest.approx(half["draws"][draw]["top1"])


def test_zeroshot_split_protocol_is_mean_and_population_std_over_splits(tmp_path, videos, tiny_clip_file, monkeypatch, capsys):
    # Three "official splits" of the synthetic data: all classes, then two 3-class subsets.
    halves = [subset_list(videos, tmp_path, labels, f"split{i}") for i, labels in enumerate(([0, 1, 2], [3, 4, 5]), 2)]
    splits = [protocols.Split("test split 1", Path(videos.val_list), Path(videos.class_names_file))]
    splits += [protocols.Split(f"test split {i}", lst, cls) for i, (lst, cls) in enumerate(halves, 2)]
    fake = protocols.ZeroShotDataset("ucf101", Path(videos.class_names_file), splits, "3 synthetic splits")
    monkeypatch.setattr(protocols, "zero_shot_dataset", lambda name: fake)
    # data.val_list is not the full list of a dataset with shipped splits (it often holds one split)
    without = run_json(capsys, "zeroshot", recipe(tmp_path, videos, val_list=videos.val_list), "--backbone", tiny_clip_file,
                       "--dataset", "ucf101", "--json")
    assert "full" not in without and "half_classes" not in without
    report = run_json(capsys, "zeroshot", recipe(tmp_path, videos), "--backbone", tiny_clip_file, "--dataset", "ucf101",
                      "--list", videos.val_list, "--json")
    assert report["splits"] == without["splits"]
    rows = report["splits"]["splits"]
    assert [(r["num_classes"], r["num_videos"]) for r in rows] == [(6, 18), (3, 9), (3, 9)]
    assert rows[0]["top1"] == pytest.approx(report["full"]["top1"])  # split 1 is the --list here
    top1 = np.array([r["top1"] for r in rows])
    assert report["splits"]["top1_mean"] == pytest.approx(top1.mean())
    assert report["splits"]["top1_std"] == pytest.approx(top1.std(ddof=0))
    table = format_report(report)
    assert "3 synthetic splits: top-1 " in table and "half classes (10 draws of 3 classes)" in table


def test_b2n_reports_base_novel_and_hm_per_checkpoint(tmp_path, videos, tiny_clip_file, capsys):
    from clipvideo.engine.checkpoint import save_model
    from clipvideo.engine.protocols import load_text_model

    config = recipe(tmp_path, videos)
    base_list, base_classes = subset_list(videos, tmp_path, [0, 2, 4], "base")
    novel_list, novel_classes = subset_list(videos, tmp_path, [1, 3, 5], "novel")
    model = load_text_model(build_config(yaml.safe_load(config.read_text())), backbone=str(tiny_clip_file))
    checkpoints = []
    for name in ("s1.pt", "s2.pt"):
        save_model(model, tmp_path / name)
        checkpoints.append(tmp_path / name)
    flags = ["--dataset", "custom", "--base-classes", base_classes, "--novel-classes", novel_classes,
             "--base-list", base_list, "--novel-list", novel_list]
    report = run_json(capsys, "b2n", config, "--checkpoint", *checkpoints, *flags, "--json")
    assert len(report["splits"]) == 2
    base_alone = run_json(capsys, "zeroshot", config, "--checkpoint", checkpoints[0], "--dataset", "custom",
                          "--classes", base_classes, "--list", base_list, "--json")["full"]["top1"]
    for row in report["splits"]:
        assert row["base"] == pytest.approx(base_alone)
        b, n = row["base"], row["novel"]
        assert row["hm"] == pytest.approx(0 if b + n == 0 else 2 * b * n / (b + n))
    assert report["hm"] == pytest.approx(2 * report["base"] * report["novel"] / (report["base"] + report["novel"]))
    assert "average (HM of the averages)" in format_report(report)


def test_fewshot_lists_command(tmp_path, videos, capsys):
    out = tmp_path / "lists"
    assert main(["fewshot-lists", videos.train_list, "--shots", "2", "4", "--seed", "0", "1", "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["train_2shot_seed0.txt", "train_2shot_seed1.txt", "train_4shot_seed0.txt", "train_4shot_seed1.txt"]
    for k in (2, 4):
        records = read_video_list(out / f"train_{k}shot_seed0.txt")
        assert sorted(r.label for r in records) == sorted(list(range(6)) * k)
    first = (out / "train_2shot_seed0.txt").read_text()
    write_few_shot_lists(videos.train_list, [2], [0], tmp_path / "again")
    assert (tmp_path / "again" / "train_2shot_seed0.txt").read_text() == first
    assert (out / "train_2shot_seed1.txt").read_text() != first


def test_fewshot_trains_and_tests_once_per_seed(tmp_path, videos):
    values = yaml.safe_load(recipe(tmp_path, videos, train_list=videos.train_list, val_list=videos.val_list).read_text())
    values["model"].update(temporal="mean", classifier="linear")
    values["data"].update(flip=False, scale=[0.8, 1.0])
    values["train"] = {"epochs": 1, "batch_size": 4, "lr": 1e-3, "eval_every": 0, "log_every": 1}
    report = run_fewshot(build_config(values), shots=2, seeds=[0, 1])
    rows = report["splits"]
    assert [r["seed"] for r in rows] == [0, 1]
    for row in rows:
        assert len(read_video_list(row["train_list"])) == 12  # 2 per class
        assert (Path(row["run_dir"]) / "model.pt").is_file()
    top1 = np.array([r["top1"] for r in rows])
    assert report["top1_mean"] == pytest.approx(top1.mean()) and report["top1_std"] == pytest.approx(top1.std())


def test_bce_loss_by_hand():
    class Fixed(torch.nn.Module):
        def forward(self, video):
            return video

    logits = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.5, -3.0]])
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    sig = torch.sigmoid(logits)
    expected = -(target * sig.log() + (1 - target) * (1 - sig).log()).mean()
    assert TrainStep(Fixed(), "bce")(logits, target)["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    one_hot = TrainStep(Fixed(), "bce")(logits, torch.tensor([0, 1]))["loss"]  # single-label lists work too
    assert one_hot.item() == pytest.approx(TrainStep(Fixed(), "bce")(logits, torch.eye(3)[[0, 1]])["loss"].item())
    with pytest.raises(ConfigError, match="train.loss: expected 'ce' or 'bce', got 'focal'"):
        TrainStep(Fixed(), "focal")


def test_multi_label_training_with_bce_reports_map(tmp_path, videos, capsys):
    lines = []
    for name, source in (("train", videos.train_list), ("val", videos.val_list)):
        rows = [f"{r.path} {r.label}" + (f" {(r.label + 1) % 6}" if i % 2 else "") for i, r in enumerate(read_video_list(source))]
        (tmp_path / f"{name}_ml.txt").write_text("\n".join(rows) + "\n")
        lines.append(tmp_path / f"{name}_ml.txt")
    values = yaml.safe_load(recipe(tmp_path, videos, train_list=str(lines[0]), val_list=str(lines[1]),
                                   multi_label=True).read_text())
    values["model"].update(classifier="linear")
    values["train"] = {"epochs": 1, "batch_size": 4, "lr": 1e-3, "log_every": 1, "loss": "bce"}
    values["test"]["aggregate"] = "sigmoid"
    result = fit(build_config(values))
    assert 0 < result["final"]["mAP"] <= 100 and np.isfinite(result["history"][0]["loss"])
    predictions = [json.loads(line) for line in (Path(result["run_dir"]) / "predictions.jsonl").read_text().splitlines()]
    assert predictions[1]["label"] == [0, 1] and predictions[0]["label"] == [0]
    path = tmp_path / "multi_label.yaml"
    path.write_text(yaml.safe_dump(values))
    assert main(["test", str(path), "--checkpoint", str(Path(result["run_dir"]) / "model.pt")]) == 0
    assert f"mAP {result['final']['mAP']:.2f}" in capsys.readouterr().out
    values["data"]["mixup"] = 0.8
    with pytest.raises(ConfigError, match="data.multi_label: Mixup/CutMix"):
        fit(build_config({**values, "output_dir": str(tmp_path / "mix")}))


@pytest.mark.parametrize("args, message", [
    (["zeroshot", "{recipe}", "--backbone", "{clip}", "--dataset", "kinetics700"], "--dataset: unknown dataset 'kinetics700'"),
    (["zeroshot", "{recipe}", "--backbone", "{clip}", "--dataset", "custom", "--list", "{val}"],
     "--dataset custom needs --classes FILE"),
    (["zeroshot", "{recipe}", "--backbone", "{clip}", "--dataset", "custom", "--classes", "{classes}", "--list", "{tmp}/none.txt"],
     "none.txt: no such video list"),
    (["zeroshot", "{recipe}", "--backbone", "{clip}", "--dataset", "custom", "--classes", "{tmp}/three.csv", "--list", "{val}"],
     "label 3 outside [0, 3)"),
    (["zeroshot", "{recipe}", "--backbone", "{clip}", "--dataset", "kinetics400"], "--dataset kinetics400: give the videos"),
    (["zeroshot", "{recipe}", "--backbone", "{clip}", "--dataset", "custom", "--classes", "{classes}", "--list", "{tmp}/bad.txt"],
     "bad.txt: none of the 1 videos could be read"),
    (["zeroshot", "{recipe}", "--backbone", "{clip}", "--dataset", "hmdb51"],
     "test_split1.txt: first video {tmp}/videos/Aussie_Brunette"),
    (["zeroshot", "{recipe}", "--checkpoint", "{tmp}/linear.pt", "--dataset", "custom", "--classes", "{classes}", "--list", "{val}"],
     "classifies with a trained head"),
    (["zeroshot", "{recipe}", "--backbone", "{clip}", "--dataset", "custom", "--classes", "{classes}", "--list", "{tmp}/abs.txt",
      "--draws", "0"], "argument --draws: expected a positive number, got 0"),
    (["zeroshot", "{recipe}", "--backbone", "{clip}", "--dataset", "custom", "--classes", "{classes}", "--list", "{tmp}/multi.txt",
      "--set", "data.multi_label=true"], "zeroshot: data.multi_label is set"),
    (["b2n", "{recipe}", "--backbone", "{clip}", "--dataset", "custom", "--base-classes", "{classes}", "--novel-classes",
      "{tmp}/six.csv", "--base-list", "{tmp}/multi.txt", "--novel-list", "{tmp}/multi.txt", "--set", "data.multi_label=true"],
     "b2n: data.multi_label is set"),
    (["zeroshot", "{recipe}", "--backbone", "{clip}", "--dataset", "hmdb51", "--classes", "{tmp}/three.csv"],
     "--classes {tmp}/three.csv: 3 classes, but the shipped hmdb51 splits index the 51 classes"),
    (["b2n", "{recipe}", "--backbone", "{clip}", "--dataset", "ucf5"], "no base-to-novel split for 'ucf5'"),
    (["b2n", "{recipe}", "--backbone", "{clip}", "--dataset", "custom", "--base-classes", "{classes}"],
     "--dataset custom needs --novel-classes, --base-list, --novel-list"),
    (["b2n", "{recipe}", "--backbone", "{clip}", "--dataset", "custom", "--base-classes", "{classes}", "--novel-classes",
      "{tmp}/three.csv", "--base-list", "{val}", "--novel-list", "{val}"], "share 3 class(es)"),
    (["fewshot-lists", "{val}", "--shots", "4", "--out", "{tmp}/l"], "class 0 has 3 videos in the list, fewer than --shots 4"),
    (["fewshot-lists", "{tmp}/none.txt", "--shots", "2", "--out", "{tmp}/l"], "none.txt: annotation file not found"),
])
def test_bad_input_is_one_line(tmp_path, videos, tiny_clip_file, capsys, args, message):
    (tmp_path / "three.csv").write_text("id,name\n0,moving left\n1,moving right\n2,moving up\n")
    from clipvideo.engine.checkpoint import save_model
    from clipvideo.methods import frozen
    from clipvideo.methods.base import BackboneConfig

    save_model(frozen.build(frozen.Config(backbone=BackboneConfig(arch="tiny"), classifier="linear"), 6), tmp_path / "linear.pt")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "bad.mp4").write_bytes(b"not a video")
    (tmp_path / "bad.txt").write_text("bad.mp4 0\n")
    # readable videos, with one and with two labels each (absolute paths: data.root is the folder of bad.mp4 here)
    (tmp_path / "abs.txt").write_text("".join(f"{Path(videos.root) / r.path} {r.label}\n" for r in read_video_list(videos.val_list)))
    (tmp_path / "multi.txt").write_text("".join(f"{Path(videos.root) / r.path} {r.label} {(r.label + 1) % 6}\n"
                                                for r in read_video_list(videos.val_list)))
    (tmp_path / "six.csv").write_text("id,name\n" + "".join(f"{i},other {name}\n" for i, name in enumerate(CLASSES)))
    values = {"recipe": recipe(tmp_path, videos, root=str(tmp_path / "videos")), "clip": tiny_clip_file,
              "val": videos.val_list, "classes": videos.class_names_file, "tmp": tmp_path}
    try:
        status = main([a.format(**values) for a in args])
    except SystemExit as stop:  # an option's own check (argparse) stops before the command runs
        status = stop.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    # the error is one line (the last); log lines about the videos may precede it
    assert err[-1].startswith(f"clipvideo {args[0]}: error: ") and message.format(tmp=tmp_path) in err[-1], err


# ---------------------------------------------------------------------------------------------
# Which text each protocol encodes (FROSTER's descriptions, --classes on shipped splits)


def spy_vocabularies(monkeypatch, model_class) -> list[list[str]]:
    """The text each `set_classes` call leaves the model encoding, in call order ("Name: description"
    entries for a model that classifies with descriptions, the names for the others)."""
    seen = []
    original = model_class.set_classes

    def recording(self, classes):
        original(self, classes)
        seen.append(self.vocabulary.texts() if self.uses_descriptions else list(self.vocabulary.names))

    monkeypatch.setattr(model_class, "set_classes", recording)
    return seen


def froster_checkpoint(tmp_path) -> Path:
    from clipvideo.engine.checkpoint import save_model
    from clipvideo.methods import froster
    from clipvideo.methods.base import BackboneConfig

    config = froster.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4, distillation=False)
    save_model(froster.build(config, num_classes=2, class_names=["a", "b"]), tmp_path / "froster.pt")
    return tmp_path / "froster.pt"


def class_file(path: Path, names: list[str]) -> Path:
    path.write_text("id,name\n" + "".join(f"{i},{name}\n" for i, name in enumerate(names)))
    return path


def test_zeroshot_scores_froster_with_the_shipped_descriptions(tmp_path, videos, capsys, monkeypatch):
    from clipvideo.methods.froster import FROSTER

    names = ["brush hair", "cartwheel", "catch", "chew", "clap", "climb"]  # HMDB-51 names for the 6 synthetic classes
    classes = class_file(tmp_path / "hmdb6.csv", names)
    fake = protocols.ZeroShotDataset("hmdb51", classes, [protocols.Split("test split 1", Path(videos.val_list), classes)],
                                     "1 synthetic split")
    monkeypatch.setattr(protocols, "zero_shot_dataset", lambda name: fake)
    checkpoint = froster_checkpoint(tmp_path)
    seen = spy_vocabularies(monkeypatch, FROSTER)
    report = run_json(capsys, "zeroshot", recipe(tmp_path, videos), "--checkpoint", checkpoint, "--dataset", "hmdb51",
                      "--list", videos.val_list, "--json")
    described = [f"{n}: {d}" for n, d in zip(names, protocols.descriptions(names, "hmdb51"))]
    assert seen[-2:] == [described, described]  # the full list, then the split
    assert report["full"]["num_classes"] == 6 and report["splits"]["splits"][0]["num_videos"] == 18


def test_b2n_scores_froster_with_the_base_and_novel_descriptions(tmp_path, videos, capsys, monkeypatch):
    from clipvideo.methods.froster import FROSTER

    base_names, novel_names = ["pour", "pullup", "punch"], ["brush hair", "cartwheel", "catch"]  # HMDB B2N halves
    base_list, _ = subset_list(videos, tmp_path, [0, 2, 4], "base")
    novel_list, _ = subset_list(videos, tmp_path, [1, 3, 5], "novel")
    fake = protocols.BaseToNovel("hmdb51", class_file(tmp_path / "b.csv", base_names), class_file(tmp_path / "n.csv", novel_names),
                                 [], base_list, novel_list)
    monkeypatch.setattr(protocols, "base_to_novel", lambda name: fake)
    checkpoint = froster_checkpoint(tmp_path)
    seen = spy_vocabularies(monkeypatch, FROSTER)
    run_json(capsys, "b2n", recipe(tmp_path, videos), "--checkpoint", checkpoint, "--dataset", "hmdb51", "--json")
    assert seen[-2:] == [[f"{n}: {d}" for n, d in zip(names, protocols.descriptions(names, source))]
                         for names, source in ((base_names, "b2n_hmdb51_base"), (novel_names, "b2n_hmdb51_novel"))]


def test_zeroshot_applies_classes_to_the_shipped_splits(tmp_path, videos, tiny_clip_file, capsys, monkeypatch):
    from clipvideo.methods.frozen import FrozenCLIP

    # Split 1 indexes the full vocabulary; split 2 is a subset with its own class file (as K600's subsets).
    subset_names = [CLASSES[4], CLASSES[1], CLASSES[5]]
    sub_list, sub_classes = subset_list(videos, tmp_path, [4, 1, 5], "subset")
    splits = [protocols.Split("test split 1", Path(videos.val_list), Path(videos.class_names_file)),
              protocols.Split("test split 2", sub_list, sub_classes)]
    fake = protocols.ZeroShotDataset("ucf101", Path(videos.class_names_file), splits, "2 synthetic splits")
    monkeypatch.setattr(protocols, "zero_shot_dataset", lambda name: fake)
    renamed = [f"renamed {name}" for name in CLASSES]
    seen = spy_vocabularies(monkeypatch, FrozenCLIP)
    run_json(capsys, "zeroshot", recipe(tmp_path, videos), "--backbone", tiny_clip_file, "--dataset", "ucf101",
             "--classes", class_file(tmp_path / "renamed.csv", renamed), "--json")
    assert seen[-2:] == [renamed, [f"renamed {name}" for name in subset_names]]
    assert read_video_list(sub_list)[0].label == subset_names.index(CLASSES[1])  # the subset's own ids are kept


def test_fewshot_repeats_the_draw_to_the_full_list_when_the_recipe_says_so(tmp_path, videos):
    values = yaml.safe_load(recipe(tmp_path, videos, train_list=videos.train_list, val_list=videos.val_list).read_text())
    values["model"].update(temporal="mean", classifier="linear")
    values["data"].update(flip=False, scale=[0.8, 1.0], few_shot_repeat=True)
    values["train"] = {"epochs": 1, "batch_size": 4, "lr": 1e-3, "eval_every": 0, "log_every": 1}
    full = len(read_video_list(videos.train_list))
    row = run_fewshot(build_config(values), shots=1, seeds=[0])["splits"][0]
    records = read_video_list(row["train_list"])
    assert len({r.path for r in records}) == 6 and len(records) == 6 * (full // 6) > 6  # Text4Vis: floor(N / (K x C)) copies


def test_the_python_api_refuses_zero_half_class_draws():
    """The CLI's --draws type stops 0 before the command; the API checks it too."""
    from clipvideo.engine.config import ConfigError, build_config
    from clipvideo.engine.protocols import run_zeroshot

    with pytest.raises(ConfigError, match="at least one draw"):
        run_zeroshot(build_config({"method": "frozen"}, "test"), "ucf101", draws=0)
