"""Build the datasets and the batch collate step of a run from its `data:` / `test:` sections."""

from pathlib import Path

from .. import data as video_data
from ..methods.base import ClassVocabulary
from .config import ConfigError, DataConfig, TestConfig

NORMALIZATION = {
    "clip": (video_data.CLIP_MEAN, video_data.CLIP_STD),
    "imagenet": (video_data.IMAGENET_MEAN, video_data.IMAGENET_STD),
    # AIM's configs: CLIP's statistics x 255 as written there (third mean 104.04, not 104.09).
    "aim": ((122.769 / 255, 116.74 / 255, 104.04 / 255), (68.493 / 255, 66.63 / 255, 70.321 / 255)),
}


def normalization(data: DataConfig) -> tuple:
    if data.normalization not in NORMALIZATION:
        raise ConfigError(f"data.normalization: expected one of {sorted(NORMALIZATION)}, got {data.normalization!r}")
    return NORMALIZATION[data.normalization]


def read_classes(data: DataConfig) -> list[str] | None:
    return video_data.read_class_names(data.class_names) if data.class_names else None


def read_vocabulary(data: DataConfig) -> ClassVocabulary | None:
    """The class file's names with their descriptions, for text methods (every method gets them and
    uses what it needs): FROSTER's JSON carries its own; data.class_descriptions matches shipped or
    given descriptions to the names by name (so the class file can follow the list's label order)."""
    if not data.class_names:
        return None
    vocabulary = read_class_vocabulary(data.class_names)
    if data.class_descriptions:
        from .. import protocols

        return ClassVocabulary(vocabulary.names, tuple(protocols.descriptions(list(vocabulary.names),
                                                                              data.class_descriptions)))
    return vocabulary


def read_class_vocabulary(path) -> ClassVocabulary:
    """A class file (CSV, JSON, text; see data.annotations) as a ClassVocabulary."""
    names = video_data.read_class_names(path)
    return ClassVocabulary(tuple(names), tuple(video_data.read_class_descriptions(path)))


def folder_dataset(data: DataConfig, out_dir: str | Path, write: bool = True) -> list[str]:
    """A class-folder dataset (data.root=FOLDER/<class>/<videos>, no lists) as lists in out_dir/folder_lists.

    Fills data.train_list, val_list, class_names and separator so the run (and its saved config and
    model files) reads them like any list. `write=False` only fills the paths (the other processes
    of a torchrun job, after the main one wrote them). Returns the lines to show the user once.
    """
    if data.dummy or data.store or data.train_list or data.val_list or not data.root:
        return []
    if not video_data.folders.is_class_folder_dataset(data.root):
        return []
    if data.class_names:
        raise ConfigError("data.class_names: a class-folder dataset takes its classes from the folder names; leave "
                          "it empty, or write lists with `clipvideo lists` and set data.train_list/val_list")
    out = Path(out_dir) / "folder_lists"
    lines = []
    if write:
        try:
            lists = video_data.folders.write_lists(data.root, out, data.val_fraction, data.split_seed)
        except video_data.folders.FolderDatasetError as error:
            raise ConfigError(f"data.root: {error}") from None
        lines = video_data.folders.report(lists)
    data.train_list, data.val_list = str(out / "train.txt"), str(out / "val.txt")
    data.class_names, data.separator = str(out / "classes.csv"), video_data.folders.SEPARATOR
    return lines


def _num_classes(data: DataConfig, class_names) -> int | None:
    return data.num_classes or (len(class_names) if class_names else None)


def _video_root(data: DataConfig) -> tuple[str, str | None, str]:
    """(folder the listed paths are under, keyframe-index folder, backend): the prepared store, read
    packet by packet, when data.store is set."""
    if not data.store:
        return data.root, data.index_cache_dir, data.backend
    from ..data.prepare import StoreError, open_store

    try:
        open_store(data.store)
    except StoreError as error:
        raise ConfigError(f"data.store: {error}") from None
    return str(Path(data.store) / "videos"), None, "store"


def check_sampling(data: DataConfig) -> None:
    """data.sampling / data.sampling_protocol: a pair the protocol defines, or a ConfigError."""
    protocols = video_data.PROTOCOLS
    if data.sampling not in video_data.sampling.SAMPLINGS:
        raise ConfigError(f"data.sampling: expected 'dense' or 'segment', got {data.sampling!r}")
    if data.sampling_protocol not in protocols:
        raise ConfigError(f"data.sampling_protocol: expected one of {', '.join(protocols)}, got {data.sampling_protocol!r}")
    if data.sampling not in protocols[data.sampling_protocol]:
        raise ConfigError(
            f"data.sampling_protocol: {data.sampling_protocol!r} defines {' and '.join(protocols[data.sampling_protocol])} "
            f"sampling only, but data.sampling is {data.sampling!r}; change one of them (docs/data.md)"
        )


def _list_options(data: DataConfig) -> dict:
    check_sampling(data)
    root, index_dir, backend = _video_root(data)
    return dict(
        data_root=root,
        num_frames=data.num_frames,
        sampling=data.sampling,
        frame_stride=data.frame_stride,
        backend=backend,
        rawframes=data.format == "rawframes",
        filename_template=data.filename_template,
        start_index=data.start_index,
        separator=data.separator,
        tar_path=data.tar_path,
        out_of_bounds=data.out_of_bounds,
        index_cache_dir=index_dir,
        multi_label=data.multi_label,
        sampling_protocol=data.sampling_protocol,
    )


def train_short_side(data: DataConfig) -> list[int]:
    """data.train_short_side checked: [] (no resize), [S] or [low, high] (random per clip)."""
    sides = list(data.train_short_side)
    if len(sides) > 2 or any(side <= 0 for side in sides) or (len(sides) == 2 and sides[0] > sides[1]):
        raise ConfigError(
            f"data.train_short_side: expected [] (no resize), [S] or [low, high] with 0 < low <= high, got {sides}"
        )
    return sides


def train_crop(data: DataConfig) -> str:
    if data.train_crop not in video_data.transforms.TRAIN_CROPS:
        raise ConfigError(
            f"data.train_crop: expected one of {', '.join(video_data.transforms.TRAIN_CROPS)}, got {data.train_crop!r}"
        )
    return data.train_crop


def eval_short_side(data: DataConfig, test: TestConfig, for_test: bool = False) -> int:
    """The evaluation short side: test.short_side for `clipvideo test` when set, else data.short_side."""
    key, side = ("test.short_side", test.short_side) if for_test and test.short_side else ("data.short_side", data.short_side)
    if side < data.input_size:
        raise ConfigError(f"{key}: {side} is smaller than data.input_size {data.input_size}; the crop would not fit")
    return side


AUGMENT_ON = ("worker", "device")


def _train_transform(data: DataConfig):
    if data.augment_on not in AUGMENT_ON:
        raise ConfigError(f"data.augment_on: expected one of {', '.join(AUGMENT_ON)}, got {data.augment_on!r}")
    mean, std = normalization(data)
    return video_data.build_train_transform(
        size=data.input_size, scale=tuple(data.scale), short_side=train_short_side(data), crop=train_crop(data),
        flip=data.flip, color_jitter=data.color_jitter, grayscale=data.grayscale, randaugment=data.randaugment,
        mean=mean, std=std, on_device=data.augment_on == "device",
    )


def batch_augment(data: DataConfig):
    """data.augment_on=device: the BatchAugment the training loop applies to each uint8 batch; else None."""
    if data.augment_on != "device" or data.dummy:
        return None
    return _train_transform(data)[1]


def build_train_dataset(data: DataConfig, class_names=None):
    if data.format not in ("video", "rawframes"):
        raise ConfigError(f"data.format: expected 'video' or 'rawframes', got {data.format!r}")
    transform = _train_transform(data)  # every transform setting checked, dummy data too
    num_classes = _num_classes(data, class_names)
    check_sampling(data)
    if data.dummy:
        return video_data.DummyVideoDataset(data.dummy_length, data.num_frames, data.input_size, num_classes or 2)
    if not data.train_list:
        raise ConfigError("data.train_list is empty: set it to your training list (or data.dummy=true)")
    if not Path(data.train_list).is_file():
        raise ConfigError(f"data.train_list: {data.train_list} does not exist")
    if data.augment_on == "device":
        transform = transform[0]  # resize and crop only: uint8 clips to the main process
    return video_data.VideoClipDataset(
        data.train_list, transform=transform, num_classes=num_classes, train=True, **_list_options(data)
    )


def build_eval_dataset(data: DataConfig, test: TestConfig, class_names=None, list_file: str | None = None,
                       for_test: bool = False):
    """Validation views (data.short_side), or with `for_test` the `clipvideo test` views (test.short_side)."""
    mean, std = normalization(data)
    num_classes = _num_classes(data, class_names)
    if data.dummy:
        return video_data.DummyVideoDataset(
            data.dummy_length, data.num_frames, data.input_size, num_classes or 2,
            num_views=test.num_clips * test.num_crops,
        )
    list_file = list_file or data.val_list
    if not list_file:
        raise ConfigError("data.val_list is empty: set it to the list of videos to evaluate")
    if not Path(list_file).is_file():
        raise ConfigError(f"data.val_list: {list_file} does not exist")
    transform = video_data.build_test_transform(
        size=data.input_size,
        short_side=eval_short_side(data, test, for_test),
        crop="three" if test.num_crops == 3 else "center",
        mean=mean,
        std=std,
    )
    if test.num_crops not in (1, 3):
        raise ConfigError(f"test.num_crops: 1 (centre) or 3 (three crops), got {test.num_crops}")
    return video_data.MultiViewTestDataset(
        list_file, transform=transform, num_classes=num_classes, num_clips=test.num_clips,
        num_crops=test.num_crops, **_list_options(data)
    )


def mix_collate(data: DataConfig, num_classes: int, label_smoothing: float):
    """Mixup/CutMix (with label smoothing folded into the soft targets) when enabled."""
    if not (data.mixup or data.cutmix):
        return None
    if data.multi_label:
        raise ConfigError("data.multi_label: Mixup/CutMix mix single labels; set data.mixup=0 data.cutmix=0")
    return video_data.mixup_cutmix_collate(
        num_classes=num_classes,
        mixup_alpha=data.mixup,
        cutmix_alpha=data.cutmix,
        label_smoothing=label_smoothing,
        prob=data.mix_prob,
        in_collate=data.augment_on != "device" or data.dummy,  # on the device: mixed after BatchAugment
    )
