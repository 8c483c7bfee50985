"""benchmarks/aim_efficiency.py runs end to end at a tiny size (no timing is asserted here)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import aim_efficiency  # noqa: E402


def test_benchmark_smoke():
    args = aim_efficiency.parse_args(["--arch", "tiny", "--resolution", "32", "--frames", "2", "--batch", "1",
                                      "--steps", "1", "--threads", "1"])
    training = [aim_efficiency.measure_training(row, args) for row in aim_efficiency.TRAIN_ROWS]
    rows = {r["row"]: r for r in training}
    # What trains: AIM's adapters etc. < everything; EVL's decoder is separate from its frozen CLIP.
    assert 0 < rows["aim"]["trainable_params"] < rows["finetune"]["trainable_params"] == rows["finetune"]["total_params"]
    assert rows["aim"]["total_params"] == rows["finetune"]["total_params"]
    assert all(r["step_seconds"] > 0 and r["peak_rss_mib"] > 0 for r in training)
    inference = aim_efficiency.measure_inference(args)
    assert set(inference["clipvideo"]) == {"fp32", "bf16"} and all(v > 0 for v in inference["clipvideo"].values())
    table = aim_efficiency.report(args, training, inference)
    assert "| AIM: adapters in a frozen CLIP |" in table and "load average" in table and "clips/s" in table
