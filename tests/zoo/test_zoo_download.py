"""The zoo's download path against a local HTTP server (127.0.0.1 only; nothing touches the internet).

A test registry (CLIPVIDEO_ZOO) names tiny files the tests make; CLIPVIDEO_CACHE points at a temp folder.
The importer test serves the EVL parity fixture (official-format decoder + OpenAI-format tiny CLIP)
and checks the downloaded model's logits against the official code's.
"""

import hashlib
import json
import socket
import sys
from pathlib import Path

import pytest
import torch

from clipvideo import zoo

sys.path.insert(0, str(Path(__file__).parent))
from zoo_server import FileServer

FIXTURES = Path(__file__).parents[1] / "fixtures"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_registry(path: Path, models: list[dict]) -> Path:
    path.write_text(json.dumps({"format": 1, "sources": {"test": {"url": "local", "what": "test"}}, "models": models}))
    return path


def entry(name, files, method="clip", **extra) -> dict:
    return {"name": name, "method": method, "dataset": "test", "description": "test entry", "files": files, **extra}


@pytest.fixture
def blob():
    return bytes(range(256)) * 4000  # 1 MB of known bytes, several download chunks


@pytest.fixture
def server(blob):
    files = {"/weights.bin": blob, "/other.bin": b"other file"}
    with_server = FileServer(files).start()
    yield with_server
    with_server.stop()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPVIDEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CLIPVIDEO_OFFLINE", raising=False)

    def use(models):
        monkeypatch.setenv("CLIPVIDEO_ZOO", str(write_registry(tmp_path / f"zoo{len(models)}_{id(models)}.json", models)))
        return tmp_path / "cache"

    return use


def weights_entry(server, blob, **file_extra):
    spec = {"filename": "weights.bin", "url": server.url("/weights.bin"), "sha256": sha(blob), "size": len(blob)}
    spec.update(file_extra)
    return entry("tiny", [spec])


def test_fresh_download_verifies_and_records(server, blob, env):
    cache = env([weights_entry(server, blob)])
    folder = zoo.fetch("tiny", progress=False)
    path = folder / "weights.bin"
    assert folder == cache / "tiny"
    assert path.read_bytes() == blob
    assert not path.with_name("weights.bin.part").exists()
    record = json.loads(path.with_name("weights.bin.verified.json").read_text())
    assert record["sha256"] == sha(blob) and record["size"] == len(blob)
    assert server.requests == [("/weights.bin", None)]
    assert zoo.is_cached(zoo.get("tiny"))


def test_cache_hit_makes_no_request(server, blob, env):
    env([weights_entry(server, blob)])
    zoo.fetch("tiny", progress=False)
    assert len(server.requests) == 1
    zoo.fetch("tiny", progress=False)
    zoo.fetch("tiny", progress=False)
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_a_range_request(server, blob, env):
    server.cut_once.add("/weights.bin")  # the first response stops after half the bytes
    env([weights_entry(server, blob)])
    path = zoo.fetch("tiny", progress=False) / "weights.bin"
    assert path.read_bytes() == blob
    assert server.requests[0] == ("/weights.bin", None)
    assert server.requests[1] == ("/weights.bin", f"bytes={len(blob) // 2}-")
    assert len(server.requests) == 2


def test_partial_file_from_an_earlier_run_is_resumed(server, blob, env):
    cache = env([weights_entry(server, blob)])
    part = cache / "tiny" / "weights.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(blob[:300_000])
    path = zoo.fetch("tiny", progress=False) / "weights.bin"
    assert path.read_bytes() == blob
    assert server.requests == [("/weights.bin", "bytes=300000-")]


def test_server_ignoring_range_restarts_from_zero(server, blob, env):
    server.ignore_range.add("/weights.bin")
    cache = env([weights_entry(server, blob)])
    part = cache / "tiny" / "weights.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)  # stale bytes that must not end up in the file
    path = zoo.fetch("tiny", progress=False) / "weights.bin"
    assert path.read_bytes() == blob


def test_size_unknown_is_taken_from_the_server_and_a_short_body_is_resumed(server, blob, env):
    server.cut_once.add("/weights.bin")
    env([weights_entry(server, blob, sha256=None, size=None)])
    path = zoo.fetch("tiny", progress=False) / "weights.bin"
    assert path.read_bytes() == blob
    # No published sha256: the first verified download records the one it saw.
    assert json.loads(path.with_name("weights.bin.verified.json").read_text())["sha256"] == sha(blob)


def test_wrong_sha256_is_refused_and_the_file_never_used(server, blob, env, monkeypatch):
    cache = env([entry("tiny", [{"filename": "weights.bin", "url": server.url("/weights.bin"), "sha256": "0" * 64}], method="evl")])
    imported = []
    monkeypatch.setattr("clipvideo.official.load_official", lambda *a, **k: imported.append(a))
    with pytest.raises(zoo.ChecksumError) as error:
        zoo.load_pretrained("tiny", progress=False)
    message = str(error.value)
    assert "weights.bin" in message and "0" * 64 in message and sha(blob) in message and "\n" not in message
    assert imported == []
    assert sorted(p.name for p in (cache / "tiny").iterdir()) == []  # neither the file nor a .part is kept
    assert not zoo.is_cached(zoo.get("tiny"))


def test_wrong_size_is_refused(server, blob, env):
    cache = env([weights_entry(server, blob, size=len(blob) + 1, sha256=None)])
    with pytest.raises(zoo.ChecksumError, match="expected"):
        zoo.fetch("tiny", progress=False)
    assert not (cache / "tiny" / "weights.bin").exists()


def test_offline_error_names_the_file_and_where_to_put_it(server, blob, env, monkeypatch):
    cache = env([weights_entry(server, blob)])
    monkeypatch.setenv("CLIPVIDEO_OFFLINE", "1")
    with pytest.raises(zoo.ZooError) as error:
        zoo.load_pretrained("tiny", progress=False)
    message = str(error.value)
    assert "CLIPVIDEO_OFFLINE" in message and "\n" not in message
    assert str(cache / "tiny" / "weights.bin") in message and server.url("/weights.bin") in message
    assert server.requests == []


def test_offline_uses_a_file_placed_by_hand_after_checking_it(server, blob, env, monkeypatch):
    cache = env([weights_entry(server, blob)])
    monkeypatch.setenv("CLIPVIDEO_OFFLINE", "1")
    (cache / "tiny").mkdir(parents=True)
    (cache / "tiny" / "weights.bin").write_bytes(blob)
    assert (zoo.fetch("tiny", progress=False) / "weights.bin").read_bytes() == blob
    (cache / "tiny" / "weights.bin.verified.json").unlink()
    (cache / "tiny" / "weights.bin").write_bytes(blob[:-1] + b"!")  # the wrong file, right name
    with pytest.raises(zoo.ChecksumError, match="placed in the cache"):
        zoo.fetch("tiny", progress=False)
    assert server.requests == []


def test_no_network_gives_a_one_line_error_with_the_place(blob, env):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cache = env([entry("tiny", [{"filename": "weights.bin", "url": f"http://127.0.0.1:{port}/weights.bin"}])])
    with pytest.raises(zoo.ZooError) as error:
        zoo.fetch("tiny", progress=False)
    message = str(error.value)
    assert message.startswith("cannot download") and str(cache / "tiny" / "weights.bin") in message and "\n" not in message


def test_http_error_and_web_page_answers_are_reported(server, env):
    server.files["/page.bin"] = b"<html>quota exceeded</html>"
    server.content_type["/page.bin"] = "text/html; charset=utf-8"
    env([entry("missing", [{"filename": "w.bin", "url": server.url("/nothing.bin")}]),
         entry("page", [{"filename": "w.bin", "url": server.url("/page.bin")}])])
    with pytest.raises(zoo.ZooError, match="HTTP 404"):
        zoo.fetch("missing", progress=False)
    with pytest.raises(zoo.ZooError, match="web page instead of the file"):
        zoo.fetch("page", progress=False)


def test_manual_download_entry_says_where_to_get_and_put_it(env):
    cache = env([entry("manual", [{"filename": "checkpoint.pt", "url": None}], method="evl",
                       page="https://example.org/folder", manual="a shared folder")])
    with pytest.raises(zoo.ZooError) as error:
        zoo.load_pretrained("manual", progress=False)
    assert "https://example.org/folder" in str(error.value) and str(cache / "manual" / "checkpoint.pt") in str(error.value)


def test_unknown_name_suggests_close_ones(server, blob, env, capsys):
    env([weights_entry(server, blob)])
    with pytest.raises(zoo.ZooError, match="did you mean tiny"):
        zoo.get("tinny")
    from clipvideo.cli import main

    assert main(["predict", "v.mp4", "--model", "tinny"]) == 2
    assert "'tinny' is not a model in the clipvideo zoo; did you mean tiny?" in capsys.readouterr().err
    assert main(["predict", "v.mp4", "--model", "tiny", "--checkpoint", "m.pt"]) == 2
    assert "not both" in capsys.readouterr().err
    assert server.requests == []


# ---------------------------------------------------------------------------------------------
# A registry entry whose importer runs on the downloaded files


@pytest.fixture
def evl_release(tmp_path):
    """The EVL parity fixture as released files: official decoder checkpoint, OpenAI-format CLIP, class names."""
    fixture = torch.load(FIXTURES / "evl" / "evl_tiny.pt", weights_only=True)
    meta = json.loads((FIXTURES / "evl" / "meta.json").read_text())
    clip_file, decoder_file = tmp_path / "clip.pt", tmp_path / "decoder.pth"
    torch.save({k.removeprefix("clip."): v for k, v in fixture.items() if k.startswith("clip.")}, clip_file)
    torch.save({"model": {k.removeprefix("official."): v for k, v in fixture.items() if k.startswith("official.")}}, decoder_file)
    names = [f"class {i}" for i in range(meta["num_classes"])]
    return fixture, {"/clip.pt": clip_file.read_bytes(), "/decoder.pth": decoder_file.read_bytes(),
                     "/classes.txt": ("\n".join(names) + "\n").encode()}, names


def test_zoo_entry_downloads_and_imports_with_its_backbone(evl_release, env, capsys):
    fixture, files, names = evl_release
    server = FileServer(files).start()
    try:
        def spec(path, name):
            return {"filename": name, "url": server.url(path), "sha256": sha(files[path]), "size": len(files[path])}

        env([
            entry("tiny-clip", [spec("/clip.pt", "clip.pt")], aliases=["ViT-Tiny/16"]),
            entry("evl-tiny", [spec("/decoder.pth", "decoder.pth")], method="evl", backbone="tiny-clip",
                  overrides={"heads": 2, "decoder_heads": 4}, classes=spec("/classes.txt", "classes.txt"),
                  data={"num_frames": 4, "input_size": 64, "short_side": 64, "frame_stride": 2}),
        ])
        model = zoo.load_pretrained("evl-tiny", progress=False)
        with torch.no_grad():
            logits = model(fixture["video"].permute(0, 2, 1, 3, 4))  # official (B, 3, T, H, W) -> (B, T, 3, H, W)
        torch.testing.assert_close(logits, fixture["logits_fp32"], atol=1e-5, rtol=0)  # the official code's logits
        assert model.class_names == names and model.zoo_name == "evl-tiny"
        requested = sorted(path for path, _ in server.requests)
        assert requested == ["/classes.txt", "/clip.pt", "/decoder.pth"]

        # A name resolves for --backbone; a path is kept as it is.
        assert zoo.backbone_path("ViT-Tiny/16") == str(zoo.cache_dir() / "tiny-clip" / "clip.pt")
        assert zoo.backbone_path("/some/where/ViT-B-16.pt") == "/some/where/ViT-B-16.pt"

        # `predict --model` reads a native checkpoint made once from the release (no new request).
        native = zoo.native_checkpoint("evl-tiny", progress=False)
        payload = torch.load(native, weights_only=True)
        assert payload["config"]["data"]["num_frames"] == 4 and payload["config"]["data"]["frame_stride"] == 2
        assert payload["class_names"] == names
        import clipvideo

        reloaded = clipvideo.load(native)
        with torch.no_grad():
            torch.testing.assert_close(reloaded(fixture["video"].permute(0, 2, 1, 3, 4)), fixture["logits_fp32"], atol=1e-5, rtol=0)
        assert len(server.requests) == 3

        # The CLI: `predict --model NAME` on a video, `models` showing the entry as cached.
        import numpy as np

        from clipvideo.cli import main
        from clipvideo.data.synthetic import write_video

        video = zoo.cache_dir().parent / "clip.mp4"
        frames = np.random.default_rng(0).integers(0, 255, (24, 64, 80, 3), dtype=np.uint8)
        write_video(video, list(frames))
        capsys.readouterr()
        assert main(["predict", str(video), "--model", "evl-tiny", "--precision", "fp32", "--top-k", "2"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert "4 frames x" in lines[0] and len(lines) == 3
        assert all(line.split(".", 1)[1].strip().rsplit(" ", 1)[0].strip() in names for line in lines[1:])
        assert main(["models", "--method", "evl"]) == 0
        listing = capsys.readouterr().out.splitlines()
        assert listing[1].split()[0] == "evl-tiny" and listing[1].split()[-1] == "yes"
        # `export NAME` uses the same converted checkpoint.
        assert main(["export", "evl-tiny", "--format", "torchscript", str(video.with_suffix(".ts")), "--check"]) == 0
        checks = [float(line.rsplit("=", 1)[1]) for line in capsys.readouterr().out.splitlines() if line.startswith("check:")]
        assert len(checks) == 2 and max(checks) < 1e-4
        assert len(server.requests) == 3
    finally:
        server.stop()
