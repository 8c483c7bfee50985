"""`load_pretrained(..., progress=False)` downloads without drawing a progress bar (local server)."""

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from zoo_server import FileServer

import clipvideo
from clipvideo import zoo


def test_load_pretrained_with_progress_false_draws_no_bar(tiny_clip_file, tmp_path, monkeypatch, capfd):
    blob = Path(tiny_clip_file).read_bytes()
    server = FileServer({"/tiny-clip.pt": blob}).start()
    try:
        spec = {"filename": "tiny-clip.pt", "url": server.url("/tiny-clip.pt"),
                "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
        registry = tmp_path / "zoo.json"
        registry.write_text(json.dumps({"format": 1, "sources": {"test": {"url": "local", "what": "test"}}, "models": [
            {"name": "tiny-clip", "method": "clip", "dataset": "test", "description": "test", "files": [spec]}]}))
        monkeypatch.setenv("CLIPVIDEO_ZOO", str(registry))
        monkeypatch.setenv("CLIPVIDEO_CACHE", str(tmp_path / "cache"))
        monkeypatch.delenv("CLIPVIDEO_OFFLINE", raising=False)
        capfd.readouterr()
        model = clipvideo.load_pretrained("tiny-clip", progress=False)
        out, err = capfd.readouterr()
        assert server.requests and zoo.is_cached(zoo.get("tiny-clip")) and model is not None
        assert "tiny-clip.pt" not in err and "%|" not in err and "\r" not in err, err
    finally:
        server.stop()
