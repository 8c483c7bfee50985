"""Every shipped protocol file: class counts, base/novel disjointness, shots per class, provenance."""

import re
from collections import Counter
from pathlib import Path

import pytest

from clipvideo import protocols
from clipvideo.data import read_class_names, read_video_list

ROOT = protocols.ROOT

FULL = {"kinetics400": 400, "kinetics600": 600, "ucf101": 101, "hmdb51": 51, "ssv2": 174, "activitynet": 200}
B2N = {"kinetics400": (200, 200), "hmdb51": (26, 25), "ucf101": (51, 50), "ssv2": (87, 87)}
# Published sizes of the B2N test lists (FROSTER / ViFi-CLIP: base val, novel val) and of the UCF/HMDB test splits.
B2N_TEST_VIDEOS = {"hmdb51": (780, 750), "ucf101": (2088, 1695), "ssv2": (17562, 7215)}
TEST_SPLIT_VIDEOS = {"ucf101": (3783, 3734, 3696), "hmdb51": (1530, 1530, 1530)}


def per_class(list_file) -> Counter:
    return Counter(r.label for r in read_video_list(list_file))


@pytest.mark.parametrize("dataset, count", sorted(FULL.items()))
def test_full_vocabularies(dataset, count):
    assert len(read_class_names(protocols.class_file(dataset))) == count


def test_kinetics600_new_classes_and_the_three_subsets_of_160():
    k400 = set(read_class_names(protocols.class_file("kinetics400")))
    k600 = set(read_class_names(protocols.class_file("kinetics600")))
    new = read_class_names(ROOT / "kinetics600/new220_classes.csv")
    assert len(new) == len(set(new)) == 220
    assert set(new) <= k600 and not set(new) & k400
    for s in (1, 2, 3):
        subset = read_class_names(ROOT / f"kinetics600/zs_split{s}_classes.csv")
        assert len(subset) == 160 and set(subset) <= set(new)
        counts = per_class(ROOT / f"kinetics600/zs_split{s}_test.txt")
        assert sorted(counts) == list(range(160))  # every class has test videos, no label outside the subset
    subsets = [set(read_class_names(ROOT / f"kinetics600/zs_split{s}_classes.csv")) for s in (1, 2, 3)]
    assert len({frozenset(x) for x in subsets}) == 3  # three different draws


@pytest.mark.parametrize("dataset", sorted(B2N))
def test_base_to_novel_split(dataset):
    spec = protocols.base_to_novel(dataset)
    base, novel = read_class_names(spec.base_classes), read_class_names(spec.novel_classes)
    assert (len(base), len(novel)) == B2N[dataset]
    assert not set(base) & set(novel)
    full = {n.lower() for n in read_class_names(protocols.class_file(dataset))}
    assert {n.lower() for n in base + novel} == full  # the halves partition the vocabulary
    trains = []
    for train in spec.train_lists:
        counts = per_class(train)
        assert sorted(counts) == list(range(len(base)))
        assert set(counts.values()) == {16}  # 16 clips per base class
        trains.append({r.path for r in read_video_list(train)})
    assert len({frozenset(t) for t in trains}) == 3  # three different training draws
    base_test, novel_test = per_class(spec.base_test), per_class(spec.novel_test)
    assert sorted(base_test) == list(range(len(base))) and sorted(novel_test) == list(range(len(novel)))
    if dataset in B2N_TEST_VIDEOS:
        assert (sum(base_test.values()), sum(novel_test.values())) == B2N_TEST_VIDEOS[dataset]
    test_paths = {r.path for r in read_video_list(spec.base_test)}
    assert not trains[0] & test_paths  # no training clip is tested


@pytest.mark.parametrize("dataset", sorted(TEST_SPLIT_VIDEOS))
def test_official_test_splits(dataset):
    spec = protocols.zero_shot_dataset(dataset)
    sizes = []
    for split in spec.splits:
        counts = per_class(split.list_file)
        assert sorted(counts) == list(range(FULL[dataset]))
        sizes.append(sum(counts.values()))
    assert tuple(sizes) == TEST_SPLIT_VIDEOS[dataset]


@pytest.mark.parametrize("dataset, num_classes", [("ucf101", 101), ("hmdb51", 51), ("ssv2", 174)])
@pytest.mark.parametrize("shots", [2, 4, 8, 16])
def test_vifi_few_shot_lists(dataset, num_classes, shots):
    counts = per_class(ROOT / f"{dataset}/fewshot_vifi_k{shots}.txt")
    assert sorted(counts) == list(range(num_classes)) and set(counts.values()) == {shots}


DESCRIBED = [("kinetics400", "classes/kinetics400.csv"), ("kinetics600", "classes/kinetics600.csv"),
             ("ucf101", "classes/ucf101.csv"), ("hmdb51", "classes/hmdb51.csv")]
DESCRIBED += [(f"kinetics600_zs_split{s}", f"kinetics600/zs_split{s}_classes.csv") for s in (1, 2, 3)]
DESCRIBED += [(f"b2n_{d}_{half}", f"b2n/{d}/{half}_classes.csv") for d in B2N for half in ("base", "novel")]


@pytest.mark.parametrize("source, class_file", DESCRIBED)
def test_every_class_has_a_froster_description(source, class_file):
    names = read_class_names(ROOT / class_file)
    texts = protocols.descriptions(names, source)
    assert len(texts) == len(names) and all(len(t) > 10 for t in texts)


def test_descriptions_follow_the_name_not_the_position():
    names = read_class_names(ROOT / "classes/hmdb51.csv")
    texts = protocols.descriptions(names[::-1], "hmdb51")
    assert texts == protocols.descriptions(names, "hmdb51")[::-1]
    assert "hair" in texts[-1].lower()  # names[0] is "brush hair"


def test_every_shipped_file_has_provenance_and_the_folder_stays_small():
    provenance = (ROOT / "PROVENANCE.md").read_text()
    listed = set(re.findall(r"^\| `([^`]+)` \| [^|]+ \| `[^`]+` \| `[0-9a-f]{12}` \|", provenance, flags=re.MULTILINE))
    shipped = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.suffix in (".csv", ".txt", ".json")}
    assert shipped == listed
    assert sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file()) < 10 * 2**20


def test_package_data_covers_every_shipped_file():
    import tomllib

    patterns = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    globs = [g for g in patterns["tool"]["setuptools"]["package-data"]["clipvideo"] if g.startswith("protocols/")]
    covered = {str(p.relative_to(ROOT.parent)) for g in globs for p in ROOT.parent.glob(g)}
    shipped = {str(p.relative_to(ROOT.parent)) for p in ROOT.rglob("*") if p.is_file() and p.suffix != ".py"
               and "__pycache__" not in p.parts}
    assert shipped <= covered


def test_unknown_names_are_one_line_errors():
    for call in (lambda: protocols.class_file("kinetics700"), lambda: protocols.zero_shot_dataset("ssv3"),
                 lambda: protocols.base_to_novel("activitynet"), lambda: protocols.path("nope.txt"),
                 lambda: protocols.descriptions(["brush hair"], "nope"),
                 lambda: protocols.descriptions(["not a class"], "hmdb51")):
        with pytest.raises(protocols.ProtocolError) as info:
            call()
        assert "\n" not in str(info.value)
