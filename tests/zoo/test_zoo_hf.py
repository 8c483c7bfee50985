"""A Hugging Face X-CLIP entry (several files: config.json + pytorch_model.bin, plus class names) is
downloaded from a local server into one folder and imported; its logits equal transformers' own."""

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from clipvideo import zoo
from clipvideo.clip import tokenize

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "xclip"))
from test_xclip_hf import (  # the tiny transformers model of the X-CLIP tests
    randomise,
    tiny_hf_config,
)
from zoo_server import FileServer

transformers = pytest.importorskip("transformers")
NAMES = ["moving left", "a dog playing fetch", "playing sports"]


def tiny_hf_model() -> "transformers.XCLIPModel":
    torch.manual_seed(0)
    return randomise(transformers.XCLIPModel(tiny_hf_config()))  # every tensor random, LayerNorms around 1


def test_hf_entry_downloads_a_folder_and_matches_transformers(tmp_path, monkeypatch):
    reference = tiny_hf_model()
    reference.config.save_pretrained(tmp_path)
    torch.save(reference.state_dict(), tmp_path / "pytorch_model.bin")
    files = {"/config.json": (tmp_path / "config.json").read_bytes(),
             "/pytorch_model.bin": (tmp_path / "pytorch_model.bin").read_bytes(),
             "/labels.csv": ("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(NAMES))).encode()}
    server = FileServer(files).start()
    try:
        def spec(path):  # sha256 unknown, as for the real hub copies: recorded on first download
            return {"filename": path[1:], "url": server.url(path)}

        registry = {"format": 1, "sources": {}, "models": [{
            "name": "hf-xclip-tiny", "method": "hf-xclip", "dataset": "test", "description": "tiny",
            "files": [spec("/config.json"), spec("/pytorch_model.bin")], "classes": spec("/labels.csv")}]}
        (tmp_path / "zoo.json").write_text(json.dumps(registry))
        monkeypatch.setenv("CLIPVIDEO_ZOO", str(tmp_path / "zoo.json"))
        monkeypatch.setenv("CLIPVIDEO_CACHE", str(tmp_path / "cache"))
        model = zoo.load_pretrained("hf-xclip-tiny", progress=False)
        assert model.class_names == NAMES
        pixel_values = torch.randn(2, 4, 3, 64, 64)
        with torch.no_grad():
            expected = reference(input_ids=tokenize(NAMES), pixel_values=pixel_values).logits_per_video
            torch.testing.assert_close(model(pixel_values), expected, atol=1e-5, rtol=0)
        folder = tmp_path / "cache" / "hf-xclip-tiny"
        recorded = json.loads((folder / "pytorch_model.bin.verified.json").read_text())["sha256"]
        assert recorded == hashlib.sha256(files["/pytorch_model.bin"]).hexdigest()
        assert sorted(p for p, _ in server.requests) == ["/config.json", "/labels.csv", "/pytorch_model.bin"]
    finally:
        server.stop()
