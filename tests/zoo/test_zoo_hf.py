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
from zoo_server import FileServer  # noqa: E402

transformers = pytest.importorskip("transformers")
NAMES = ["moving left", "a dog playing fetch", "playing sports"]


def tiny_hf_model() -> "transformers.XCLIPModel":
    config = transformers.XCLIPConfig(
        text_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2),
        vision_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                           image_size=64, patch_size=16, num_frames=4, mit_hidden_size=48,
                           mit_intermediate_size=192, mit_num_attention_heads=2),
        projection_dim=48, prompt_num_attention_heads=3)
    torch.manual_seed(0)
    model = transformers.XCLIPModel(config)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # every tensor random, LayerNorms around 1
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if "norm" in name and name.endswith("weight"):
                param.copy_(1 + 0.2 * noise)
            elif name == "logit_scale":
                param.fill_(3.0)
            else:
                param.copy_(noise / param.shape[-1] ** 0.5 if param.ndim >= 2 else 0.1 * noise)
    return model.eval()


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
