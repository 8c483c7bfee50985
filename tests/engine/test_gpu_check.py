"""benchmarks/gpu_check.py: the GPU checks run end to end (tiny models on the CPU), so they are ready when a GPU is."""

import json
import os
import subprocess
import sys
from pathlib import Path

from clipvideo.engine.compare import METHODS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def run(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=900)


def test_smoke_run_covers_every_method_the_store_and_ddp(tmp_path):
    done = run("--smoke", "--out", tmp_path / "check")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads((tmp_path / "check.json").read_text())["rows"]
    for method in METHODS:
        kinds = {row["row"].split(" (")[0] for row in rows if row.get("method") == method}
        assert {"model forward", "train step"} <= kinds, (method, kinds)
        assert all(0 < row["share_of_bf16_peak"] for row in rows if row.get("method") == method
                   and "share_of_bf16_peak" in row)
    assert any(row["row"].startswith("store + device augmentation") and row["clips_per_s"] > 0 for row in rows)
    assert any(row["row"].startswith("DDP train step (gloo") for row in rows)
    assert "| evl | model forward" in (tmp_path / "check.md").read_text()


def test_without_a_gpu_it_says_so_in_one_line(tmp_path):
    done = run("--out", tmp_path / "check")
    assert done.returncode == 1 and "no CUDA GPU here" in done.stderr and "Traceback" not in done.stderr
