"""`clipvideo prepare` as a user meets it: small videos are not enlarged unless asked, and each
video that fails is named with its reason on the console, with where failures.txt is."""

import json

import numpy as np

from clipvideo.cli import main
from clipvideo.data.decode import VideoDecodeError
from clipvideo.data.prepare import output_size
from clipvideo.data.synthetic import render_motion_clip, write_video


def _manifest(store) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, (store / "manifest.jsonl").read_text().splitlines())}


def test_small_videos_keep_their_size_unless_upscale_is_asked(tmp_path, capsys):
    write_video(tmp_path / "small.mp4", render_motion_clip("moving left", 6, 176, 144, np.random.default_rng(0)), fps=6)
    write_video(tmp_path / "large.mp4", render_motion_clip("moving left", 6, 640, 272, np.random.default_rng(1)), fps=6)
    listing = tmp_path / "list.txt"
    listing.write_text("small.mp4 0\nlarge.mp4 1\n")

    common = [listing, "--root", tmp_path, "--workers", "1", "--preset", "ultrafast"]
    assert main(["prepare"] + [str(a) for a in [*common, "--out", tmp_path / "store"]]) == 0
    records = _manifest(tmp_path / "store")
    assert (records["small.mp4"]["width"], records["small.mp4"]["height"]) == (176, 144)  # never enlarged
    assert (records["large.mp4"]["width"], records["large.mp4"]["height"]) == (602, 256)  # shrunk to 256

    assert main(["prepare"] + [str(a) for a in [*common, "--out", tmp_path / "up", "--upscale"]]) == 0
    records = _manifest(tmp_path / "up")
    assert (records["small.mp4"]["width"], records["small.mp4"]["height"]) == (312, 256)
    capsys.readouterr()


def test_output_size_without_upscale_only_shrinks():
    assert output_size(176, 144, 256, upscale=False) == (176, 144)
    assert output_size(175, 143, 256, upscale=False) == (174, 142)  # even sizes, never larger
    assert output_size(640, 272, 256, upscale=False) == (602, 256)
    assert output_size(176, 144, 256) == (312, 256)  # as asked


def test_each_failed_video_is_named_with_its_reason_and_failures_txt_is_pointed_at(tmp_path, capsys):
    write_video(tmp_path / "good.mp4", render_motion_clip("moving up", 6, 64, 48, np.random.default_rng(0)), fps=6)
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(1).bytes(3000))
    listing = tmp_path / "list.txt"
    listing.write_text("good.mp4 0\ngarbage.mp4 1\nmissing.mp4 0\n")
    store = tmp_path / "store"
    status = main(["prepare", str(listing), "--root", str(tmp_path), "--out", str(store), "--workers", "1",
                   "--preset", "ultrafast"])
    out, err = capsys.readouterr()
    assert status == 1 and "1 prepared, 2 failed" in out
    lines = err.splitlines()
    assert any(line.startswith("failed: garbage.mp4: unreadable") for line in lines), err
    assert any(line.startswith("failed: missing.mp4: ") for line in lines), err
    assert f"2 videos failed; each with its reason in {store / 'failures.txt'}" in err
    assert "Errno" not in err and str(tmp_path / "garbage.mp4") not in err  # the listed path, once
    assert (store / "failures.txt").read_text().splitlines()[0].startswith("garbage.mp4\tunreadable")


def test_decode_errors_have_no_raw_errno_and_name_the_path_once(tmp_path):
    from clipvideo.data import video_num_frames

    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(2).bytes(3000))
    try:
        video_num_frames(str(path))
    except VideoDecodeError as error:
        message = str(error)
    assert message.startswith(f"{path}: unreadable") and message.count(str(path)) == 1
    assert "Errno" not in message and "1094995529" not in message
