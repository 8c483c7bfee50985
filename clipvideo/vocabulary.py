"""One name per dataset, shared by the model zoo (`clipvideo models --dataset`) and the protocols
(`clipvideo zeroshot/b2n --dataset`): a user may write `k400`, `kinetics400` or `Kinetics-400`.

The zoo's registry keeps its short names (`k400`) for display; comparisons go through `canonical`.
"""

# canonical name -> other spellings (compared case-insensitively, "_" as "-")
DATASETS: dict[str, tuple[str, ...]] = {
    "kinetics400": ("k400", "kinetics-400"),
    "kinetics600": ("k600", "kinetics-600"),
    "kinetics700": ("k700", "kinetics-700"),
    "ucf101": ("ucf", "ucf-101"),
    "hmdb51": ("hmdb", "hmdb-51"),
    "ssv2": ("something-something-v2", "sthv2", "sth-sth-v2", "sthsthv2"),
    "activitynet": ("anet", "activitynet-1.3"),
    "diving48": ("diving-48",),
}

_ALIASES = {alias: name for name, aliases in DATASETS.items() for alias in aliases}


def canonical(dataset: str) -> str:
    """The canonical spelling of a dataset name (`K400` -> `kinetics400`); unknown names are
    returned lower-cased, for the caller to accept (custom) or refuse with its valid choices."""
    name = dataset.strip().lower().replace("_", "-")
    return _ALIASES.get(name, name)


def same_dataset(a: str, b: str) -> bool:
    return canonical(a) == canonical(b)
