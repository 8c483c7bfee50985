"""Class-folder datasets: FOLDER/<class>/<videos> with no list files (`clipvideo lists`, data.root=FOLDER)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from clipvideo.data import read_class_names, read_video_list
from clipvideo.data.folders import FolderDatasetError, scan_folder, split, write_lists
from clipvideo.data.synthetic import make_motion_dataset

REPO = Path(__file__).resolve().parents[2]
ODD = "jonglieren mit Bällen"  # a class name with spaces and non-ASCII letters


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three classes of synthetic videos, one renamed oddly, some nested, plus every awkward file."""
    source = make_motion_dataset(tmp_path_factory.mktemp("motion"), num_videos_per_class=5, num_val_per_class=0,
                                 num_frames=8, classes=("moving left", "moving right", "still red square"))
    root = tmp_path_factory.mktemp("folder") / "my videos"
    shutil.copytree(Path(source.root) / "videos", root)
    (root / "moving_left").rename(root / ODD)
    nested = root / ODD / "day 2" / "camera ä"
    nested.mkdir(parents=True)
    for video in sorted((root / ODD).glob("*.mp4"))[:2]:
        video.rename(nested / f"clip {video.name}")
    (root / "moving_right" / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(2048))  # unreadable
    (root / "moving_right" / "notes.txt").write_text("not a video")  # ignored: not a video extension
    (root / "moving_right" / ".hidden.mp4").write_bytes(b"")  # ignored: hidden
    first = sorted((root / "moving_right").glob("*_0000.mp4"))[0]
    shutil.copy(first, root / "moving_right" / "copy of first.mp4")  # byte-identical duplicate
    # A class with a single video.
    (root / "still_red_square").rename(root / "single")
    for extra in sorted((root / "single").glob("*.mp4"))[1:]:
        extra.unlink()
    return root


def test_scan_finds_classes_nested_videos_and_reports_bad_files(folder):
    scan = scan_folder(folder)
    assert scan.classes == sorted([ODD, "moving_right", "single"])
    label = {name: i for i, name in enumerate(scan.classes)}
    paths = {path: lab for path, lab in scan.videos}
    nested = [p for p in paths if p.startswith(f"{ODD}/day 2/camera ä/")]
    assert len(nested) == 2 and all(paths[p] == label[ODD] for p in nested)
    assert sum(1 for lab in paths.values() if lab == label[ODD]) == 5
    assert sum(1 for lab in paths.values() if lab == label["moving_right"]) == 5  # the copy is left out
    assert [p for p, _ in scan.unreadable] == ["moving_right/broken.mp4"] and scan.unreadable[0][1]
    # Files are taken in sorted order: the later of two identical files is the one left out.
    assert scan.duplicates == [("moving_right/moving_right_0000.mp4", "moving_right/copy of first.mp4")]
    assert scan.single_video_classes == ["single"]
    assert not any("notes.txt" in p or ".hidden" in p for p in paths)


def test_split_is_stratified_seeded_and_stable(folder):
    scan = scan_folder(folder)
    train, val = split(scan, 0.4, seed=0)
    assert sorted(train + val) == sorted(scan.videos)  # nothing lost, nothing twice
    per_class = {lab: sum(1 for _, l in val if l == lab) for lab in range(3)}
    single = scan.classes.index("single")
    assert per_class[single] == 0 and all(per_class[lab] == 2 for lab in per_class if lab != single)
    assert split(scan, 0.4, seed=0) == (train, val)
    assert any(split(scan, 0.4, seed=s)[1] != val for s in range(1, 6))


def test_written_lists_read_back_with_spaces_in_paths(folder, tmp_path):
    lists = write_lists(folder, tmp_path / "lists", val_fraction=0.2, seed=1)
    settings = yaml.safe_load(Path(lists.settings).read_text())["data"]
    assert settings["separator"] == "\t" and Path(settings["root"]) == folder.resolve()
    records = read_video_list(lists.train_list, separator="\t") + read_video_list(lists.val_list, separator="\t")
    assert len(records) == len(scan_folder(folder).videos)
    assert all((folder / r.path).is_file() for r in records)
    assert read_class_names(lists.class_names) == sorted([ODD, "moving_right", "single"])
    failures = (tmp_path / "lists" / "failures.txt").read_text()
    assert "moving_right/broken.mp4" in failures and "duplicate of" in failures


@pytest.mark.parametrize("layout, message", [
    ({"a": 2}, "at least 2 class folders"),
    ({"a": 2, "b": 0}, "no readable video: 'b'"),
])
def test_folders_that_cannot_be_datasets_are_one_line_errors(folder, tmp_path, layout, message):
    source = next(folder.glob("moving_right/*_0001.mp4"))
    for name, count in layout.items():
        (tmp_path / name).mkdir()
        for i in range(count):
            shutil.copy(source, tmp_path / name / f"{i}.mp4")
            with open(tmp_path / name / f"{i}.mp4", "ab") as f:
                f.write(bytes([i]))  # distinct bytes, so not duplicates
    with pytest.raises(FolderDatasetError, match=message) as error:
        scan_folder(tmp_path)
    assert "\n" not in str(error.value)


def run(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "clipvideo", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)


def test_lists_command_writes_lists_and_names_what_it_left_out(folder, tmp_path):
    done = run("lists", folder, "--val", "0.2", "--seed", "0", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert "left out moving_right/broken.mp4" in done.stdout and "failures.txt" in done.stdout
    assert "class 'single' has a single video" in done.stdout
    assert (tmp_path / "out" / "train.txt").is_file() and (tmp_path / "out" / "val.txt").is_file()
    bad = run("lists", tmp_path / "nowhere", "--out", tmp_path / "out2")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "no such folder" in bad.stderr


def test_training_on_a_folder_needs_no_lists(folder, tmp_path):
    """data.root=FOLDER with no lists: the run writes its split once and trains/tests on it."""
    recipe = yaml.safe_load((REPO / "configs" / "frozen" / "tiny_synthetic.yaml").read_text())
    recipe["data"].update(root=str(folder), train_list="", val_list="", class_names="", num_frames=4,
                          num_workers=0, val_fraction=0.4)
    recipe["model"]["num_frames"] = 4
    recipe["train"].update(epochs=1, batch_size=4, warmup_epochs=0)
    recipe["output_dir"] = str(tmp_path / "run")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True))
    done = run("train", tmp_path / "recipe.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    lists = tmp_path / "run" / "folder_lists"
    assert "left out moving_right/broken.mp4" in done.stderr  # reported once, through the log
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"]
    assert saved["train_list"] == str(lists / "train.txt") and saved["separator"] == "\t"
    tested = run("test", "--checkpoint", tmp_path / "run" / "model.pt")
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert f"{len(read_video_list(lists / 'val.txt', separator=chr(9)))} videos" in tested.stderr + tested.stdout
