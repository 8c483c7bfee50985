"""benchmarks/xclip_speed.py runs end to end at a tiny size (no timing is asserted here)."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import xclip_speed  # noqa: E402


def test_benchmark_smoke():
    args = xclip_speed.parse_args(["--vision-width", "64", "--vision-layers", "1", "--patch", "16", "--resolution", "32",
                                   "--text-width", "64", "--text-layers", "1", "--embed", "64", "--frames", "2",
                                   "--batch", "1", "--classes", "3", "--repeats", "1"])
    inference, training, difference = xclip_speed.benchmark(args)
    assert difference < 1e-4  # both models compute the same function
    assert len(inference) == 3 and len(training) == 2 and all(wall > 0 and cpu > 0 for wall, cpu in [*inference.values(), *training.values()])
    table = xclip_speed.report(args, inference, training, difference)
    assert "| transformers XCLIPModel |" in table and "clips/s" in table
