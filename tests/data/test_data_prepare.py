"""`clipvideo prepare` and the store-backed loader: validation report, frames within codec error,
the store's GOP structure and packet decoding, resume after interruption, shards that merge into
the same store, bad store entries."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from clipvideo.data import decode_frames, open_video, video_num_frames
from clipvideo.data.packets import KEY, REFERENCE, PacketDecoder, read_packet_table
from clipvideo.data.prepare import (
    StoreError,
    StoreSettings,
    merge_store,
    open_store,
    output_size,
    prepare_store,
    resolve_shard,
)
from clipvideo.engine.config import ConfigError, DataConfig
from clipvideo.engine.config import TestConfig as ViewsConfig
from clipvideo.engine.data import build_eval_dataset, build_train_dataset

SETTINGS = StoreSettings(short_side=48)  # the test videos are 64x48: no resize, frames comparable


@pytest.fixture
def source(motion, videos, tmp_path):
    """The motion training list plus a missing file and a file of random bytes (both listed)."""
    lines = Path(motion.train_list).read_text().splitlines()[:6]
    root = Path(motion.root)
    (root / "not_a_video.mp4").write_bytes(np.random.default_rng(1).bytes(2000))
    lines += ["does_not_exist.mp4 0", "not_a_video.mp4 1"]
    path = tmp_path / "list.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, root


def _manifest(store: Path) -> list[dict]:
    return [json.loads(line) for line in (store / "manifest.jsonl").read_text().splitlines()]


def test_prepare_reports_failures_and_keeps_every_frame(source, tmp_path):
    list_file, root = source
    store = tmp_path / "store"
    summary = prepare_store(str(list_file), str(store), root=str(root), settings=SETTINGS, progress=False)
    report = summary["store"]
    assert (report["prepared"], report["failed"], report["listed"], report["missing"]) == (6, 2, 8, 0)
    failures = (store / "failures.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in failures] == ["does_not_exist.mp4", "not_a_video.mp4"]
    assert json.loads((store / "report.json").read_text())["failed"] == 2
    records = _manifest(store)
    assert [r["index"] for r in records] == list(range(8))  # list order, failures included
    for record in records[:6]:
        original = root / record["path"]
        stored = store / "videos" / record["path"]
        n = video_num_frames(str(original))
        assert record["frames"] == n == video_num_frames(str(stored))  # frame i stays frame i
        a = decode_frames(str(original), list(range(n))).float()
        b = decode_frames(str(stored), list(range(n))).float()
        error = (a - b).abs().mean(dim=(1, 2, 3))  # per frame, in 0..255 levels
        assert error.max() < 6.0, f"{record['path']}: codec error {error.max():.2f} levels"
        # The same frame, not a neighbour: a moving shape makes neighbours differ far more.
        neighbour = (a[1:] - b[:-1]).abs().mean(dim=(1, 2, 3))
        assert (error[:-1] < neighbour).all()
    assert open_store(store)["settings"]["gop"] == 16


@pytest.fixture(scope="module")
def long_store(videos, tmp_path_factory):
    """A store of the 300-frame and 96-frame test videos (several GOPs each)."""
    root = tmp_path_factory.mktemp("long_store")
    (root / "list.txt").write_text(f"{videos.default_gop.name} 0\n{videos.short_gop.name} 1\n")
    prepare_store(str(root / "list.txt"), str(root / "store"), root=str(videos.root), settings=SETTINGS,
                  progress=False)
    return root / "store" / "videos"


def test_store_videos_have_the_gop_structure_the_packet_decoder_relies_on(long_store):
    table = read_packet_table(long_store / "default_gop.mp4")
    assert table.num_frames == 300
    frame_pts = np.sort(table.pts)
    display = np.searchsorted(frame_pts, table.pts)  # display position of each packet, in decode order
    key = (table.flags & KEY).astype(bool)
    reference = (table.flags & REFERENCE).astype(bool)
    # a keyframe exactly every 16 frames (the source's own I/B types are not carried over)
    assert sorted(display[key].tolist()) == list(range(0, 300, 16))
    # per GOP of 16: the keyframe and one P anchor are references, the 14 B-frames are not
    assert reference.sum() == 2 * len(range(0, 300, 16)) - (300 % 16 == 1)
    decoder = PacketDecoder(long_store / "default_gop.mp4", table)
    assert max(len(decoder.packets_for([frame])) for frame in range(300)) == 3
    assert len(decoder.packets_for([160])) == 1  # a keyframe alone


def test_store_backend_returns_exactly_the_frames_of_a_full_decode(long_store):
    rng = np.random.default_rng(0)
    for name in ("default_gop.mp4", "short_gop.mp4"):
        path = long_store / name
        reference = open_video(path, "pyav_all")
        store = open_video(path, "store")
        assert store.num_frames == reference.num_frames and store.fps == 30.0
        picks = [[0], [reference.num_frames - 1], list(range(0, reference.num_frames, 16))]
        picks += [rng.integers(0, reference.num_frames, int(rng.integers(1, 12))).tolist() for _ in range(15)]
        for indices in picks:  # any order, repeats allowed, across GOPs
            assert torch.equal(store.get_frames(indices), reference.get_frames(indices)), indices


def test_damaged_store_files_raise_a_decode_error_naming_the_file(long_store, tmp_path):
    from clipvideo.data import VideoDecodeError

    copy = tmp_path / "v.mp4"
    data = (long_store / "default_gop.mp4").read_bytes()
    table_text = (long_store / "default_gop.mp4.packets").read_text()

    def damaged(video: bytes, table: str | None):
        copy.write_bytes(video)
        (tmp_path / "v.mp4.packets").unlink(missing_ok=True)
        if table is not None:
            (tmp_path / "v.mp4.packets").write_text(table)
        with pytest.raises(VideoDecodeError) as info:
            open_video(copy, "store").get_frames(list(range(0, 300, 10)))
        assert str(copy) in str(info.value) and "\n" not in str(info.value)
        return info.value

    table = read_packet_table(long_store / "default_gop.mp4")
    flipped = bytearray(data)
    flipped[int(table.position[0] + table.size[0] // 2)] ^= 0xFF  # same size, one byte of frame 0 changed
    assert "CRC" in str(damaged(bytes(flipped), table_text))
    assert damaged(data[:-100], table_text).reason == "truncated"
    assert "no .packets table" in str(damaged(data, None))
    assert "damaged .packets table" in str(damaged(data, table_text[: len(table_text) // 2]))
    with pytest.raises(VideoDecodeError, match="missing file"):
        open_video(tmp_path / "nothing.mp4", "store")


def test_a_store_of_an_older_version_is_refused_with_what_to_do(long_store):
    meta = json.loads((long_store.parent / "store.json").read_text())
    old = long_store.parent.parent / "old_store"
    old.mkdir(exist_ok=True)
    (old / "store.json").write_text(json.dumps({**meta, "version": 1}))
    with pytest.raises(StoreError, match=r"store version 1.*prepare the videos again"):
        open_store(old)


def test_output_size_keeps_aspect_and_even_sizes():
    assert output_size(340, 256, 256) == (340, 256)
    assert output_size(640, 360, 256) == (456, 256)
    assert output_size(360, 640, 256) == (256, 456)
    assert output_size(101, 75, 49) == (66, 48)  # an odd short side rounds to even (yuv420p)


def test_interrupted_prepare_resumes_without_redoing_finished_videos(source, tmp_path):
    list_file, root = source
    store = tmp_path / "store"
    done = []

    def stop_after_three(record):
        done.append(record.path)
        if len(done) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_store(str(list_file), str(store), root=str(root), settings=SETTINGS, progress=False,
                      on_record=stop_after_three)
    assert len((store / "parts" / "part-0-of-1.jsonl").read_text().splitlines()) == 3
    first = {p: (store / "videos" / p).stat().st_mtime_ns for p in done}
    summary = prepare_store(str(list_file), str(store), root=str(root), settings=SETTINGS, progress=False)
    assert summary["skipped_already_done"] == 3 and summary["videos"] == 5
    assert {p: (store / "videos" / p).stat().st_mtime_ns for p in done} == first  # not re-encoded
    assert [r["index"] for r in _manifest(store)] == list(range(8))
    # Different settings into the same store are refused rather than mixed.
    with pytest.raises(StoreError, match="prepared with"):
        prepare_store(str(list_file), str(store), root=str(root), settings=StoreSettings(short_side=48, gop=8),
                      progress=False)


def test_shards_merge_into_the_same_store_as_one_run(source, tmp_path):
    list_file, root = source
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    prepare_store(str(list_file), str(whole), root=str(root), settings=SETTINGS, progress=False)
    for k in range(3):
        summary = prepare_store(str(list_file), str(sharded), root=str(root), settings=SETTINGS, progress=False,
                                shard=(k, 3))
        assert "store" not in summary  # sharded runs wait for the merge
    report = merge_store(sharded)
    assert report["missing"] == 0
    assert _manifest(sharded) == _manifest(whole)
    for record in _manifest(whole)[:6]:
        assert (sharded / "videos" / record["path"]).read_bytes() == (whole / "videos" / record["path"]).read_bytes()


def test_shard_auto_reads_torchrun_and_slurm_array_environments():
    assert resolve_shard(None, {}) == (0, 1, "")
    assert resolve_shard("2/5", {}) == (2, 5, "")
    assert resolve_shard("auto", {"RANK": "3", "WORLD_SIZE": "4"}) == (3, 4, "torchrun")
    assert resolve_shard(None, {"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2, "torchrun")  # torchrun without --shard
    slurm = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "8"}
    assert resolve_shard("auto", slurm) == (2, 8, "slurm")
    with pytest.raises(StoreError, match=r"--shard auto: no torchrun .* give --shard K/N"):
        resolve_shard("auto", {})
    with pytest.raises(StoreError, match=r"--shard '1-4': expected K/N"):
        resolve_shard("1-4", {})


def test_one_torchrun_launch_prepares_and_merges_the_whole_store(source, tmp_path):
    list_file, root = source
    whole = tmp_path / "whole"
    prepare_store(str(list_file), str(whole), root=str(root), settings=SETTINGS, progress=False)
    launched = tmp_path / "launched"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "clipvideo",
               "prepare", str(list_file), "--root", str(root), "--out", str(launched), "--short-side", "48",
               "--workers", "1", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert result.returncode != 0  # the two listed bad videos fail (exit 1), the rest is prepared
    assert sorted(p.name for p in (launched / "parts").iterdir()) == ["part-0-of-2.jsonl", "part-1-of-2.jsonl"]
    assert _manifest(launched) == _manifest(whole)  # merged by the first process, same as one run
    assert json.loads((launched / "report.json").read_text())["missing"] == 0
    for record in _manifest(whole)[:6]:
        assert (launched / "videos" / record["path"]).read_bytes() == (whole / "videos" / record["path"]).read_bytes()


def _data(motion, store: Path) -> DataConfig:
    return DataConfig(store=str(store), train_list=motion.train_list, val_list=motion.train_list, num_frames=4,
                      sampling="segment", input_size=32, short_side=48, flip=False, num_workers=0,
                      index_cache_dir=None)


def test_loader_reads_the_store_with_the_same_lists(motion, tmp_path):
    store = tmp_path / "store"
    prepare_store(motion.train_list, str(store), root=motion.root, settings=SETTINGS, progress=False)
    data = _data(motion, store)
    from_store = build_eval_dataset(data, ViewsConfig(num_clips=2))
    data_orig = DataConfig(**{**data.__dict__, "store": "", "root": motion.root})
    from_videos = build_eval_dataset(data_orig, ViewsConfig(num_clips=2))
    assert len(from_store) == len(from_videos)
    for i in range(3):
        a, b = from_store[i], from_videos[i]
        assert a[1] == b[1] and a[3] and b[3]
        # Normalised pixels: CLIP std ~0.27, so 0.1 is ~7 levels of 255.
        assert (a[0] - b[0]).abs().mean() < 0.1
    train = build_train_dataset(data)
    assert train[0][0].shape == (4, 3, 32, 32)
    assert train.bad_video_count() == 0


def test_a_corrupt_store_entry_is_reported_and_skipped_like_a_bad_video(motion, tmp_path, caplog):
    store = tmp_path / "store"
    prepare_store(motion.train_list, str(store), root=motion.root, settings=SETTINGS, progress=False)
    first = _manifest(store)[0]["path"]
    target = store / "videos" / first
    target.write_bytes(target.read_bytes()[:300])  # damaged after preparation
    data = _data(motion, store)
    evaluation = build_eval_dataset(data, ViewsConfig())
    views, label, index, valid = evaluation[0]
    assert not valid and evaluation.bad_video_count() == 1
    assert first in evaluation.bad_videos[0][0]
    train = build_train_dataset(data)
    clip, _, used = train[0]  # replaced by another video, and counted
    assert used != 0 and clip.shape == (4, 3, 32, 32) and train.bad_video_count() == 1


def test_data_store_that_is_not_a_store_is_a_config_error(motion, tmp_path):
    with pytest.raises(ConfigError, match=r"data.store: .*not a clipvideo store.*clipvideo prepare"):
        build_train_dataset(_data(motion, tmp_path))


class Result:
    def __init__(self, code, out, err):
        self.returncode, self.stdout, self.stderr = code, out, err


@pytest.fixture
def cli(capsys):
    """Run `clipvideo ARGS` in this process (the same main() the console script calls)."""
    from clipvideo.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def test_prepare_cli_exit_codes_and_one_line_errors(source, tmp_path, cli):
    list_file, root = source
    out = cli("prepare", str(list_file), "--root", str(root), "--out", str(tmp_path / "s"), "--short-side", "48",
               "--workers", "1", "--json")
    assert out.returncode == 1, out.stderr  # two listed videos failed
    assert json.loads(out.stdout)["store"]["failed"] == 2
    bad = cli("prepare", str(list_file), "--out", str(tmp_path / "t"), "--shard", "2of3")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--shard" in bad.stderr
    bad = cli("prepare", str(list_file), "--out", str(tmp_path / "t"), "--shard", "3/3")
    assert bad.returncode == 2 and "0 <= K < N" in bad.stderr
    for flag, value in (("--gop", "0"), ("--crf", "60"), ("--short-side", "1"), ("--preset", "quick")):
        bad = cli("prepare", str(list_file), "--root", str(root), "--out", str(tmp_path / "v"), flag, value)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and flag in bad.stderr, (flag, bad.stderr)
        assert not (tmp_path / "v").exists()  # refused before anything was written
    missing = cli("prepare", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "u"))
    assert missing.returncode == 2 and "nope.txt" in missing.stderr and "Traceback" not in missing.stderr


def test_training_and_testing_from_a_store_with_dataloader_workers(motion, tmp_path, cli):
    store = tmp_path / "store"
    prepare_store(motion.train_list, str(store), root=motion.root, settings=SETTINGS, progress=False)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "method: frozen\nmodel: {backbone: {arch: tiny, image_resolution: 32}, num_frames: 4, classifier: linear}\n"
        f"data: {{store: {store}, train_list: {motion.train_list}, val_list: {motion.train_list}, "
        f"class_names: {motion.class_names_file}, num_frames: 4, sampling: segment, input_size: 32, short_side: 32, "
        "num_workers: 1}\n"
        f"train: {{batch_size: 4, epochs: 1, precision: fp32}}\noutput_dir: {tmp_path / 'run'}\n"
    )
    out = cli("train", str(recipe))
    assert out.returncode == 0, out.stderr
    # the store's videos went through a DataLoader worker (the packet decoder pickled into it) and none failed
    result = cli("test", "--checkpoint", str(tmp_path / "run" / "model.pt"), "--list", motion.train_list,
                 "--set", f"data.store={store}", "data.num_workers=1")
    assert result.returncode == 0, result.stderr
    listed = len(Path(motion.train_list).read_text().splitlines())
    assert f"on {listed} videos (0 unreadable" in result.stdout, result.stdout


def test_bench_cli_reports_data_model_and_train_rows(motion, tmp_path, cli):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "method: frozen\nmodel: {backbone: {arch: tiny, image_resolution: 32}, num_frames: 4, classifier: linear}\n"
        f"data: {{root: {motion.root}, train_list: {motion.train_list}, class_names: {motion.class_names_file}, "
        "num_frames: 4, sampling: segment, input_size: 32, short_side: 32, num_workers: 0}\n"
        "train: {batch_size: 2, precision: fp32}\n"
    )
    for what, key in (("data", "clips_per_cpu_s"), ("model", "ms_per_batch"), ("train", "s_per_step")):
        out = cli("bench", what, str(recipe), "--json", "--clips", "4", "--repeats", "1")
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["rows"] and all(row[key] > 0 for row in result["rows"])
        assert set(result["environment"]) >= {"load_average_1min", "threads"}
        if what == "data":
            assert result["rows"][0]["clip_shape"] == [4, 3, 32, 32]
        if what == "model":
            assert [r["row"].split("(")[1].split(",")[0] for r in result["rows"]] == ["fp32", "bf16"]
    table = cli("bench", "train", str(recipe), "--repeats", "1")
    assert table.returncode == 0 and "| train step (fp32, batch 2) |" in table.stdout and "machine: load average" in table.stdout
