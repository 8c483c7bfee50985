"""Timelines, embeddings and search (clipvideo/engine/timeline.py, clipvideo/engine/embed.py).

Timelines: a long video made by concatenating still-shape clips of known lengths, scored by a
constructed colour classifier, must give every boundary within one stride. (The trained motion
models below are no good for this: a window across the seam of two moving-* clips sees the disc
jump back, which reads as the opposite motion.)

Search: a Text4Vis-tiny model trained on the synthetic motion classes (the recipe of
tests/text4vis/test_text4vis_train_synthetic.py: a position-aware stand-in CLIP, Transf fusion, the
four moving-* classes). Its video embeddings live in its text space, so a class name must retrieve
that class's videos.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import clipvideo
from clipvideo.data.synthetic import render_motion_clip, write_video
from clipvideo.engine import timeline as tl

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "xclip"))
from test_xclip_train_synthetic import CLASSES, make_data, make_position_clip  # noqa: E402

RECIPE = REPO / "configs/text4vis/tiny_synthetic.yaml"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
FPS = 12  # the training videos' rate


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "clipvideo", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline_motion")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        clip_file = make_position_clip(root / "position_clip.pt")
    finally:
        torch.set_num_threads(threads)
    data = make_data(root)
    overrides = [f"model.backbone.pretrained={clip_file}", f"data.root={data.root}",
                 f"data.train_list={data.train_list}", f"data.val_list={data.val_list}",
                 f"data.class_names={data.class_names_file}", f"output_dir={root / 'run'}"]
    done = run("train", RECIPE, "--set", *overrides, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "run" / "model.pt", data


def write_long_video(path, order, seconds_each: float, seed: int = 7) -> list[float]:
    """One motion clip per class in `order`, back to back; returns the true boundaries (seconds)."""
    rng = np.random.default_rng(seed)
    frames_each = round(seconds_each * FPS)
    write_video(path, (frame for name in order for frame in render_motion_clip(name, frames_each, 64, 64, rng)),
                fps=FPS)
    return [seconds_each * i for i in range(1, len(order))]


def validation_videos(data, per_class: int) -> list[Path]:
    lines = Path(data.val_list).read_text().split("\n")
    videos = {name: [] for name in CLASSES}
    for line in filter(None, lines):
        path, label = line.rsplit(maxsplit=1)
        if len(videos[CLASSES[int(label)]]) < per_class:
            videos[CLASSES[int(label)]].append(Path(data.root) / path)
    return [v for name in CLASSES for v in videos[name]]


# -- timeline ------------------------------------------------------------------------------------

STILL = ["still red square", "still green circle", "still blue triangle"]


class ColourClassifier(torch.nn.Module):
    """A constructed (not trained) classifier of the still-shape classes: per frame, the share of
    pixels within 18 levels of each shape's colour (the background texture stays at least 20 levels
    away from all three), averaged over the frames. A window that holds frames of two shapes leans
    to the one with more frames. Takes CLIP-normalised input, as the pipeline gives it."""

    colours = torch.tensor([(220, 40, 40), (40, 200, 60), (40, 80, 230)], dtype=torch.float32) / 255

    def forward(self, video):  # (B, T, 3, H, W)
        from clipvideo.data import CLIP_MEAN, CLIP_STD

        mean, std = torch.tensor(CLIP_MEAN)[:, None, None], torch.tensor(CLIP_STD)[:, None, None]
        pixels = (video * std + mean).unsqueeze(2)  # (B, T, 1, 3, H, W)
        distance = (pixels - self.colours[:, :, None, None]).abs().amax(dim=3)  # (B, T, K, H, W)
        return 100 * (distance < 18 / 255).float().mean(dim=(-1, -2)).mean(dim=1)  # (B, K)


def test_timeline_finds_every_boundary_within_one_stride(tmp_path):
    """Six still-shape clips of different lengths back to back; 2 s windows every 0.5 s sampled as
    8 segments (through the data pipeline), merged: every boundary within one stride."""
    from clipvideo.engine.config import DataConfig
    from clipvideo.engine.predict import Predictor

    order = [STILL[i] for i in (0, 1, 2, 0, 2, 1)]
    seconds = [4.5, 5.0, 4.5, 6.0, 5.0, 5.5]  # over twice the window: see timeline.window_labels
    rng = np.random.default_rng(7)
    video = tmp_path / "long.mp4"
    write_video(video, (f for name, length in zip(order, seconds)
                        for f in render_motion_clip(name, round(length * FPS), 64, 64, rng)), fps=FPS)
    boundaries = np.cumsum(seconds)[:-1].tolist()
    data = DataConfig(num_frames=8, sampling="segment", input_size=64, short_side=64, normalization="clip")
    predictor = Predictor(ColourClassifier().eval(), data, STILL)
    for stride in (0.5, 1.0):
        result = tl.video_timeline(predictor, str(video), window=2.0, stride=stride)
        segments = result.segments
        assert [s.label for s in segments] == order, (stride, segments)
        found = [s.start for s in segments[1:]]
        assert all(abs(f - b) <= stride for f, b in zip(found, boundaries)), (stride, found, boundaries)
        assert segments[0].start == 0 and segments[-1].end == pytest.approx(sum(seconds))
    assert len(result.windows) == 30  # every 1 s from 0 to 28 s, then one ending at the end (30.5 s)


def test_timeline_cli_table_json_csv_png(linear_model, tmp_path):
    video = tmp_path / "two.mp4"
    write_long_video(video, ["moving up", "moving down"], seconds_each=3.0)
    common = [video, "--checkpoint", linear_model, "--timeline", "--window", 2, "--stride", 1, "--precision", "fp32"]
    as_json = run("predict", *common, "--json", "--png", tmp_path / "t.png", "--top-k", 2)
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    (result,) = json.loads(as_json.stdout)
    assert result["duration"] == pytest.approx(6.0) and len(result["windows"]) == 5
    assert all(len(w["top"]) == 2 for w in result["windows"])
    segments = result["segments"]
    assert segments[0]["start"] == 0 and segments[-1]["end"] == pytest.approx(6.0)
    assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:]))
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    as_csv = run("predict", *common, "--csv")
    rows = as_csv.stdout.strip().splitlines()
    assert rows[0] == "video,start,end,label,score" and len(rows) == 1 + len(segments)
    assert rows[1].split(",")[3] == segments[0]["label"]
    table = run("predict", *common)
    assert table.returncode == 0 and segments[0]["label"] in table.stdout and "2 s every 1 s" in table.stdout


# -- embed and search ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(trained, tmp_path_factory):
    model_file, data = trained
    videos = validation_videos(data, per_class=4)
    listing = tmp_path_factory.mktemp("embed") / "videos.txt"
    listing.write_text("".join(f"{v}\n" for v in videos))
    out = listing.parent / "emb"
    done = run("embed", listing, "--checkpoint", model_file, "--out", out, "--precision", "fp32", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["rows"] == len(videos)
    return out, videos, listing


def test_text_query_returns_the_class_videos_first(index):
    """Each class name ranks its 4 videos (of 16) ahead of all but at most one other video, and 90% of
    the top 4 results are right over the four queries (a video embedding that ignores the text scores
    25%). Measured: 15 of 16 (one moving-left video, close to every phrase, comes first for "moving down")."""
    out, videos, _ = index
    hits = 0
    for name in CLASSES:
        done = run("search", out, name, "--top", 5, "--json", "--precision", "fp32")
        assert done.returncode == 0, done.stderr[-2000:]
        found = [Path(r["video"]).parent.name == name.replace(" ", "_") for r in json.loads(done.stdout)]
        assert sum(found) == 4, (name, found)  # all four within the top 5
        hits += sum(found[:4])
    assert hits >= 0.9 * 16, hits


def test_like_returns_the_video_itself_first(index):
    out, videos, _ = index
    for video in videos[::3]:
        (first, second) = clipvideo.search(out, like=str(video), top=2, precision="fp32")
        assert first["video"] == str(video) and first["score"] == pytest.approx(1.0, abs=1e-4)
        assert second["score"] < first["score"]


def test_embed_resumes_and_shards(index, trained, tmp_path):
    model_file, _ = trained
    _, videos, listing = index
    out = tmp_path / "emb"
    for shard in ("0/2", "1/2"):
        done = run("embed", listing, "--checkpoint", model_file, "--out", out, "--shard", shard, "--json",
                   "--precision", "fp32")
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout)["this_shard"] == len(videos) // 2
    again = run("embed", listing, "--checkpoint", model_file, "--out", out, "--json", "--precision", "fp32")
    assert json.loads(again.stdout)["skipped_already_done"] == len(videos)  # all done: nothing redone
    from clipvideo.engine.embed import read_index

    embeddings, rows, meta = read_index(out)
    assert sorted(r["video"] for r in rows) == sorted(map(str, videos)) and meta["text"]
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(len(rows)), atol=1e-5)


def test_embed_timeline_adds_one_row_per_window(trained, tmp_path):
    model_file, _ = trained
    video = tmp_path / "long.mp4"
    write_long_video(video, ["moving left", "moving right"], seconds_each=3.0)
    folder = tmp_path / "videos"
    folder.mkdir()
    video.rename(folder / "long.mp4")
    summary = clipvideo.embed(folder, checkpoint=model_file, out=tmp_path / "emb", window=2.0, stride=1.0,
                              precision="fp32")
    assert summary["rows"] == 1 + 5  # the whole video, then windows at 0, 1, 2, 3, 4 s
    best = clipvideo.search(tmp_path / "emb", "moving right", top=1, kind="window", precision="fp32")
    assert best[0]["start"] >= 3.0 - 1.0  # a window of the second half (within one stride of it)


# -- pieces and bad input (no training needed) -----------------------------------------------------


def test_windows_cover_the_tail_and_segments_merge():
    assert tl.window_starts(100, 20, 30) == [0, 30, 60, 80]  # the last window ends at the last frame
    probabilities = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]])
    segments = tl.merge_segments([1.0, 2.0, 3.0, 4.0], probabilities, ["a", "b"], 5.0)
    assert [(s.start, s.end, s.label) for s in segments] == [(0.0, 2.5, "a"), (2.5, 5.0, "b")]
    assert segments[0].score == pytest.approx(0.85)
    noisy = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.9, 0.1], [0.9, 0.1]])
    assert tl.smooth_probabilities(noisy, 3).argmax(dim=1).tolist() == [0] * 5  # a one-window blip goes


def test_segments_shorter_than_min_segment_go_to_their_neighbours():
    # a -> (one-window blip c) -> b: the blip is split between a and b; without the minimum it stays
    rows = [[0.9, 0.05, 0.05]] * 4 + [[0.1, 0.1, 0.8]] + [[0.05, 0.9, 0.05]] * 4
    centres = [0.5 + i for i in range(9)]
    kept = tl.merge_segments(centres, torch.tensor(rows), ["a", "b", "c"], 9.0)
    assert [s.label for s in kept] == ["a", "c", "b"]
    merged = tl.merge_segments(centres, torch.tensor(rows), ["a", "b", "c"], 9.0, min_segment=2.0)
    assert [(s.start, s.end, s.label) for s in merged] == [(0.0, 4.0, "a"), (4.0, 9.0, "b")]
    # a blip at the very start joins the run after it; a run at the minimum is kept
    start_blip = tl.merge_segments(centres, torch.tensor(rows[4:5] + rows[:4] + rows[5:]), ["a", "b", "c"], 9.0,
                                   min_segment=1.5)
    assert [s.label for s in start_blip] == ["a", "b"] and start_blip[0].start == 0.0


@pytest.fixture
def linear_model(tmp_path, tiny_clip_file):
    """A frozen CLIP with a linear head: no text tower for its embeddings."""
    from clipvideo.engine.checkpoint import save_model
    from clipvideo.methods import frozen
    from clipvideo.methods.base import BackboneConfig

    model = frozen.build(frozen.Config(backbone=BackboneConfig(pretrained=str(tiny_clip_file)), classifier="linear"),
                         2, ["a", "b"])
    path = tmp_path / "linear.pt"
    save_model(model, path, data={"num_frames": 8, "sampling": "segment", "input_size": 64, "short_side": 64})
    return path


def test_decoding_is_streamed_a_batch_of_windows_at_a_time(linear_model, tmp_path, monkeypatch):
    from clipvideo.engine.predict import load_predictor

    video = tmp_path / "v.mp4"
    write_long_video(video, ["moving up"] * 4, seconds_each=3.0)
    requested = []
    real = tl.video_data.open_video

    def recording_open(*args, **kwargs):
        reader = real(*args, **kwargs)
        get_frames = reader.get_frames
        reader.get_frames = lambda indices: (requested.append(len(indices)), get_frames(indices))[1]
        return reader

    monkeypatch.setattr(tl.video_data, "open_video", recording_open)
    result = tl.video_timeline(load_predictor(linear_model, precision="fp32"), str(video), window=1.0, stride=0.5,
                               batch_size=4)
    assert len(result.windows) == 23 and len(requested) == 6  # ceil(23 / 4) decodes
    assert max(requested) == 4 * 8  # never more than a batch of windows' frames (8 per window)


def test_bad_inputs_are_one_line_errors(linear_model, tmp_path):
    video = tmp_path / "short.mp4"
    write_long_video(video, ["moving up"], seconds_each=2.0)
    cases = [
        (["predict", video, "--checkpoint", linear_model, "--timeline", "--window", 5], "longer than the video"),
        (["predict", video, "--checkpoint", linear_model, "--timeline", "--smooth", 2], "--smooth"),
        (["search", tmp_path / "missing", "a person juggling"], "not an embedding index"),
    ]
    index = tmp_path / "emb"
    done = run("embed", tmp_path, "--checkpoint", linear_model, "--out", index)
    assert done.returncode == 0, done.stderr[-2000:]
    cases += [
        (["search", index, "a person juggling"], "no text tower"),
        (["search", index], "one of them"),
        (["search", index, "--like", tmp_path / "nope.mp4"], "missing file"),
        (["embed", tmp_path / "nothing.txt", "--checkpoint", linear_model, "--out", index], "no such list file"),
        (["embed", tmp_path, "--checkpoint", linear_model, "--out", index, "--timeline"], "other settings"),
    ]
    for args, message in cases:
        done = run(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr[-1500:])
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, lines)


@pytest.mark.parametrize("method", ["frozen", "xclip", "text4vis", "froster", "evl", "aim"])
def test_every_method_gives_a_video_embedding_and_text_methods_a_text_one(method):
    """Tiny random models of the six methods (their tiny_synthetic recipes, no weights files)."""
    from clipvideo.engine.config import load_config
    from clipvideo.engine.embed import SearchError, text_embedding, video_embedding
    from clipvideo.engine.train import build_model

    overrides = ["model.backbone.pretrained=null", "model.backbone.arch=tiny", "data.class_names="]
    if method == "frozen":
        overrides.append("model.classifier=text")
    config = load_config(REPO / f"configs/{method}/tiny_synthetic.yaml", overrides)
    names = ["moving left", "moving right", "still red square"]
    model = build_model(config, len(names), names).eval()
    video = torch.randn(4, config.data.num_frames, 3, config.data.input_size, config.data.input_size)
    with torch.no_grad():
        embeddings = video_embedding(model, video)
        logits = model(video)
    assert embeddings.shape[0] == 4 and torch.allclose(embeddings.norm(dim=1), torch.ones(4), atol=1e-5)
    if method in ("evl", "aim"):
        with pytest.raises(SearchError, match="no text tower"):
            text_embedding(model, ["moving left"])
        return
    texts = text_embedding(model, names)
    assert texts.shape == (len(names), embeddings.shape[1]) and model.class_names == names  # vocabulary kept
    if method != "xclip":  # X-CLIP's classifier adds video-specific prompts to the text; the others are
        # a cosine (or a mean of per-frame cosines) between this embedding and the class texts
        assert (embeddings @ texts.t()).argmax(dim=1).tolist() == logits.argmax(dim=1).tolist()
