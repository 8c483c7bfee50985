"""`clipvideo serve`: the decoded size of an upload is bounded (not only its bytes), and the page
gets the crop the model sees beside each full frame."""

import base64
import io
import os

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_helpers import CLASSES, running_server

from clipvideo.serve import ServeSettings, build_app


def zero_shot_app(tiny_clip_file, **settings):
    return build_app(backbone=str(tiny_clip_file), classes=",".join(CLASSES), precision="fp32",
                     settings=ServeSettings(samples=False, **settings))


def write_clip(path, width, height, frames=16):
    from clipvideo.data.synthetic import render_motion_clip, write_video

    write_video(path, render_motion_clip("moving right", frames, width, height, np.random.default_rng(0)), fps=8)
    return path


def post(url, path):
    with open(path, "rb") as f:
        return httpx.post(f"{url}/api/predict", files={"video": (path.name, f, "video/mp4")}, timeout=60)


def test_a_high_resolution_video_under_the_byte_limit_is_refused_before_decoding(tiny_clip_file, tmp_path):
    # 640x480: 8 sampled frames decode to 7 MiB, while the file is a few KiB (far under the upload limit).
    large = write_clip(tmp_path / "large.mp4", 640, 480)
    small = write_clip(tmp_path / "small.mp4", 96, 64)
    assert os.path.getsize(large) < 2**20
    app = zero_shot_app(tiny_clip_file, max_decoded_bytes=4 * 2**20)
    with running_server(app) as url:
        refused = post(url, large)
        assert refused.status_code == 413, refused.text
        message = refused.json()["error"]
        assert "640x480" in message and "--max-decoded-mb" in message and "\n" not in message
        assert [n for n in os.listdir(app.state.engine.workdir)] == []  # the upload is gone
        assert post(url, small).status_code == 200  # within the bound: predicted as before
        assert httpx.get(f"{url}/api/model").json()["max_decoded_bytes"] == 4 * 2**20


def test_the_page_gets_the_crop_the_model_sees_beside_each_frame(tiny_clip_file, tmp_path):
    # A wide video: the model sees a centre square only (at most 64x64 of 160x64).
    wide = write_clip(tmp_path / "wide.mp4", 160, 64)
    app = zero_shot_app(tiny_clip_file)
    with running_server(app) as url:
        response = post(url, wide)
        assert response.status_code == 200, response.text
        result = response.json()
        model = httpx.get(f"{url}/api/model").json()
    # the test transform scales the short side (64) to short_side, then crops input_size
    side = round(64 * model["input_size"] / (model["short_side"] or model["input_size"]))
    assert side < 64 and result["crop_box"] == [(160 - side) // 2, (64 - side) // 2, (160 + side) // 2, (64 + side) // 2]
    for frame in result["frames"]:
        full = Image.open(io.BytesIO(base64.b64decode(frame["image"].split(",", 1)[1])))
        crop = Image.open(io.BytesIO(base64.b64decode(frame["crop"].split(",", 1)[1])))
        assert full.width == pytest.approx(2.5 * full.height, abs=1) and crop.width == crop.height


def test_the_page_shows_the_crop_beside_the_frame():
    from importlib import resources

    page = resources.files("clipvideo.serve").joinpath("index.html").read_text()
    assert "f.crop" in page and "what the model sees" in page
