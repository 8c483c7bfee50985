"""Decoding: exact frames against a decode-everything reference, caching, backends, bad files."""

import av
import numpy as np
import pytest
import torch

import clipvideo.data.decode as decode
from clipvideo.data import (
    KeyframeIndexCache,
    VideoDecodeError,
    available_backends,
    build_keyframe_index,
    decode_frames,
    open_video,
    read_rawframes,
    video_num_frames,
)

VIDEO_KINDS = ["short_gop", "default_gop", "no_bframes"]


def require_backend(name):
    """Skip when the optional decoder is not importable (or, for torchcodec, when it imports but
    finds no FFmpeg libraries to decode with)."""
    pytest.importorskip(name)
    if name not in available_backends():
        pytest.skip(f"{name} is installed but cannot load its FFmpeg libraries")


def reference_frames(path) -> torch.Tensor:
    """Every frame, decoded in order by plain PyAV: (N, H, W, 3)."""
    with av.open(str(path)) as container:
        return torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))


def index_sets(num_frames: int, seed: int = 0):
    """Dense and sparse sets, boundaries, repeats and unsorted orders."""
    rng = np.random.default_rng(seed)
    sets = [[0], [num_frames - 1], [num_frames - 1, 0, num_frames - 1], list(range(num_frames)),
            list(range(0, num_frames, 7)), [5, 5, 5, 6]]
    for _ in range(25):
        sets.append(rng.integers(0, num_frames, size=int(rng.integers(1, 12))).tolist())
    for _ in range(5):  # 8x stride-4 dense clips at random starts
        start = int(rng.integers(0, num_frames - 29))
        sets.append(list(range(start, start + 29, 4)))
    return sets


@pytest.fixture
def no_fallback(monkeypatch):
    """Fail if the keyframe-index decoder gives up and decodes sequentially."""

    def refuse(*args, **kwargs):
        raise AssertionError("the seek-based decoder fell back to sequential decoding")

    monkeypatch.setattr(decode, "_decode_sequential", refuse)


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_pyav_frames_are_exact(videos, kind, no_fallback):
    path = getattr(videos, kind)
    reference = reference_frames(path)
    # consecutive frames all differ, so any off-by-one would be caught
    assert all(not torch.equal(reference[i], reference[i + 1]) for i in range(len(reference) - 1))
    assert video_num_frames(path) == len(reference)
    for indices in index_sets(len(reference)):
        frames = decode_frames(path, indices)
        assert frames.dtype == torch.uint8 and frames.shape == (len(indices), 48, 64, 3)
        assert torch.equal(frames, reference[indices]), indices


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_decode_all_backend_matches_reference(videos, kind):
    path = getattr(videos, kind)
    reference = reference_frames(path)
    assert torch.equal(decode_frames(path, [3, 1, 40], backend="pyav_all"), reference[[3, 1, 40]])


def test_keyframe_index_matches_decoded_keyframes(videos):
    for kind in VIDEO_KINDS:
        path = getattr(videos, kind)
        index = build_keyframe_index(path)
        with av.open(str(path)) as container:
            decoded = [(frame.pts, frame.key_frame) for frame in container.decode(video=0)]
        assert index.num_frames == len(decoded)
        assert index.frame_pts.tolist() == [pts for pts, _ in decoded]
        assert index.keyframes.tolist() == [i for i, (_, key) in enumerate(decoded) if key]
    assert build_keyframe_index(videos.short_gop).keyframes.tolist() == list(range(0, 96, 8))
    # x264's default GOP: keyframe at 0 and at most every 250 frames
    keyframes = build_keyframe_index(videos.default_gop).keyframes.tolist()
    assert keyframes[0] == 0 and len(keyframes) >= 2 and np.diff(keyframes).max() <= 250


def test_codec_threads_give_the_same_frames(videos):
    reference = reference_frames(videos.short_gop)
    indices = [2, 17, 50, 51, 95]
    assert torch.equal(decode_frames(videos.short_gop, indices, num_threads=2), reference[indices])


def test_decoding_from_bytes(videos):
    data = videos.short_gop.read_bytes()
    cache = KeyframeIndexCache()
    frames = decode_frames(data, [0, 33, 90], index_cache=cache, cache_key="member.mp4")
    assert torch.equal(frames, reference_frames(videos.short_gop)[[0, 33, 90]])
    assert len(cache._entries) == 1


def test_keyframe_index_cache_in_memory_and_on_disk(videos, tmp_path, monkeypatch):
    cache = KeyframeIndexCache(directory=tmp_path / "index")
    first = cache.get(videos.short_gop)
    assert cache.get(videos.short_gop) is first  # in-memory hit
    assert len(list((tmp_path / "index").glob("*.json"))) == 1

    # a new process (a fresh cache) reads the file instead of demuxing again
    def no_demux(source):
        raise AssertionError("should have been read from the disk cache")

    monkeypatch.setattr(decode, "build_keyframe_index", no_demux)
    again = KeyframeIndexCache(directory=tmp_path / "index").get(videos.short_gop)
    assert again.num_frames == first.num_frames
    assert np.array_equal(again.frame_pts, first.frame_pts) and np.array_equal(again.keyframes, first.keyframes)


def test_cache_key_changes_when_the_file_changes(videos, tmp_path):
    path = tmp_path / "video.mp4"
    path.write_bytes(videos.short_gop.read_bytes())
    cache = KeyframeIndexCache()
    assert cache.get(path).num_frames == 96
    path.write_bytes(videos.no_bframes.read_bytes())
    assert cache.get(path).num_frames == 64


def test_index_out_of_range_is_an_error(videos):
    with pytest.raises(IndexError, match=r"outside \[0, 96\)"):
        decode_frames(videos.short_gop, [0, 96])


@pytest.mark.parametrize("backend", ["pyav", "pyav_all", "decord", "torchcodec"])
def test_bad_files_raise_video_decode_error(videos, backend):
    if backend not in ("pyav", "pyav_all"):
        require_backend(backend)
    expected = {
        "missing": {"missing file"},
        "garbage": {"unreadable"},
        "truncated": {"unreadable"},  # the index (moov) was at the end and is gone
        "header_only": {"zero frames", "unreadable"},
        "cut_data": {"truncated", "decode error", "unreadable"},
    }
    for name, reasons in expected.items():
        path = getattr(videos, name)
        with pytest.raises(VideoDecodeError) as caught:
            reader = open_video(path, backend)
            reader.get_frames(list(range(reader.num_frames)))
        assert caught.value.reason in reasons, (name, caught.value)
        assert str(path) in str(caught.value)


def test_pyav_reports_zero_frames_for_a_header_without_data(videos):
    with pytest.raises(VideoDecodeError, match="zero frames"):
        video_num_frames(videos.header_only)


@pytest.mark.parametrize("backend", ["decord", "torchcodec"])
def test_optional_backends_match_reference(videos, backend):
    require_backend(backend)
    for kind in VIDEO_KINDS:
        path = getattr(videos, kind)
        reference = reference_frames(path)
        assert video_num_frames(path, backend=backend) == len(reference)
        indices = [0, 9, 9, 3, len(reference) - 1]
        frames = decode_frames(path, indices, backend=backend)
        assert frames.shape == (5, 48, 64, 3) and frames.dtype == torch.uint8
        assert torch.equal(frames, reference[indices])


def test_rawframes(rawframes):
    from PIL import Image

    frames = read_rawframes(rawframes / "a", [0, 19, 4, 4])
    assert frames.shape == (4, 48, 64, 3) and frames.dtype == torch.uint8
    expected = torch.from_numpy(np.array(Image.open(rawframes / "a" / "img_00020.jpg").convert("RGB")))
    assert torch.equal(frames[1], expected)
    assert torch.equal(frames[2], frames[3])
    # start_index=0 shifts the file numbering: frame 0 would be img_00000.jpg, which does not exist
    with pytest.raises(VideoDecodeError, match="missing frame file.*img_00000.jpg"):
        read_rawframes(rawframes / "a", [0], start_index=0)
    assert torch.equal(read_rawframes(rawframes / "a", [1], start_index=0)[0], frames[0])
    with pytest.raises(VideoDecodeError, match="missing file"):
        read_rawframes(rawframes / "nowhere", [0])


def test_rawframes_with_a_corrupt_image(rawframes, tmp_path):
    (tmp_path / "img_00001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(VideoDecodeError, match="decode error"):
        read_rawframes(tmp_path, [0])
