"""The load line every benchmark prints beside its table (no timing is asserted)."""

import os

from clipvideo.engine import machine


def test_load_report_warns_when_the_load_exceeds_the_threads(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (4.9, 3.0, 2.0))
    line = machine.load_report(threads=2, before=(0.5, 0.4, 0.3))
    first, warning = line.splitlines()
    assert first.startswith("machine: load average 4.90 / 3.00 / 2.00 (1 / 5 / 15 min), 0.50 (1 min) at the start")
    assert "2 torch threads" in first
    assert warning.startswith("WARNING: the load average (4.90) exceeds the 2 threads")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.2, 0.1))
    quiet = machine.load_report(threads=2)
    assert "WARNING" not in quiet and len(quiet.splitlines()) == 1


def test_every_benchmark_prints_the_load():
    from pathlib import Path

    scripts = sorted(p for p in (Path(__file__).resolve().parents[2] / "benchmarks").glob("*.py") if not p.name.startswith("_"))
    assert scripts
    for script in scripts:
        text = script.read_text()
        assert "load_report(" in text and "load_average()" in text, script.name
