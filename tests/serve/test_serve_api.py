"""`clipvideo serve`: the JSON API on a real uvicorn server, its limits, its queue and the CLI."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serve_helpers import CLASSES, running_server

import clipvideo
from clipvideo.serve import ServeSettings, build_app
from clipvideo.serve import app as serve_app


def zero_shot_app(tiny_clip_file, **settings):
    return build_app(backbone=str(tiny_clip_file), classes=",".join(CLASSES), precision="fp32",
                     settings=ServeSettings(**settings))


def post_video(url, path, classes=None, name="clip.mp4", **kwargs):
    with open(path, "rb") as f:
        return httpx.post(f"{url}/api/predict", files={"video": (name, f, "video/mp4")},
                          data={"classes": classes} if classes is not None else None, timeout=60, **kwargs)


def files_left(app) -> list[str]:
    return sorted(name for name in os.listdir(app.state.engine.workdir) if not name.startswith("sample-"))


def test_describe_and_predict_on_a_real_server(tiny_clip_file, video_file):
    app = zero_shot_app(tiny_clip_file)
    with running_server(app) as url:
        model = httpx.get(f"{url}/api/model").json()
        assert model["method"] == "frozen (zero-shot CLIP)" and model["text_based"] is True
        assert model["classes"] == CLASSES and model["num_frames"] == 8 and model["input_size"] == 64
        assert model["samples"] == ["moving_left", "moving_up", "still_green_circle"]

        typed = "running, jumping\nswimming,, running"  # commas or lines; blanks and repeats dropped
        response = post_video(url, video_file, typed, name="my clip.mp4")
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["video"] == "my clip.mp4"  # the client's name, never the server's temp path
        assert sorted(t["label"] for t in result["top"]) == ["jumping", "running", "swimming"]
        assert sum(t["score"] for t in result["top"]) == pytest.approx(1.0, abs=1e-4)
        assert result["views"] == "8 frames x 1 clip x 1 crop" and result["num_views"] == 1
        assert result["num_frames_in_video"] == 20 and result["precision"] == "fp32"
        assert result["seconds"] > 0 and result["num_classes"] == 3
        sampled = sorted({i for clip in result["clips"] for i in clip})
        assert [f["index"] for f in result["frames"]] == sampled and len(sampled) == 8
        assert all(f["image"].startswith("data:image/jpeg;base64,") for f in result["frames"])
        # The same numbers as `clipvideo.predict` on the same file: one inference path.
        expected = clipvideo.predict(str(video_file), classes=["running", "jumping", "swimming"],
                                     backbone=str(tiny_clip_file), precision="fp32")
        assert result["top"] == expected

        sample = httpx.post(f"{url}/api/predict", data={"sample": "moving_up"}, timeout=60).json()
        assert sample["video"] == "moving_up.mp4"
        assert sorted(t["label"] for t in sample["top"]) == sorted(CLASSES)  # no classes sent: the defaults
        assert files_left(app) == []  # each upload removed once answered
        page = httpx.get(url + "/")
        assert page.status_code == 200 and 'id="predict"' in page.text
        assert httpx.get(f"{url}/samples/moving_left.mp4").content[4:8] == b"ftyp"
        assert httpx.get(f"{url}/samples/..%2Fetc.mp4").status_code == 404
        workdir = app.state.engine.workdir
        assert os.stat(workdir).st_mode & 0o777 == 0o700
    assert not os.path.exists(workdir)  # the private folder goes with the server


def test_class_names_are_encoded_again_only_when_they_change(tiny_clip_file, video_file):
    from fastapi.testclient import TestClient

    app = zero_shot_app(tiny_clip_file, samples=False)
    model = app.state.engine.predictor.model
    calls = []
    original = model.set_class_names
    model.set_class_names = lambda names: (calls.append(list(names)), original(names))
    with TestClient(app) as client:
        def top1(classes):
            with open(video_file, "rb") as f:
                response = client.post("/api/predict", files={"video": ("v.mp4", f)}, data={"classes": classes})
            assert response.status_code == 200, response.text
            return response.json()["top"][0]["label"]

        assert top1("cat,dog") in ("cat", "dog") and top1("cat, dog") in ("cat", "dog")
        assert calls == [["cat", "dog"]]  # the same list twice: encoded once
        assert top1("") in CLASSES and top1(", ".join(CLASSES)) in CLASSES
        assert calls == [["cat", "dog"], CLASSES]  # empty = the defaults, which are then current


def test_fixed_head_checkpoint_keeps_its_classes(head_checkpoint, video_file):
    from fastapi.testclient import TestClient

    from clipvideo.data.decode import DEFAULT_INDEX_CACHE

    app = build_app(checkpoint=str(head_checkpoint), precision="fp32", settings=ServeSettings(samples=False))
    cached_before = len(DEFAULT_INDEX_CACHE._entries)
    with TestClient(app) as client:
        model = client.get("/api/model").json()
        assert model["method"] == "frozen" and model["text_based"] is False
        assert model["classes"] == CLASSES and model["num_frames"] == 4 and model["samples"] == []
        with open(video_file, "rb") as f:
            result = client.post("/api/predict", files={"video": ("v.mp4", f)}).json()
        # Dense sampling (the data default), the file's two test clips, both shown in the strip.
        assert result["views"] == "4 frames x 2 clips x 1 crop" and len(result["clips"]) == 2
        assert [f["index"] for f in result["frames"]] == sorted({i for clip in result["clips"] for i in clip})
        assert sorted(t["label"] for t in result["top"]) == sorted(CLASSES)
        # The upload's keyframe index left the process-wide cache with the file (a server runs for days).
        assert len(DEFAULT_INDEX_CACHE._entries) == cached_before
        with open(video_file, "rb") as f:
            refused = client.post("/api/predict", files={"video": ("v.mp4", f)}, data={"classes": "cat,dog"})
        assert refused.status_code == 400
        assert "trained head for its 3 classes and cannot take other class names" in refused.json()["error"]


def chunked_upload_answer(url: str, total: int) -> bytes:
    """Send a chunked multipart upload of `total` file bytes but never finish the body; return
    what the server answers meanwhile (a server that waited for the whole body would time out)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as conn:
        conn.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: multipart/form-data; boundary=zz\r\n\r\n")
        head = b'--zz\r\nContent-Disposition: form-data; name="video"; filename="big.mp4"\r\n\r\n'
        conn.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        chunk = b"\0" * 32768
        for _ in range(total // len(chunk)):
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = conn.recv(65536)
            if not data:
                break
            answer += data
        return answer


def test_oversized_uploads_get_413_while_streaming(tiny_clip_file, video_file):
    app = zero_shot_app(tiny_clip_file, max_upload_bytes=256 * 1024, samples=False)
    with running_server(app) as url:
        declared = httpx.post(f"{url}/api/predict", files={"video": ("big.mp4", b"\0" * 3_000_000)}, timeout=60)
        assert declared.status_code == 413
        assert declared.json()["error"] == ("the upload is larger than the 256 KiB limit "
                                            "(the server's --max-upload-mb sets it)")
        # No Content-Length: the server stops at the limit, before the body ends.
        answer = chunked_upload_answer(url, 1024 * 1024)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert files_left(app) == []
        assert post_video(url, video_file, "a,b").status_code == 200  # still serving


def test_bad_requests_get_400_with_a_message(tiny_clip_file, tmp_path, video_file, monkeypatch):
    text = tmp_path / "notes.mp4"
    text.write_text("these are my notes, not a video\n" * 20)
    app = zero_shot_app(tiny_clip_file)
    with running_server(app) as url:
        response = post_video(url, text, name="notes.mp4")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error.startswith("cannot decode 'notes.mp4' as a video: unreadable") and "\n" not in error
        assert app.state.engine.workdir not in error

        cases = {
            "empty": dict(files={"video": ("empty.mp4", b"")}),
            "nothing": dict(data={"classes": "a,b"}),
            "sample": dict(data={"sample": "../../etc/passwd"}),
            "top_k": dict(data={"sample": "moving_left", "top_k": "-1"}),
            "json": dict(json={"video": "x"}),
        }
        expected = {
            "empty": "the uploaded file 'empty.mp4' is empty",
            "nothing": "no video: send a file in the 'video' field, or a bundled 'sample' name",
            "sample": "no sample named '../../etc/passwd'; samples: moving_left, moving_up, still_green_circle",
            "top_k": "top_k must be a whole number from 1 to 100, got '-1'",
            "json": "send a multipart/form-data form with the video in a 'video' file field (curl -F video=@clip.mp4)",
        }
        for name, kwargs in cases.items():
            response = httpx.post(f"{url}/api/predict", timeout=60, **kwargs)
            assert (response.status_code, response.json()) == (400, {"error": expected[name]}), name
        assert files_left(app) == []
        assert post_video(url, video_file, "a,b").status_code == 200  # still serving

        # A model that fails on an input: 500 with the reason in one line, then serving as before.
        def failing_predict(*args, **kwargs):
            raise ValueError("this model was built for 4 frames, got 8\nsecond line")

        real_predict = serve_app.predict_video
        monkeypatch.setattr(serve_app, "predict_video", failing_predict)
        failed = post_video(url, video_file, "a,b")
        assert (failed.status_code, failed.json()) == (
            500, {"error": "prediction failed: ValueError: this model was built for 4 frames, got 8"})
        monkeypatch.setattr(serve_app, "predict_video", real_predict)
        assert post_video(url, video_file, "a,b").status_code == 200 and files_left(app) == []


def test_concurrent_requests_wait_or_get_503(tiny_clip_file, video_file, monkeypatch):
    app = zero_shot_app(tiny_clip_file, queue_size=2, samples=False)
    engine = app.state.engine
    gate = threading.Event()
    real_predict = serve_app.predict_video

    def held_predict(*args, **kwargs):  # the first video holds the worker until the test opens the gate
        gate.wait(timeout=60)
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(serve_app, "predict_video", held_predict)
    with running_server(app) as url, ThreadPoolExecutor(8) as pool:
        accepted = [pool.submit(post_video, url, video_file, "a,b") for _ in range(3)]  # 1 running + 2 queued
        deadline = time.monotonic() + 30
        while engine.in_flight < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.in_flight == 3
        refused = [post_video(url, video_file, "a,b") for _ in range(2)]  # answered while the worker is held
        for response in refused:
            assert response.status_code == 503 and response.headers["retry-after"] == "2"
            assert response.json()["error"] == ("busy: 3 videos are being processed or waiting (queue size 2); "
                                                "try again in a few seconds")
        gate.set()
        assert [f.result().status_code for f in accepted] == [200, 200, 200]
        assert engine.in_flight == 0

        # A burst without the gate: every request is answered, 200 or a clean 503, nothing else.
        burst = [r.result() for r in [pool.submit(post_video, url, video_file, "a,b") for _ in range(8)]]
        assert {r.status_code for r in burst} <= {200, 503} and 200 in {r.status_code for r in burst}
        assert all(r.json()["error"].startswith("busy:") for r in burst if r.status_code == 503)
        assert engine.in_flight == 0 and files_left(app) == []
        assert post_video(url, video_file, "a,b").status_code == 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serves_on_localhost_and_cleans_up(tiny_clip_file, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "clipvideo", "serve", "--backbone", str(tiny_clip_file), "--classes", "a,b",
         "--port", str(port), "--precision", "fp32", "--max-upload-mb", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                model = httpx.get(f"http://127.0.0.1:{port}/api/model", timeout=5).json()
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
                time.sleep(0.2)
        assert model["classes"] == ["a", "b"] and model["max_upload_bytes"] == 2**20
        assert [p.name for p in tmp_path.iterdir()][0].startswith("clipvideo-serve-")
        answer = httpx.post(f"http://127.0.0.1:{port}/api/predict", data={"sample": "moving_left"}, timeout=60)
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"Uvicorn running on http://127.0.0.1:{port}" in output
    assert list(tmp_path.iterdir()) == []  # the private folder is gone, nothing else written


def test_cli_errors_are_one_line(capsys, tmp_path, monkeypatch):
    from clipvideo.cli import main

    assert main(["serve", "--port", "1"]) == 2
    assert capsys.readouterr().err.strip() == ('clipvideo serve: error: serve needs a model: --checkpoint FILE (a '
                                               'clipvideo model file), --model NAME (a released model, `clipvideo '
                                               'models` lists them) or --backbone CLIP --classes "a,b,c" (zero-shot '
                                               'on your class names)')
    assert main(["serve", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert capsys.readouterr().err.strip() == f"clipvideo serve: error: {tmp_path / 'nope.pt'}: no such checkpoint"
    assert main(["serve", "--backbone", "x.pt", "--classes", "a", "--max-upload-mb", "0"]) == 2
    assert capsys.readouterr().err.strip() == ("clipvideo serve: error: --max-upload-mb and --max-decoded-mb must "
                                               "be > 0 and --queue-size >= 0")
    # Without the web extra: what to install, in one line.
    monkeypatch.setitem(sys.modules, "fastapi", None)  # `import fastapi` now fails as if it were absent
    for name in ("clipvideo.serve", "clipvideo.serve.app", "clipvideo.serve.upload"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert main(["serve", "--backbone", "x.pt", "--classes", "a"]) == 2
    assert capsys.readouterr().err.strip() == ("clipvideo serve: error: fastapi is not installed; "
                                               "pip install 'clipvideo[serve]' (FastAPI, uvicorn, python-multipart)")
