"""Imports flow one way: `clip/` and `data/` import nothing above them, `methods/` only those two.

Every module of the installed package is parsed (not imported), so imports inside functions,
relative imports and `importlib.import_module("clipvideo....")` with a literal name all count.
"""

import ast
import sys
from pathlib import Path

import pytest

import clipvideo

PACKAGE = Path(clipvideo.__file__).resolve().parent

# Layer -> the layers it may import (besides itself). The engine, official importers, serve,
# export, zoo and cli sit above these three and may import any of them.
# `clipvideo.errors` (exit statuses and safe wording of load errors) is a foundation module: it
# imports nothing from clipvideo, so every layer may use it.
FOUNDATION = {"errors"}
ALLOWED = {
    "clip": set(FOUNDATION),
    "data": set(FOUNDATION),
    "methods": {"clip", "data"} | FOUNDATION,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every clipvideo import in the file, wherever it sits."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            # `from .. import engine` imports the submodule engine, not just the package.
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                is_module = any((PACKAGE.parent / candidate.replace(".", "/")).with_suffix(suffix).exists()
                                for suffix in (".py", ""))
                found.append((node.lineno, candidate if is_module else source))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return sorted({(line, module) for line, module in found if module.split(".")[0] == "clipvideo"})


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the top-level package itself


def violations(layer: str) -> list[str]:
    allowed = ALLOWED[layer] | {layer}
    found = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for line, module in imported_modules(path):
            if layer_of(module) not in allowed:
                found.append(f"{module_name(path)} (line {line}) imports {module}")
    return found


def test_foundation_modules_import_nothing_from_clipvideo():
    for name in sorted(FOUNDATION):
        found = imported_modules(PACKAGE / f"{name}.py")
        assert not found, f"clipvideo.{name} is a foundation module and must import nothing from clipvideo: {found}"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_import_nothing_above_them(layer):
    assert (PACKAGE / layer).is_dir()
    allowed = ", ".join(f"clipvideo.{name}" for name in sorted(ALLOWED[layer] | {layer}))
    found = violations(layer)
    assert not found, f"clipvideo.{layer} may import only {allowed}; found:\n  " + "\n  ".join(found)


def test_the_parser_sees_every_kind_of_import(tmp_path, monkeypatch):
    """A fake package with one upward import of each kind: all four are reported."""
    fake = tmp_path / "clipvideo"
    (fake / "methods").mkdir(parents=True)
    (fake / "engine").mkdir()
    for folder in (fake, fake / "methods", fake / "engine"):
        (folder / "__init__.py").write_text("")
    (fake / "engine" / "precision.py").write_text("")
    (fake / "methods" / "bad.py").write_text(
        "import importlib\n"
        "from ..clip import tokenize\n"          # allowed
        "from ..engine.precision import x\n"     # relative, top level
        "def f():\n"
        "    import clipvideo.serve\n"           # absolute, inside a function
        "    from .. import engine\n"            # a submodule by name
        "    importlib.import_module('clipvideo.cli')\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert violations("methods") == [
        "clipvideo.methods.bad (line 3) imports clipvideo.engine.precision",
        "clipvideo.methods.bad (line 5) imports clipvideo.serve",
        "clipvideo.methods.bad (line 6) imports clipvideo.engine",
        "clipvideo.methods.bad (line 7) imports clipvideo.cli",
    ]
