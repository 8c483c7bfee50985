"""benchmarks/vs_official.py end to end at tiny sizes: its rows, its skip lines and, where the
official repositories' mirrors are on this machine, the official EVL, AIM, X-CLIP, Text4Vis and
FROSTER code beside ours with the same weights. No timing value is asserted."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "vs_official.py"
MIRRORS = Path(os.environ.get("CLIPVIDEO_OFFICIAL_MIRRORS", "/work/.mirror"))  # bare repositories, owner+name/repo
TINY = ["--arch", "tiny", "--resolution", "64", "--frames", "4", "--batches", "1", "2", "--rounds", "1",
        "--seconds", "0", "--threads", "1"]
# Text methods with 8 classes (the published 400 only add text work): FROSTER's official forward
# encodes 29 prompts per class every call.
TEXT = ["--classes", "8"]
LABELS = {"evl": "EVL", "aim": "AIM", "xclip": "X-CLIP", "text4vis": "Text4Vis", "froster": "FROSTER"}
ROWS = {f"{label} {row}" for label in LABELS.values() for row in (
    "inference b1 fp32", "inference b1 bf16", "inference b2 fp32", "inference b2 bf16", "training step b2 bf16")}


def run(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=600)


def fixture_commit(fixture: str) -> str:
    """The official commit a parity fixture was made from: its meta.json's, or the full hash its
    README gives (FROSTER's fixture has no meta.json)."""
    folder = REPO / "tests" / "fixtures" / fixture
    if not (folder / "meta.json").is_file():
        return re.search(r"checkout ([0-9a-f]{40})", (folder / "README.md").read_text()).group(1)
    meta = json.loads((folder / "meta.json").read_text())
    if isinstance(meta.get("source"), dict):
        return meta["source"]["commit"]
    if "official_commit" in meta:
        return meta["official_commit"]
    return re.search(r"commit ([0-9a-f]{40})", meta["source"]).group(1)


def official_checkout(name: str, fixture: str, paths: list[str], destination: Path) -> Path:
    """The files the benchmark imports, at the commit the parity fixture records, from the bare
    mirror; skips where the mirror (or that commit) is not on this machine."""
    mirror = MIRRORS / name / "repo"
    if not mirror.is_dir():
        pytest.skip(f"no mirror of {name} at {mirror}")
    commit = fixture_commit(fixture)
    destination.mkdir()
    archive = subprocess.run(["git", f"--git-dir={mirror}", "archive", "--format=tar", commit, *paths],
                             capture_output=True)
    if archive.returncode:
        pytest.skip(f"{name} mirror: {archive.stderr.decode().strip()[:200]}")
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)
    return destination


def test_without_official_checkouts_it_times_clipvideo_and_says_why(tmp_path):
    done = run(*TINY, *TEXT, "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for method, label in LABELS.items():
        assert f"official {label}: not run (no --{method}-repo); clipvideo rows only" in done.stdout
    assert "machine: load average" in done.stdout
    result = json.loads((tmp_path / "out.json").read_text())
    assert {r["row"] for r in result["rows"]} == ROWS
    for r in result["rows"]:
        assert r["official_ms"] is None and r["ratio"] is None and r["clipvideo_ms"] > 0
        assert f"| {r['row']} | - |" in done.stdout
    assert result["logit_checks"] == {} and len(result["skipped"]) == len(LABELS)
    # The text methods say how each side gets its class embeddings, and how long the first call took.
    froster = next(r for r in result["rows"] if r["row"] == "FROSTER inference b1 bf16")
    assert any("re-encodes 8 classes x 29 prompt sets (232 prompts) every call" in note for note in froster["notes"])
    assert any(note.startswith("first call: clipvideo ") for note in froster["notes"])


def test_a_folder_that_is_not_a_checkout_is_refused_in_one_line(tmp_path):
    done = run("--evl-repo", tmp_path, *TINY)
    assert done.returncode == 2 and f"--evl-repo {tmp_path}: no model.py there" in done.stderr
    assert "Traceback" not in done.stderr


def load_script():
    spec = importlib.util.spec_from_file_location("_vs_official", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("option, marker", [("--xclip-repo", "models/xclip.py"), ("--text4vis-repo", "modules/video_clip.py"),
                                            ("--froster-repo", "slowfast/models/temporalclip_video_model.py")])
def test_the_text_methods_checkouts_are_checked_too(tmp_path, capsys, option, marker):
    with pytest.raises(SystemExit) as exit_info:
        load_script().parse_args([option, str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"{option} {tmp_path}: no {marker} there; pass a checkout" in capsys.readouterr().err


def check_official_rows(result: dict, methods: list[str], batches=(1, 2)) -> None:
    for method in methods:
        check = result["logit_checks"][method]
        # Same weights, both fp32: measured 1.7e-6 (EVL), 0 (AIM), 2.9e-6 (X-CLIP), 3.8e-6 (Text4Vis,
        # FROSTER) at these sizes on x86 CPUs.
        assert check["max_abs_logit_difference"] < 1e-4 * max(1.0, check["max_abs_logit"])
        assert check["max_abs_logit"] > 0.1  # random decoder/adapters: the comparison is not between zeros
        label = LABELS[method]
        rows = [r for r in result["rows"] if r["row"].startswith(label + " ")]
        expected = {row for row in ROWS if row.startswith(label + " ")
                    and not any(f"inference b{batch} " in row for batch in {1, 2} - set(batches))}
        assert {r["row"] for r in rows} == expected
        for r in rows:
            assert r["official_ms"] > 0 and r["clipvideo_ms"] > 0
            assert r["ratio"] == pytest.approx(r["clipvideo_ms"] / r["official_ms"])


def test_official_evl_beside_clipvideo_with_the_same_weights(tmp_path):
    evl = official_checkout("OpenGVLab+efficient-video-recognition", "evl",
                            ["model.py", "vision_transformer.py", "weight_loaders.py"], tmp_path / "evl")
    done = run("--evl-repo", evl, "--methods", "evl", *TINY, "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    check_official_rows(result, ["evl"])
    training = next(r for r in result["rows"] if "training" in r["row"])
    assert set(training["memory_mib"]) == {"clipvideo", "official"}  # a value is None where the peak cannot be reset
    assert "EVL fp32 logits max |official - clipvideo|" in done.stdout and result["skipped"] == []


def official_aim(tmp_path: Path) -> Path:
    return official_checkout("taoyang1122+adapt-image-models", "aim", ["mmaction"], tmp_path / "aim")


def test_official_aim_beside_clipvideo_with_the_same_weights(tmp_path):
    done = run("--aim-repo", official_aim(tmp_path), "--methods", "aim", *TINY, "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_official_rows(json.loads((tmp_path / "out.json").read_text()), ["aim"])


def test_official_aim_without_einops_says_what_to_install(tmp_path):
    # einops hidden from this run (it is in the test extra): a None entry in sys.modules makes
    # importlib.util.find_spec return None, as for a missing package
    runner = ("import runpy, sys; sys.modules['einops'] = None; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", runner, str(SCRIPT), "--aim-repo", str(official_aim(tmp_path)),
                           "--methods", "aim", *TINY], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 1 and "imports einops, which is not installed here; pip install einops" in done.stderr
    assert "Traceback" not in done.stderr


def test_official_xclip_beside_clipvideo_with_the_same_weights(tmp_path):
    xclip = official_checkout("microsoft+VideoX", "xclip", ["X-CLIP"], tmp_path / "videox")
    # The VideoX checkout itself is taken too (its X-CLIP folder is used).
    done = run("--xclip-repo", xclip, "--methods", "xclip", *TINY, *TEXT, "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    check_official_rows(result, ["xclip"])
    assert set(result["logit_checks"]["xclip"]["first_call_s"]) == {"official", "clipvideo"}


def test_official_text4vis_beside_clipvideo_with_the_same_weights(tmp_path):
    text4vis = official_checkout("whwu95+Text4Vis", "text4vis", ["clip", "modules", "train.py"], tmp_path / "text4vis")
    done = run("--text4vis-repo", text4vis, "--methods", "text4vis", *TINY, *TEXT, "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_official_rows(json.loads((tmp_path / "out.json").read_text()), ["text4vis"])


def test_official_froster_beside_clipvideo_with_the_same_weights(tmp_path):
    froster = official_checkout("Visual-AI+FROSTER", "froster", ["slowfast", "configs"], tmp_path / "froster")
    # Batch 1 only: each official call encodes every prompt again. The fp32 logit check is the
    # official b1 fp32 call (timed once).
    done = run("--froster-repo", froster, "--methods", "froster", *TINY, *TEXT, "--batches", "1",
               "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    check_official_rows(result, ["froster"], batches=(1,))
    fp32 = next(r for r in result["rows"] if r["row"] == "FROSTER inference b1 fp32")
    assert fp32["official_ms"] == pytest.approx(1000 * result["logit_checks"]["froster"]["first_call_s"]["official"])
    training = next(r for r in result["rows"] if "training" in r["row"])
    assert set(training["memory_mib"]) == {"clipvideo", "official"}  # the student with the teacher's loss, both sides
