"""Constants shared by the AIM tests (a uniquely named module: other test folders have conftests)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aim"
HEADS = {"k400": 2, "ssv2": 4}  # what the fixtures were built with (shapes cannot tell)
