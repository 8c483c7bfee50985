"""benchmarks/froster_speed.py runs end to end at a tiny size (no timing is asserted here)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import froster_speed  # noqa: E402


def test_benchmark_smoke():
    options = ["--arch", "tiny", "--frames", "2", "--classes", "5", "--train-classes", "3c", "--repeats", "1",
               "--precision", "fp32"]
    args = froster_speed.parse_args(options)
    infer = froster_speed.inference(args)
    train = froster_speed.training(args, options)
    assert set(infer) == {"cached classifier", "re-encoded every call (official)"}
    assert [row["row"] for row in train] == ["3c"] and all(row["wall"] > 0 and row["peak_mb"] > 0 for row in train)
    table = froster_speed.report(args, infer, train)
    assert "faster per call" in table and "load average" in table and "| 3 | yes |" in table
