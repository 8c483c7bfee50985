"""docs/reliability.md names a test on every row; each named test exists."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_row_names_tests_that_exist():
    text = (REPO / "docs" / "reliability.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith(("| bad", "| fault", "| ---"))]
    assert len(rows) > 30
    for row in rows:
        named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", row)
        assert named, f"row without a test: {row[:80]}"
        for path, name in named:
            source = (REPO / path).read_text()
            assert re.search(rf"^def {name}\(", source, re.M), f"{path}::{name} does not exist"
