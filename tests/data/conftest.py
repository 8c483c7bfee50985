"""Small real videos for the data tests, generated once per test session (a few seconds)."""

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipvideo.data.synthetic import make_motion_dataset, write_benchmark_video, write_video


@dataclass
class Videos:
    root: Path
    short_gop: Path  # 96 frames, keyframe every 8, B-frames
    default_gop: Path  # 300 frames, x264's default keyframe placement, B-frames
    no_bframes: Path  # 64 frames, keyframe every 16, no B-frames
    missing: Path  # does not exist
    garbage: Path  # random bytes
    truncated: Path  # first half of an mp4 whose index (moov) is at the end
    header_only: Path  # an mp4 cut right after its index: a video stream with no frame data
    cut_data: Path  # an mp4 with its index first, cut in the middle of the frame data


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> Videos:
    root = tmp_path_factory.mktemp("videos")
    size = (64, 48)
    write_benchmark_video(root / "short_gop.mp4", seconds=96 / 30, size=size, gop=8, seed=1)
    write_benchmark_video(root / "default_gop.mp4", seconds=10, size=size, seed=2)
    write_benchmark_video(root / "no_bframes.mp4", seconds=64 / 30, size=size, gop=16, bframes=0, seed=3)

    (root / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    frames = [np.full((48, 64, 3), 8 * i, np.uint8) for i in range(30)]
    write_video(root / "plain.mp4", frames)
    data = (root / "plain.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    write_video(root / "faststart.mp4", frames, faststart=True)
    data = (root / "faststart.mp4").read_bytes()
    mdat = data.index(b"mdat")
    (root / "header_only.mp4").write_bytes(data[: mdat + 4])
    (root / "cut_data.mp4").write_bytes(data[: (mdat + len(data)) // 2])
    return Videos(
        root=root,
        short_gop=root / "short_gop.mp4",
        default_gop=root / "default_gop.mp4",
        no_bframes=root / "no_bframes.mp4",
        missing=root / "missing.mp4",
        garbage=root / "garbage.mp4",
        truncated=root / "truncated.mp4",
        header_only=root / "header_only.mp4",
        cut_data=root / "cut_data.mp4",
    )


@pytest.fixture(scope="session")
def motion(tmp_path_factory):
    """9 classes x (2 train + 1 val) synthetic motion videos of 16 frames, 64x48."""
    return make_motion_dataset(
        tmp_path_factory.mktemp("motion"), num_videos_per_class=2, num_val_per_class=1, num_frames=16,
        size=(64, 48), seed=0,
    )


@pytest.fixture(scope="session")
def rawframes(tmp_path_factory, videos):
    """Two folders of JPEG frames (img_00001.jpg, ...) decoded from short_gop.mp4, and a list."""
    from clipvideo.data import decode_frames

    root = tmp_path_factory.mktemp("rawframes")
    frames = decode_frames(videos.short_gop, list(range(20))).numpy()
    for name, count in (("a", 20), ("b", 12)):
        os.makedirs(root / name)
        for i in range(count):
            Image.fromarray(frames[i]).save(root / name / f"img_{i + 1:05d}.jpg", quality=95)
    (root / "list.txt").write_text("a 20 0\nb 12 1\n")
    return root


@pytest.fixture(scope="session")
def video_tar(tmp_path_factory, motion):
    """An uncompressed tar holding the motion training videos at its root (X-CLIP layout)."""
    path = tmp_path_factory.mktemp("tar") / "videos.tar"
    with tarfile.open(path, "w") as archive:
        for line in Path(motion.train_list).read_text().split("\n"):
            if line:
                relative = line.split()[0]
                archive.add(Path(motion.root) / relative, arcname=os.path.basename(relative))
    return path
