"""`clipvideo serve`: POST /api/timeline and the search box over an index (clipvideo/serve/longvideo.py)."""

import numpy as np
import pytest
from serve_helpers import CLASSES

from clipvideo.serve import ServeSettings, build_app
from clipvideo.serve.longvideo import load_index


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    from clipvideo.data.synthetic import render_motion_clip, write_video

    path = tmp_path_factory.mktemp("long") / "long.mp4"
    rng = np.random.default_rng(5)
    write_video(path, (f for name in ("moving right", "moving up", "moving left")
                       for f in render_motion_clip(name, 30, 64, 64, rng)), fps=10)
    return path


def test_timeline_endpoint_and_search_box(tiny_clip_file, long_video, tmp_path):
    from fastapi.testclient import TestClient

    import clipvideo

    app = build_app(backbone=str(tiny_clip_file), classes=",".join(CLASSES), precision="fp32", num_frames=4,
                    settings=ServeSettings(samples=False))
    with TestClient(app) as client:
        with open(long_video, "rb") as f:
            response = client.post("/api/timeline", files={"video": ("long.mp4", f)},
                                   data={"window": "2", "stride": "1", "top_k": "2"})
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["video"] == "long.mp4" and result["duration"] == pytest.approx(9.0)
        assert len(result["windows"]) == 8 and all(len(w["top"]) == 2 for w in result["windows"])
        assert result["segments"][0]["start"] == 0 and result["segments"][-1]["end"] == pytest.approx(9.0)
        with open(long_video, "rb") as f:
            too_long = client.post("/api/timeline", files={"video": ("long.mp4", f)}, data={"window": "60"})
        assert too_long.status_code == 400 and "longer than the video" in too_long.json()["error"]
        assert "/tmp" not in too_long.json()["error"]  # the upload's private path is not shown
        # the form checks /api/predict makes, from the same code: bad window first, then the video
        bad_window = client.post("/api/timeline", data={"window": "soon", "sample": "nope"})
        assert bad_window.status_code == 400 and bad_window.json()["error"] == "window must be a number of seconds, got 'soon'"
        no_sample = client.post("/api/timeline", data={"sample": "nope"})
        assert no_sample.status_code == 400 and no_sample.json()["error"] == "no sample named 'nope'; samples: "
        assert client.post("/api/timeline", data={"top_k": "2"}).json()["error"].startswith("no video: send a file")
        assert client.get("/api/index").json() == {"available": False}
        assert client.get("/api/search", params={"q": "moving up"}).status_code == 404

    # An index of the same model: the page's search box finds the video by a phrase.
    model_file = tmp_path / "zero-shot.pt"
    from clipvideo.engine.checkpoint import save_model

    save_model(app.state.engine.predictor.model, model_file, data=app.state.engine.predictor.data)
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "long.mp4").write_bytes(long_video.read_bytes())
    clipvideo.embed(tmp_path / "videos", checkpoint=model_file, out=tmp_path / "emb", precision="fp32")
    app = build_app(checkpoint=str(model_file), precision="fp32", settings=ServeSettings(samples=False))
    load_index(app, tmp_path / "emb")
    with TestClient(app) as client:
        info = client.get("/api/index").json()
        assert info["available"] and info["videos"] == 1 and info["text"]
        found = client.get("/api/search", params={"q": "moving up", "top": 3}).json()["results"]
        assert [r["video"] for r in found] == [str(tmp_path / "videos" / "long.mp4")]
        assert client.get("/api/search", params={"q": " "}).status_code == 400
        page = client.get("/").text
        assert 'id="timeline-button"' in page and 'id="search-query"' in page
