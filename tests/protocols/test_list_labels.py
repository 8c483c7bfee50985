"""Every shipped UCF-101 / HMDB-51 list labels each video with the class its file name carries.

UCF-101 names videos ``v_<ClassName>_gXX_cYY.avi``; HMDB-51 ``<title>_<class>_<body>_<camera>_np<N>_
<view>_<quality>_<n>.avi`` (the class with underscores, the title free text). A class file whose names
are shifted against the lists (the upstream HMDB swap of kick/kick ball and sword/sword exercise)
scores those videos against the wrong text, which no count check notices.
"""

import re
from collections import Counter

import pytest

from clipvideo import protocols
from clipvideo.data import read_class_names, read_video_list

ROOT = protocols.ROOT
HMDB_TAGS = re.compile(r"_[abfhul]_(cm|nm)_np\d+_(ba|fr|le|ri)_(bad|goo|med)_\d+\.avi$")


def squeeze(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def ucf_class(path: str) -> str:
    return squeeze(path.rsplit("/", 1)[-1].split("_")[1])


def hmdb_class(path: str, vocabulary: list[str]) -> str:
    """The longest class name the file name ends with ("draw_sword" also ends with "_sword")."""
    stem = HMDB_TAGS.sub("", path.rsplit("/", 1)[-1]).lower()
    assert stem != path.rsplit("/", 1)[-1].lower(), f"{path}: not an HMDB-51 file name"
    found = [name for name in vocabulary if stem.endswith("_" + name.replace(" ", "_").lower())]
    assert found, f"{path}: no HMDB-51 class at the end of the file name"
    return squeeze(max(found, key=len))


def shipped_lists(dataset: str) -> list[tuple[str, str]]:
    """(list, class file its labels index) for every shipped list of the dataset."""
    full = f"classes/{dataset}.csv"
    pairs = [(f"{dataset}/test_split{s}.txt", full) for s in (1, 2, 3)]
    pairs += [(f"{dataset}/fewshot_vifi_k{k}.txt", full) for k in (2, 4, 8, 16)]
    b2n = f"b2n/{dataset}"
    pairs += [(f"{b2n}/{name}", f"{b2n}/base_classes.csv") for name in ("train_s1.txt", "train_s2.txt", "train_s3.txt",
                                                                          "base_test.txt")]
    pairs.append((f"{b2n}/novel_test.txt", f"{b2n}/novel_classes.csv"))
    return pairs


def mismatches(list_file: str, class_file: str, dataset: str) -> Counter:
    names = read_class_names(ROOT / class_file)
    vocabulary = read_class_names(ROOT / "classes/hmdb51.csv") if dataset == "hmdb51" else None
    wrong = Counter()
    for record in read_video_list(ROOT / list_file):
        named = ucf_class(record.path) if dataset == "ucf101" else hmdb_class(record.path, vocabulary)
        if named != squeeze(names[record.label]):
            wrong[(names[record.label], named)] += 1
    return wrong


def test_every_ucf_and_hmdb_list_is_covered():
    listed = {lst for dataset in ("ucf101", "hmdb51") for lst, _ in shipped_lists(dataset)}
    shipped = {str(p.relative_to(ROOT)) for d in ("ucf101", "hmdb51", "b2n/ucf101", "b2n/hmdb51")
               for p in (ROOT / d).glob("*.txt")}
    assert listed == shipped


@pytest.mark.parametrize("dataset, list_file, class_file",
                         [(d, lst, cls) for d in ("ucf101", "hmdb51") for lst, cls in shipped_lists(d)])
def test_labels_match_the_class_in_each_file_name(dataset, list_file, class_file):
    assert not mismatches(list_file, class_file, dataset), f"{list_file}: labels disagree with {class_file}"


def test_upstream_hmdb_order_is_kept_and_differs_only_by_the_two_swaps():
    corrected = read_class_names(ROOT / "classes/hmdb51.csv")
    upstream = read_class_names(ROOT / "classes/hmdb51_upstream.csv")
    assert corrected == sorted(corrected)  # the official alphabetical order
    differ = [i for i, (a, b) in enumerate(zip(corrected, upstream)) if a != b]
    assert differ == [20, 21, 44, 45] and sorted(upstream) == corrected
    # With the upstream file the test split's kick / sword videos are scored against the other class's text.
    wrong = mismatches("hmdb51/test_split1.txt", "classes/hmdb51_upstream.csv", "hmdb51")
    assert {pair for pair in wrong} >= {("kick ball", "kick"), ("sword exercise", "sword")}
    for half in ("base", "novel"):
        ours = read_class_names(ROOT / f"b2n/hmdb51/{half}_classes.csv")
        theirs = read_class_names(ROOT / f"b2n/hmdb51/{half}_classes_upstream.csv")
        assert sorted(ours) == sorted(theirs) and ours != theirs
