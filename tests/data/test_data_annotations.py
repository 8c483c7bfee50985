"""List files, class-name files and tar archives, including every malformed-input error."""

import json
import os
import tarfile

import pytest

from clipvideo.data import AnnotationError, TarIndex, read_class_descriptions, read_class_names, read_video_list


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# -- video lists --------------------------------------------------------------------------------


def test_video_list_whitespace(tmp_path):
    path = write(tmp_path, "train.txt", "# comment\nabseiling/a.mp4 0\n\n  b/c d.mp4\t3  \n")
    with pytest.raises(AnnotationError):  # "b/c d.mp4" has a space: three fields
        read_video_list(path)
    path = write(tmp_path, "train.txt", "# comment\nabseiling/a.mp4 0\n\n  b/c.mp4\t3  \n")
    records = read_video_list(path)
    assert [(r.path, r.label, r.labels, r.num_frames) for r in records] == [
        ("abseiling/a.mp4", 0, (0,), None), ("b/c.mp4", 3, (3,), None)]
    assert records[1].where == f"{path}:4"


def test_video_list_with_separator(tmp_path):
    # FROSTER / PySlowFast csv; a path with spaces is fine with another separator
    path = write(tmp_path, "train.csv", "train/getting a tattoo/x.mp4,5\nhmdb/y.avi,0\n")
    records = read_video_list(path, separator=",")
    assert [(r.path, r.label) for r in records] == [("train/getting a tattoo/x.mp4", 5), ("hmdb/y.avi", 0)]


def test_rawframes_list(tmp_path):
    path = write(tmp_path, "frames.txt", "abseiling/-7kbO0v4hag_000107_000117 300 0\nb 12 4\n")
    records = read_video_list(path, rawframes=True, num_classes=5)
    assert [(r.path, r.num_frames, r.label) for r in records] == [
        ("abseiling/-7kbO0v4hag_000107_000117", 300, 0), ("b", 12, 4)]


def test_multi_label_lists(tmp_path):
    records = read_video_list(write(tmp_path, "anet.txt", "v1.mp4 3 7 9\nv2.mp4 1\n"), multi_label=True)
    assert [r.labels for r in records] == [(3, 7, 9), (1,)]
    records = read_video_list(write(tmp_path, "anetf.txt", "d1 40 2 5\n"), rawframes=True, multi_label=True)
    assert records[0].num_frames == 40 and records[0].labels == (2, 5)


@pytest.mark.parametrize(
    "text, options, message",
    [
        ("a.mp4 0\nb.mp4\n", {}, r":2: expected '<path> <label>'.*got 1 fields"),
        ("a.mp4 0\nb.mp4 1 2\n", {}, r":2: .*got 3 fields.*rawframes=True"),
        ("a.mp4 0\nb.mp4 1 2 3\n", {}, r":2: .*got 4 fields.*multi_label=True"),
        ("a.mp4 zero\n", {}, r":1: label 'zero' is not an integer"),
        ("a.mp4 -1\n", {}, r":1: label -1 is negative"),
        ("a.mp4 0\n\n# c\nb.mp4 7\n", {"num_classes": 5}, r":4: label 7 outside \[0, 5\)"),
        ("v.mp4 1 9\n", {"multi_label": True, "num_classes": 5}, r":1: label 9 outside \[0, 5\)"),
        ("d 12\n", {"rawframes": True}, r":1: expected '<dir> <num_frames> <label>'"),
        ("d many 1\n", {"rawframes": True}, r":1: frame count 'many' is not an integer"),
        ("a.mp4;1\n", {"separator": ","}, r":1: .*separated by ','"),
        ("v.mp4\n", {"multi_label": True}, r":1: expected '<path> <label> \[<label> \.\.\.\]'"),
    ],
)
def test_malformed_lines_fail_at_load_time_with_file_and_line(tmp_path, text, options, message):
    path = write(tmp_path, "list.txt", text)
    with pytest.raises(AnnotationError, match=message) as caught:
        read_video_list(path, **options)
    assert str(caught.value).startswith(f"{path}:")


def test_empty_or_missing_list(tmp_path):
    with pytest.raises(AnnotationError, match="no samples"):
        read_video_list(write(tmp_path, "empty.txt", "# nothing\n\n"))
    with pytest.raises(AnnotationError, match="not found"):
        read_video_list(tmp_path / "nope.txt")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00a.mp4 0")
    with pytest.raises(AnnotationError, match="UTF-8"):
        read_video_list(tmp_path / "binary.txt")


# -- class names --------------------------------------------------------------------------------


def test_csv_class_names_with_and_without_header(tmp_path):
    names = ["abseiling", "air drumming", "passing American football (in game)"]
    with_header = write(tmp_path, "a.csv", "id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(names)))
    without = write(tmp_path, "b.csv", "".join(f"{i},{n}\n" for i, n in enumerate(names)))
    assert read_class_names(with_header) == names == read_class_names(without)
    # ids decide the order; a name may contain commas when quoted or not
    shuffled = write(tmp_path, "c.csv", 'id,name\n2,"c, with comma"\n0,a\n1,b, also comma\n')
    assert read_class_names(shuffled) == ["a", "b, also comma", "c, with comma"]


def test_text_class_names(tmp_path):
    assert read_class_names(write(tmp_path, "labels.txt", "brush hair\ncartwheel\n\n")) == ["brush hair", "cartwheel"]


def test_json_class_names_and_descriptions(tmp_path):
    froster = write(tmp_path, "f.json", json.dumps({
        "1": "Cartwheel: A person does a cartwheel",
        "0": "Brush hair: A person is using a brush to style their hair",
    }))
    assert read_class_names(froster) == ["Brush hair", "Cartwheel"]
    assert read_class_descriptions(froster) == [
        "A person is using a brush to style their hair", "A person does a cartwheel"]
    plain = write(tmp_path, "p.json", json.dumps({"0": "brush hair", "1": "cartwheel"}))
    assert read_class_names(plain) == ["brush hair", "cartwheel"] == read_class_descriptions(plain)
    name_to_index = write(tmp_path, "n.json", json.dumps({"cartwheel": 1, "brush hair": 0}))
    assert read_class_names(name_to_index) == ["brush hair", "cartwheel"]
    evl_list = write(tmp_path, "l.json", json.dumps(["abseiling", "air drumming"]))
    assert read_class_names(evl_list) == ["abseiling", "air drumming"]
    csv_file = write(tmp_path, "d.csv", "id,name\n0,a\n")
    assert read_class_descriptions(csv_file) == ["a"]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("dup.csv", "id,name\n0,a\n0,b\n", r"dup.csv:3: class id 0 appears twice"),
        ("gap.csv", "0,a\n2,b\n", r"ids must be 0..1 without gaps; missing \[1\]"),
        ("noname.csv", "0,a\n1,\n", r"noname.csv:2: empty class name"),
        ("badid.csv", "0,a\nx,b\n", r"badid.csv:2: class id 'x' is not an integer"),
        ("onecol.csv", "0,a\n1\n", r"onecol.csv:2: expected 'id,name'"),
        ("same.csv", "0,a\n1,a\n", r"same.csv:2\]?: duplicate class name 'a' \(first at .*same.csv:1\)"),
        ("blank.txt", "a\n\nb\n", r"blank.txt:2: empty line inside"),
        ("empty.txt", "\n\n", r"no class names"),
        ("empty.csv", "id,name\n", r"no class names"),
        ("broken.json", "{not json", r"not valid JSON"),
        ("keys.json", '{"a": "x", "b": "y"}', r"expected class-index keys"),
        ("mixed.json", '{"0": "x", "1": 2}', r"expected a JSON list of names"),
        ("dupe.json", '{"0": "x", "1": "x: other text"}', r"duplicate class name 'x'"),
    ],
)
def test_bad_class_name_files(tmp_path, name, text, message):
    with pytest.raises(AnnotationError, match=message):
        read_class_names(write(tmp_path, name, text))


def test_missing_class_name_file(tmp_path):
    with pytest.raises(AnnotationError, match="not found"):
        read_class_names(tmp_path / "classes.csv")


# -- tar ----------------------------------------------------------------------------------------


def test_tar_index_reads_members_without_extracting(tmp_path):
    files = {"a.mp4": b"first" * 100, "sub/b.mp4": b"second" * 77, "x/same.mp4": b"1", "y/same.mp4": b"2"}
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    with tarfile.open(tmp_path / "videos.tar", "w") as archive:
        for name in files:
            archive.add(tmp_path / name, arcname=name)
    index = TarIndex(tmp_path / "videos.tar")
    assert len(index) == 4
    assert index.find("a.mp4") == "a.mp4" and index.read("a.mp4") == files["a.mp4"]
    # listed with a folder the tar does not have: found by basename (X-CLIP)
    assert index.find("train/k400/b.mp4") == os.path.normpath("sub/b.mp4")
    assert index.read(index.find("train/k400/b.mp4")) == files["sub/b.mp4"]
    assert index.find("x/same.mp4") == "x/same.mp4"
    assert index.find("z/same.mp4") is None  # ambiguous basename
    assert index.find("nope.mp4") is None


def test_compressed_or_missing_tar_is_an_error(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"data")
    with tarfile.open(tmp_path / "videos.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "a.mp4", arcname="a.mp4")
    with pytest.raises(AnnotationError, match="not an uncompressed tar"):
        TarIndex(tmp_path / "videos.tar.gz")
    with pytest.raises(AnnotationError, match="not found"):
        TarIndex(tmp_path / "none.tar")


def test_hmdb_names_starting_with_a_hash_are_videos_not_comments(tmp_path):
    # HMDB-51 has videos named "#20_Rhythm_clap_..."; only "# ..." (hash, space) is a comment.
    path = write(tmp_path, "hmdb.txt", "# a comment\n#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi 3\nb.avi 1\n#\n")
    records = read_video_list(path)
    assert [(r.path, r.label) for r in records] == [("#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi", 3), ("b.avi", 1)]
