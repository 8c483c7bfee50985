"""The synthetic motion dataset: real H.264 files, lists, class names, frame-order-only pairs."""

from pathlib import Path

import av
import numpy as np
import pytest

from clipvideo.data import decode_frames, read_class_names, read_video_list, video_num_frames
from clipvideo.data.synthetic import (
    INDEPENDENT_CLASSES,
    INDEPENDENT_PAIRS,
    MOTION_CLASSES,
    TEMPORAL_PAIRS,
    make_motion_dataset,
    render_motion_clip,
)


def test_files_lists_and_class_names(motion):
    assert motion.class_names == list(MOTION_CLASSES) == read_class_names(motion.class_names_file)
    assert Path(motion.class_names_file).read_text().startswith("id,name\n0,moving left\n")
    train = read_video_list(motion.train_list, num_classes=9)
    val = read_video_list(motion.val_list, num_classes=9)
    assert len(train) == 18 and len(val) == 9
    assert sorted(r.label for r in val) == list(range(9))
    assert not {r.path for r in train} & {r.path for r in val}
    record = train[0]
    path = Path(motion.root) / record.path
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (64, 48)
    assert video_num_frames(path) == 16


def test_description(motion):
    names = motion.class_names
    assert [(names[a], names[b]) for a, b in motion.temporal_pairs] == list(TEMPORAL_PAIRS)
    statics = [names[i] for i in motion.static_classes]
    assert statics == ["still red square", "still green circle", "still blue triangle"]
    assert motion.num_frames == 16 and motion.size == (64, 48)


@pytest.mark.parametrize("forward, backward", TEMPORAL_PAIRS)
def test_pair_classes_differ_only_in_frame_order(forward, backward):
    a = render_motion_clip(forward, 12, 64, 48, np.random.default_rng(3))
    b = render_motion_clip(backward, 12, 64, 48, np.random.default_rng(3))
    assert np.array_equal(a, b[::-1])
    assert not np.array_equal(a[0], a[-1])  # there is motion to see
    assert np.array_equal(a, render_motion_clip(forward, 12, 64, 48, np.random.default_rng(3)))  # deterministic


def test_motion_directions():
    def centre_of_bright_object(frame):
        mask = frame.min(axis=-1) >= 200  # the moving disc is drawn in bright colours
        ys, xs = np.nonzero(mask)
        return xs.mean(), ys.mean()

    right = render_motion_clip("moving right", 10, 96, 64, np.random.default_rng(0))
    (x0, y0), (x1, y1) = centre_of_bright_object(right[0]), centre_of_bright_object(right[-1])
    assert x1 - x0 > 10 and abs(y1 - y0) < 1
    down = render_motion_clip("moving down", 10, 96, 64, np.random.default_rng(0))
    (x0, y0), (x1, y1) = centre_of_bright_object(down[0]), centre_of_bright_object(down[-1])
    assert y1 - y0 > 10 and abs(x1 - x0) < 1
    still = render_motion_clip("still red square", 6, 64, 48, np.random.default_rng(0))
    assert all(np.array_equal(still[0], frame) for frame in still)


def test_generation_is_deterministic_and_subsettable(tmp_path):
    a = make_motion_dataset(tmp_path / "a", num_videos_per_class=1, num_val_per_class=1, num_frames=8,
                            size=(32, 32), classes=["moving left", "moving right", "still green circle"], seed=4)
    b = make_motion_dataset(tmp_path / "b", num_videos_per_class=1, num_val_per_class=1, num_frames=8,
                            size=(32, 32), classes=["moving left", "moving right", "still green circle"], seed=4)
    assert a.class_names == ["moving left", "moving right", "still green circle"]
    assert a.temporal_pairs == [(1, 0)] and a.static_classes == [2]
    assert Path(a.train_list).read_text() == Path(b.train_list).read_text()
    for record in read_video_list(a.train_list):
        frames_a = decode_frames(Path(a.root) / record.path, list(range(8))).float()
        frames_b = decode_frames(Path(b.root) / record.path, list(range(8))).float()
        # the rendered frames are identical (see the pair test); x264 itself occasionally encodes
        # the same input slightly differently, so compare the decoded pictures with a tolerance
        assert (frames_a - frames_b).abs().mean() < 8.0


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown motion classes"):
        make_motion_dataset(tmp_path, classes=["jumping"])
    with pytest.raises(ValueError, match="even"):
        make_motion_dataset(tmp_path, num_videos_per_class=1, size=(33, 32))


@pytest.mark.parametrize("forward, backward", INDEPENDENT_PAIRS)
def test_independent_pairs_differ_only_in_frame_order(forward, backward):
    a = render_motion_clip(forward, 24, 64, 64, np.random.default_rng(5))
    b = render_motion_clip(backward, 24, 64, 64, np.random.default_rng(5))
    assert np.array_equal(a, b[::-1])
    assert not np.array_equal(a[0], a[-1])


def test_independent_set_states_change_the_named_way():
    def bright(frame):
        return frame.min(axis=-1) >= 200  # every moving object is drawn in bright colours

    down = render_motion_clip("disc moving down", 24, 64, 64, np.random.default_rng(0))
    heights = [np.nonzero(bright(frame))[0].mean() for frame in down]
    assert np.all(np.diff(heights) > 0) and heights[-1] - heights[0] > 15
    growing = render_motion_clip("ring growing", 24, 64, 64, np.random.default_rng(0))
    areas = [bright(frame).sum() for frame in growing]
    assert areas[-1] > 2 * areas[0]
    turning = render_motion_clip("shape turning clockwise", 24, 64, 64, np.random.default_rng(0))
    pivot = np.mean([[xs.mean(), ys.mean()] for ys, xs in (np.nonzero(bright(f)) for f in turning)], axis=0)
    angles = []
    for frame in turning:  # the apex is the bright pixel farthest from the pivot
        ys, xs = np.nonzero(bright(frame))
        far = np.argmax((xs - pivot[0]) ** 2 + (ys - pivot[1]) ** 2)
        angles.append(np.arctan2(ys[far] - pivot[1], xs[far] - pivot[0]))  # grows clockwise on screen (y down)
    assert np.mean(np.diff(np.unwrap(angles)) > 0) > 0.9


def test_independent_set_as_a_generator_option(tmp_path):
    data = make_motion_dataset(tmp_path, num_videos_per_class=1, num_val_per_class=1, num_frames=8,
                               size=(32, 32), classes=INDEPENDENT_CLASSES)
    assert data.class_names == list(INDEPENDENT_CLASSES)
    assert data.temporal_pairs == [(1, 0), (2, 3), (4, 5)] and data.static_classes == []
    assert len(read_video_list(data.train_list, num_classes=6)) == 6
