"""benchmarks/text4vis_speed.py runs end to end at a tiny size (no timing is asserted here)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import text4vis_speed  # noqa: E402


def test_benchmark_smoke():
    args = text4vis_speed.parse_args(["--vision-width", "64", "--vision-layers", "1", "--patch", "16",
                                      "--resolution", "32", "--text-width", "64", "--text-layers", "1",
                                      "--embed", "64", "--fusion-layers", "1", "--frames", "2", "--batch", "1",
                                      "--classes", "3", "--repeats", "1"])
    inference, training = text4vis_speed.benchmark(args)
    assert set(inference) == set(training) == {"frame mean", "Text4Vis Transf"}
    assert all(wall > 0 and cpu > 0 for wall, cpu in [*inference.values(), *training.values()])
    table = text4vis_speed.report(args, inference, training)
    assert "| Text4Vis Transf |" in table and "load average" in table and "torch threads" in table
