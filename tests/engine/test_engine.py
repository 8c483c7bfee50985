"""The engine end to end: training, checkpoints, resume, distributed runs, evaluation, predict."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import clipvideo
from clipvideo.engine.config import build_config
from clipvideo.engine.evaluate import combine_views
from clipvideo.engine.metrics import confusion_matrix, harmonic_mean, mean_class_accuracy, topk_accuracy
from clipvideo.engine.train import EpochSampler, cosine_with_warmup, fit

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, check=True, timeout=600):
    """Run `python -m clipvideo ...` in a subprocess, as a user would."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "clipvideo", *map(str, args)], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"clipvideo {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def recipe_for(output_dir, data, **train):
    """Tiny temporal model (CLIP tower trained too) on the synthetic motion videos, 4 frames, 64 px."""
    return {
        "method": "frozen",
        "model": {"backbone": {"arch": "tiny"}, "num_frames": 4, "temporal": "transformer", "classifier": "linear",
                  "train_backbone": True},
        "data": {"root": data.root, "train_list": data.train_list, "val_list": data.val_list,
                 "class_names": data.class_names_file, "num_frames": 4, "sampling": "segment", "input_size": 64,
                 "short_side": 64, "scale": [0.5, 1.0], "flip": True, "num_workers": 0},
        "train": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 0.5, "seed": 3, "eval_every": 0,
                  "log_every": 1, **train},
        "test": {"batch_size": 5, "num_workers": 0, "precision": "fp32"},
        "output_dir": str(output_dir),
    }


def write_recipe(path, recipe):
    import yaml

    path.write_text(yaml.safe_dump(recipe))
    return path


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_same_weights(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=1e-5, msg=key)


def test_metrics_and_view_combination():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = torch.tensor([1, 1, 2, 0])
    assert topk_accuracy(scores, labels, 1) == 75.0
    assert topk_accuracy(scores, labels, 2) == 100.0
    assert mean_class_accuracy(scores, labels, 3) == pytest.approx(100 * (1 + 0.5 + 1) / 3)
    assert confusion_matrix(scores, labels, 3).tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert harmonic_mean(80, 60) == pytest.approx(2 * 80 * 60 / 140)
    logits = torch.tensor([[[10.0, 0.0], [0.0, 1.0]]])  # one video, two views
    assert torch.allclose(combine_views(logits, "prob"), torch.softmax(logits, -1).mean(1))
    assert torch.allclose(combine_views(logits, "logit"), torch.tensor([[5.0, 0.5]]))


def test_schedule_and_sampler():
    assert cosine_with_warmup(0, 100, 10, 0.0) == pytest.approx(0.1)
    assert cosine_with_warmup(9, 100, 10, 0.0) == pytest.approx(1.0)
    assert cosine_with_warmup(10, 100, 10, 0.0) == pytest.approx(1.0)
    assert cosine_with_warmup(55, 100, 10, 0.0) == pytest.approx(0.5)
    assert cosine_with_warmup(100, 100, 10, 0.1) == pytest.approx(0.1)
    one = EpochSampler(22, batch_size=4, seed=1, rank=0, world_size=1)
    one.per_rank = 16  # compare with two ranks of batch 2 ... the global batch is the same
    two = [EpochSampler(22, batch_size=2, seed=1, rank=r, world_size=2) for r in range(2)]
    for s in [one, *two]:
        s.set_epoch(1)
    single, ranks = list(one), [list(s) for s in two]
    for step in range(4):
        assert set(single[4 * step:4 * step + 4]) == set(ranks[0][2 * step:2 * step + 2] + ranks[1][2 * step:2 * step + 2])
    two[0].set_epoch(1, start=2)
    assert list(two[0]) == ranks[0][2:]


def test_train_writes_a_complete_run_and_load_rebuilds_the_model(tmp_path, motion_data):
    recipe = recipe_for(tmp_path / "run", motion_data)
    result = fit(build_config(recipe))
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "checkpoint_last.pt", "model.pt", "predictions.jsonl",
                 "curves.png", "confusion_matrix.png"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if r["kind"] == "epoch"] == [1, 2]
    assert result["final"]["num_videos"] == 18 and result["final"]["failed_videos"] == 0
    predictions = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 18 and len(predictions[0]["top"]) == 5
    assert predictions[0]["label_name"] == motion_data.class_names[predictions[0]["label"]]

    model = clipvideo.load(run / "model.pt")
    trained = result["model"].eval()
    video = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(video), trained(video))
    assert model.class_names == motion_data.class_names
    payload = torch.load(run / "checkpoint_last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "step", "config", "rng", "class_names"} <= payload.keys()


def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, motion_data):
    # Batch 1: 36 steps per epoch, room to kill the run mid-epoch.
    # Every run of this test goes through the CLI with one thread, so float sums add up alike.
    recipe = recipe_for(tmp_path / "full", motion_data, epochs=2, batch_size=1, checkpoint_every_steps=1)
    run_cli("train", write_recipe(tmp_path / "full.yaml", recipe))
    full = weights(tmp_path / "full" / "checkpoint_last.pt")

    # The same run, killed (SIGKILL) once it has checkpointed inside the first epoch, then resumed.
    recipe["output_dir"] = str(tmp_path / "killed")
    config_file = write_recipe(tmp_path / "killed.yaml", recipe)
    last = tmp_path / "killed" / "checkpoint_last.pt"
    kill_mid_epoch([sys.executable, "-m", "clipvideo", "train", str(config_file)], last, steps_per_epoch=36)
    run_cli("train", config_file, "--resume", "auto")
    assert_same_weights(weights(last), full)


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "clipvideo"]


def torchrun(*args, timeout=600, check=True, env=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    result = subprocess.run([*TORCHRUN, *map(str, args)], capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def process_tree(pid):
    """pid and all its descendants (torchrun starts its workers in sessions of their own)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def running(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_mid_epoch(command, last, steps_per_epoch, min_step=2):
    """Start `command`; SIGKILL it and every process under it (torchrun workers, DataLoader
    workers) once `last` holds a checkpoint from inside the first epoch."""
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        if last.is_file():
            try:
                state = torch.load(last, weights_only=True)
            except Exception:
                state = None
            if state and state["step"] >= min_step and state["epoch"] == 0:
                break
        time.sleep(0.05)
    tree = process_tree(process.pid)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()
    while any(running(pid) for pid in tree[1:]):  # nothing may write the run directory after this
        time.sleep(0.05)
    interrupted = torch.load(last, weights_only=True)
    assert interrupted["epoch"] == 0 and 0 < interrupted["step_in_epoch"] < steps_per_epoch, "the kill did not land mid-epoch"
    return interrupted


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path, motion_data):
    # SGD: attention key biases get a mathematically zero gradient, and Adam would blow their
    # rounding noise up to full-size steps that differ between any two summation orders.
    sgd = dict(batch_size=4, epochs=1, optimizer="sgd", lr=0.05)
    single = recipe_for(tmp_path / "single", motion_data, **sgd)
    run_cli("train", write_recipe(tmp_path / "single.yaml", single))
    double = recipe_for(tmp_path / "ddp", motion_data, **{**sgd, "batch_size": 2})
    torchrun("train", write_recipe(tmp_path / "ddp.yaml", double))
    trained = weights(tmp_path / "ddp" / "checkpoint_last.pt")
    assert_same_weights(trained, weights(tmp_path / "single" / "checkpoint_last.pt"), atol=1e-5)
    # ... and the runs did train: the weights moved away from the (seeded, shared) initial ones.
    from clipvideo.engine.train import build_model

    torch.manual_seed(3)
    untrained = build_model(build_config(single), 9, motion_data.class_names).state_dict()
    moved = [k for k in trained if (trained[k].float() - untrained[k].float()).abs().max() > 1e-4]
    assert "head.weight" in moved and len(moved) > 0.75 * len(trained), f"only {len(moved)} of {len(trained)} moved"


def test_distributed_evaluation_counts_every_video_once(tmp_path, motion_data):
    fit(build_config(recipe_for(tmp_path / "train", motion_data, epochs=1)))
    lines = open(motion_data.val_list).read().splitlines()[:7]  # 7 videos: not divisible by 2 processes
    val = tmp_path / "val7.txt"
    val.write_text("\n".join(lines) + "\n")
    test_recipe = recipe_for(tmp_path / "test1", motion_data)
    test_recipe["data"]["val_list"] = str(val)
    test_recipe["test"].update(num_clips=2, num_crops=3)
    one = run_cli("test", write_recipe(tmp_path / "t1.yaml", test_recipe), "--checkpoint", tmp_path / "train" / "model.pt")
    test_recipe["output_dir"] = str(tmp_path / "test2")
    torchrun("test", write_recipe(tmp_path / "t2.yaml", test_recipe), "--checkpoint", tmp_path / "train" / "model.pt")
    single = json.loads((tmp_path / "test1" / "test_metrics.json").read_text())
    double = json.loads((tmp_path / "test2" / "test_metrics.json").read_text())
    assert single["num_videos"] == double["num_videos"] == 7
    assert single["top1"] == double["top1"] and single["top5"] == double["top5"]
    rows1 = (tmp_path / "test1" / "predictions.jsonl").read_text().splitlines()
    rows2 = (tmp_path / "test2" / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(r)["index"] for r in rows2] == list(range(7))
    assert [json.loads(r)["top"][0]["class"] for r in rows1] == [json.loads(r)["top"][0]["class"] for r in rows2]
    assert "4 frames x 2 clips x 3 crops" in one.stdout


def test_predict_cli_and_python_api(tmp_path, motion_data, tiny_clip_file):
    video = os.path.join(motion_data.root, open(motion_data.val_list).readline().split()[0])
    classes = "moving left,moving right,rotating clockwise"
    out = run_cli("predict", video, "--backbone", tiny_clip_file, "--classes", classes, "--json", "--precision", "fp32")
    [result] = json.loads(out.stdout)
    assert result["views"] == "8 frames x 1 clip x 1 crop" and result["num_frames_in_video"] == 16
    assert sorted(t["label"] for t in result["top"]) == sorted(classes.split(","))
    assert sum(t["score"] for t in result["top"]) == pytest.approx(1.0, abs=1e-4)
    table = run_cli("predict", video, "--backbone", tiny_clip_file, "--classes", classes, "--top-k", "2")
    assert "1. " in table.stdout and "2. " in table.stdout and "3. " not in table.stdout

    top = clipvideo.predict(video, classes=classes.split(","), backbone=str(tiny_clip_file), precision="fp32")
    assert [t["label"] for t in top] == [t["label"] for t in result["top"]]

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    failed = run_cli("predict", str(broken), video, "--backbone", tiny_clip_file, "--classes", classes, check=False)
    assert failed.returncode == 1
    assert "broken.mp4: ERROR" in failed.stdout and video in failed.stdout  # the good video still predicted


def test_cli_errors_are_one_line(tmp_path, tiny_clip_file):
    bad = run_cli("train", "configs/frozen/tiny_synthetic.yaml", "--set", "train.lrr=1", check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("clipvideo train: error: configs/frozen/tiny_synthetic.yaml (with --set overrides): "
                                  "train: unknown key 'lrr'; did you mean 'lr'?")
    missing = run_cli("predict", "x.mp4", "--backbone", tmp_path / "nope.pt", "--classes", "a,b", check=False)
    assert missing.returncode == 2 and "nope.pt: no such file" in missing.stderr and "Traceback" not in missing.stderr
    no_classes = run_cli("predict", "x.mp4", "--backbone", tiny_clip_file, check=False)
    assert no_classes.returncode == 2 and "needs --classes" in no_classes.stderr
    no_classes_file = run_cli("train", "configs/frozen/tiny_synthetic.yaml", "--set", "data.class_names=/none.csv",
                              check=False)
    assert no_classes_file.returncode == 2 and "/none.csv: class-name file not found" in no_classes_file.stderr
    no_list = run_cli("train", "configs/frozen/tiny_synthetic.yaml", "--set", "data.train_list=/nowhere.txt",
                      "data.class_names=", check=False)
    assert no_list.returncode == 2 and "/nowhere.txt does not exist" in no_list.stderr
    for result in (bad, missing, no_classes, no_classes_file, no_list):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_gradient_accumulation_matches_the_larger_batch(tmp_path, motion_data):
    sgd = dict(epochs=1, optimizer="sgd", lr=0.05)
    fit(build_config(recipe_for(tmp_path / "big", motion_data, batch_size=4, **sgd)))
    fit(build_config(recipe_for(tmp_path / "accumulated", motion_data, batch_size=2, accumulation_steps=2, **sgd)))
    big, accumulated = weights(tmp_path / "big" / "model.pt"), weights(tmp_path / "accumulated" / "model.pt")
    assert_same_weights(accumulated, big, atol=1e-5)
    start = build_config(recipe_for(tmp_path / "x", motion_data))
    from clipvideo.engine.train import build_model

    torch.manual_seed(3)
    untrained = build_model(start, 9, motion_data.class_names).state_dict()
    assert not torch.allclose(untrained["head.weight"], big["head.weight"])  # training did move the weights


class _Videos(torch.utils.data.Dataset):
    """(views, label, index, decoded) rows as the test dataset yields them; no decoding."""

    def __init__(self, labels, decoded):
        self.labels, self.decoded = labels, decoded

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return torch.zeros(2, 1, 3, 4, 4), self.labels[i], i, self.decoded[i]


def test_failed_videos_are_wrong_in_every_metric():
    """23 videos of class 0, 8 unreadable; the model never ranks class 0 in its top 5. A failed
    video's score row must not be read as a prediction: all three metrics are 0, not 8/23."""
    from clipvideo.engine.evaluate import evaluate

    class Confident(torch.nn.Module):
        def forward(self, video):  # (N, T, 3, H, W) -> (N, 10): class 9 best, class 0 worst
            return torch.arange(10.0).expand(len(video), 10)

    dataset = _Videos([0] * 23, [i % 3 != 0 for i in range(23)])
    assert sum(not d for d in dataset.decoded) == 8
    loader = torch.utils.data.DataLoader(dataset, batch_size=5)
    result = evaluate(Confident(), loader, torch.device("cpu"), num_classes=10, progress=False)
    assert result.metrics["failed_videos"] == 8 and result.metrics["num_videos"] == 23
    assert result.metrics["top1"] == 0.0
    assert result.metrics["top5"] == 0.0
    assert result.metrics["mean_class_accuracy"] == 0.0
    # The same failed rows, whatever their scores, under the metrics directly: a failed row that
    # ranks the true class first is still wrong; a decoded one is right.
    scores = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    labels = torch.tensor([0, 0])
    failed = torch.tensor([True, False])
    assert topk_accuracy(scores, labels, 1, failed) == 50.0
    assert mean_class_accuracy(scores, labels, 2, failed) == 50.0
    assert confusion_matrix(scores, labels, 2, failed).tolist() == [[1, 0], [0, 0]]


def _tiny_recipe(name, tmp_path, data):
    """configs/<name>/tiny_synthetic.yaml pointed at the test videos, one optimiser step, no evaluation."""
    import yaml

    recipe = yaml.safe_load((REPO / "configs" / name / "tiny_synthetic.yaml").read_text())
    if recipe["model"]["backbone"].get("pretrained"):
        # X-CLIP's and Text4Vis's recipes start from a tiny CLIP trained by their tests; a random one will do here
        recipe["model"]["backbone"] = {"arch": "tiny", "image_resolution": recipe["data"]["input_size"],
                                       "heads": 2, "text_heads": 2}
    recipe["data"].update(root=data.root, train_list=data.train_list, val_list="", class_names=data.class_names_file,
                          num_workers=0)
    recipe["train"].update(epochs=1, max_steps=1, batch_size=4)
    recipe["output_dir"] = str(tmp_path / name)
    return recipe


TINY_RECIPES = sorted(p.parent.name for p in (REPO / "configs").glob("*/tiny_synthetic.yaml"))


@pytest.mark.parametrize("name", TINY_RECIPES)
def test_model_files_carry_their_data_settings_and_predict_needs_no_flags(name, tmp_path, motion_data):
    """Every shipped tiny recipe trains small-input models (32-64 px); model.pt and checkpoint_last.pt
    record that (and the rest of config.data and the test views), so `clipvideo predict` feeds them alike."""
    assert {"frozen", "evl", "xclip"} <= set(TINY_RECIPES)
    recipe = _tiny_recipe(name, tmp_path, motion_data)
    data = recipe["data"]
    assert data["input_size"] < 224  # so a model fed the 224 px defaults would fail or differ
    fit(build_config(recipe))
    run = tmp_path / name
    for file in ("model.pt", "checkpoint_last.pt"):
        stored = torch.load(run / file, weights_only=True)["config"]
        assert stored["data"]["input_size"] == data["input_size"], file
        assert stored["data"]["short_side"] == data["short_side"], file
        assert stored["data"]["normalization"] == data.get("normalization", "clip")
        assert stored["test"]["num_clips"] == recipe["test"]["num_clips"]
    model = clipvideo.load(run / "model.pt")
    assert (model.data_config.input_size, model.data_config.num_frames, model.data_config.sampling) == (
        data["input_size"], data["num_frames"], data["sampling"])
    assert model.test_config.num_crops == 1

    video = os.path.join(motion_data.root, open(motion_data.val_list).readline().split()[0])
    done = run_cli("predict", video, "--checkpoint", run / "model.pt", "--json")
    (result,) = json.loads(done.stdout)
    assert result["error"] is None and result["views"].startswith(f"{data['num_frames']} frames x ")
    assert len(result["top"]) == 5 and {t["label"] for t in result["top"]} <= set(motion_data.class_names)
    if name == "evl":
        # A user flag still overrides the file; a model that then refuses the input says so in one
        # line for that video (exit 1), the broken video gets its own line, and there is no traceback.
        broken = tmp_path / "broken.mp4"
        broken.write_bytes(b"\x00" * 100)
        wrong = run_cli("predict", video, broken, "--checkpoint", run / "model.pt", "--set", "data.input_size=96",
                        "data.short_side=96", check=False)
        assert wrong.returncode == 1 and "Traceback" not in wrong.stdout + wrong.stderr
        lines = wrong.stdout.strip().splitlines()
        assert len(lines) == 2 and "built for 64x64 input" in lines[0] and "got 96x96" in lines[0] and lines[0].startswith(f"{video}: ERROR")
        assert lines[1].startswith(f"{broken}: ERROR")
        # `clipvideo test` with no recipe uses the file's settings too.
        tested = run_cli("test", "--checkpoint", run / "model.pt", "--list", motion_data.val_list,
                         "--set", "test.batch_size=6", "test.num_workers=0")
        assert "8 frames x 1 clip x 1 crop" in tested.stdout and "on 18 videos" in tested.stdout


def test_two_process_resume_after_kill_with_dropout_and_workers_matches_an_uninterrupted_run(tmp_path, motion_data):
    """Each process draws its own dropout masks (seed + rank) from its own saved and restored stream,
    with a DataLoader worker per process: SIGKILL both mid-epoch, resume, same weights."""
    recipe = recipe_for(tmp_path / "full", motion_data, epochs=2, batch_size=2, checkpoint_every_steps=1)
    recipe["model"]["dropout"] = 0.5
    recipe["data"]["num_workers"] = 1
    torchrun("train", write_recipe(tmp_path / "full.yaml", recipe))
    full = torch.load(tmp_path / "full" / "checkpoint_last.pt", weights_only=True)
    states = full["rng_per_rank"]
    assert len(states) == 2 and not torch.equal(states[0]["torch"], states[1]["torch"])  # per-process streams

    recipe["output_dir"] = str(tmp_path / "killed")
    config_file = write_recipe(tmp_path / "killed.yaml", recipe)
    last = tmp_path / "killed" / "checkpoint_last.pt"
    interrupted = kill_mid_epoch([*TORCHRUN, "train", str(config_file)], last, steps_per_epoch=9)
    resumed = torchrun("train", config_file, "--resume", "auto")
    assert f"at epoch 1, step {interrupted['step']}" in resumed.stderr  # it did resume mid-epoch
    assert_same_weights(weights(last), full["model"])


def test_a_nan_loss_on_one_process_stops_every_process_with_one_message(tmp_path, motion_data):
    recipe = recipe_for(tmp_path / "nan", motion_data, epochs=1, batch_size=2)
    # Rank 1's loss is NaN at step 2. The timeout is far below gloo's 30-minute collective timeout:
    # rank 0 must not wait in a gradient all-reduce for rank 1.
    done = torchrun("train", write_recipe(tmp_path / "nan.yaml", recipe), check=False, timeout=300,
                    env={"CLIPVIDEO_FAULT_NAN_LOSS": "1:2"})
    output = done.stdout + done.stderr
    assert done.returncode != 0
    message = "clipvideo train: error: the loss is not finite on process(es) 1 of 2 at step 2; every process stopped"
    assert output.count(message) == 1, output
    assert "clipvideo/engine/" not in output, output  # no traceback from our code on any process
    # One process: the same one line, exit status 3.
    one = subprocess.run([sys.executable, "-m", "clipvideo", "train", str(tmp_path / "nan.yaml"), "--set",
                          f"output_dir={tmp_path / 'one'}"], capture_output=True, text=True, cwd=REPO, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "CLIPVIDEO_FAULT_NAN_LOSS": "0:1"})
    assert one.returncode == 3 and "Traceback" not in one.stderr
    assert [line for line in one.stderr.splitlines() if "error" in line] == [
        "clipvideo train: error: the loss is not finite (nan) at step 1; every process stopped. Lower train.lr, "
        "set train.grad_clip, or check the data (resume from the last checkpoint after the fix)"]
