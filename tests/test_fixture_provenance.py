"""Each parity fixture folder keeps the script that made it from the official code.

The scripts need the official checkouts, so they are read here as text and never imported or run.
"""

import ast
import json
import re
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
OFFICIAL_REPOSITORIES = {
    "evl": "OpenGVLab/efficient-video-recognition",
    "aim": "taoyang1122/adapt-image-models",
    "xclip": "microsoft/VideoX",
    "text4vis": "whwu95/Text4Vis",
    "froster": "Visual-AI/FROSTER",
    "aim_imagenet": "taoyang1122/adapt-image-models",
}


def recorded_commit(method: str) -> str:
    """The official commit that meta.json (or, where there is none, the README) records for the fixture."""
    meta_file = FIXTURES / method / "meta.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        text = json.dumps(meta.get("source", meta.get("official_commit")))
    else:
        text = (FIXTURES / method / "README.md").read_text()
    commits = set(re.findall(r"\b[0-9a-f]{40}\b", text))
    assert len(commits) == 1, f"{method}: meta.json or README.md should name one official commit, found {commits}"
    return commits.pop()


@pytest.mark.parametrize("method", sorted(OFFICIAL_REPOSITORIES))
def test_generator_script_names_the_official_repository_and_the_fixture_commit(method):
    script = FIXTURES / method / "make_fixture.py"
    docstring = ast.get_docstring(ast.parse(script.read_text()))
    assert OFFICIAL_REPOSITORIES[method] in docstring
    assert recorded_commit(method) in docstring
    assert "make_fixture.py" in (FIXTURES / method / "README.md").read_text()


@pytest.mark.parametrize("method", sorted(OFFICIAL_REPOSITORIES))
def test_generator_script_does_nothing_when_imported(method):
    """Only imports, definitions and a __main__ guard at module level: importing it runs nothing."""
    tree = ast.parse((FIXTURES / method / "make_fixture.py").read_text())
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
    for node in tree.body[1:]:  # after the docstring
        is_main_guard = isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
        calls = [call for call in ast.walk(node) if isinstance(call, ast.Call)]
        runs_something = not isinstance(node, (ast.FunctionDef, ast.ClassDef)) and any(
            ast.unparse(call.func) != "dict" for call in calls)  # constant tables only
        assert (isinstance(node, allowed) and not runs_something) or is_main_guard, (
            f"{method}/make_fixture.py line {node.lineno}: module-level code would run on import")
