"""ONNX export of tiny EVL and X-CLIP models: onnxruntime gives the PyTorch logits (fp32, 1e-4) at two
batch sizes, the X-CLIP class embeddings are constants (no text tower in the file), and the file runs
in a Python that has neither clipvideo nor torch."""

import json
import site
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from export_helpers import CLASSES, reference_logits, tiny_checkpoints

from clipvideo.cli import main
from clipvideo.export import example_video, export_checkpoint, exported_runner

OTHER_CLASSES = ["juggling", "surfing", "cooking", "knitting"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    checkpoints = tiny_checkpoints(folder)
    files = {"evl": folder / "evl.onnx", "xclip": folder / "xclip.onnx"}
    export_checkpoint(checkpoints["evl"], files["evl"], "onnx")
    return checkpoints, files, folder


def test_evl_onnx_matches_pytorch_at_two_batch_sizes(exported):
    checkpoints, files, _ = exported
    run = exported_runner(files["evl"], "onnx")
    for batch in (1, 3):
        video = example_video(batch, 4, 64, seed=batch)
        expected = reference_logits(checkpoints["evl"], video)
        got = run(video)
        assert got.shape == (batch, len(CLASSES))
        assert (got - expected).abs().max() < 1e-4
    assert expected.std(dim=0).min() > 1e-3  # logits differ between the 3 clips: not a constant model


def test_xclip_onnx_from_the_cli_with_new_classes(exported, capsys):
    checkpoints, files, _ = exported
    code = main(["export", str(checkpoints["xclip"]), "--format", "onnx", str(files["xclip"]), "--check",
                 "--classes", ",".join(OTHER_CLASSES)])
    assert code == 0
    out = capsys.readouterr().out
    checks = [float(line.rsplit("=", 1)[1]) for line in out.splitlines() if line.startswith("check: batch")]
    assert len(checks) == 2 and max(checks) < 1e-4, out
    run = exported_runner(files["xclip"], "onnx")
    for batch in (1, 3):
        video = example_video(batch, 4, 64, seed=10 + batch)
        expected = reference_logits(checkpoints["xclip"], video, OTHER_CLASSES)
        got = run(video)
        assert got.shape == (batch, len(OTHER_CLASSES)) and (got - expected).abs().max() < 1e-4
    # The class embeddings are baked in: the text tower (token embedding 49408 x 64) is not in the graph.
    graph = onnx.load(str(files["xclip"]))
    shapes = {tuple(init.dims) for init in graph.graph.initializer}
    assert (49408, 64) not in shapes
    metadata = json.loads({p.key: p.value for p in graph.metadata_props}["clipvideo"])
    assert metadata["class_names"] == OTHER_CLASSES and metadata["input_shape"] == ["batch", 4, 3, 64, 64]


def test_onnx_runs_without_clipvideo_or_torch(exported, tmp_path):
    checkpoints, files, _ = exported
    video = example_video(2, 4, 64, seed=7)
    np.save(tmp_path / "video.npy", video.numpy())
    np.save(tmp_path / "expected.npy", reference_logits(checkpoints["evl"], video).numpy())
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import importlib.util, sys
        sys.path.extend(sys.argv[4:])  # site-packages as plain folders: no .pth files, so no editable clipvideo
        assert importlib.util.find_spec("clipvideo") is None, "clipvideo is importable"
        import numpy as np, onnxruntime
        session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
        logits = session.run(None, {"video": np.load(sys.argv[2])})[0]
        assert "torch" not in sys.modules
        print(float(np.abs(logits - np.load(sys.argv[3])).max()))
    """))
    # -I: ignore PYTHONPATH (this worktree), the user site and the current folder; -S: no site.py.
    result = subprocess.run([sys.executable, "-I", "-S", str(script), str(files["evl"]), str(tmp_path / "video.npy"),
                             str(tmp_path / "expected.npy"), *site.getsitepackages()],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) < 1e-4
