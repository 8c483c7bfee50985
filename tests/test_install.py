"""What `make demo` and `make test` install on a fresh clone (`make -n`: printed, not run), and
the package's own dependencies versus its extras."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _planned(target: str, tmp_path) -> list[str]:
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    done = subprocess.run(["make", "-n", "--no-print-directory", target, f"VENV={tmp_path / 'venv'}"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_make_demo_installs_only_the_package_and_shows_progress(tmp_path):
    lines = _planned("demo", tmp_path)
    installs = [line for line in lines if "pip install" in line]
    assert len(installs) == 1, lines
    assert re.search(r"pip install .*-e \.$", installs[0]) and "[" not in installs[0]  # no extras
    assert "--quiet" not in installs[0] and not re.search(r"\s-q\b", installs[0])  # pip shows what it installs
    assert any(line.startswith("echo") and "installing clipvideo" in line for line in lines)
    assert lines[-1].endswith("-m clipvideo demo")


def test_make_test_still_installs_everything(tmp_path):
    installs = [line for line in _planned("test", tmp_path) if "pip install" in line]
    assert len(installs) == 1 and "'.[test]'" in installs[0]


def test_the_package_depends_on_what_it_imports_and_extras_hold_the_rest():
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml without a package")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[<>=\[ ]", dep)[0].lower() for dep in project["dependencies"]}
    assert {"torch", "torchvision", "av", "open_clip_torch"} <= base
    assert not base & {"pytest", "transformers", "scikit-learn", "selenium", "fastapi", "onnx", "onnxruntime"}
    extras = project["optional-dependencies"]
    assert {"serve", "export", "test"} <= set(extras)
    assert "clipvideo[serve]" in extras["test"] and "clipvideo[export]" in extras["test"]
