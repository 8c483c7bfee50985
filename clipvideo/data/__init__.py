"""The video data pipeline: annotation lists, decoding, frame sampling, transforms, datasets.

Imports no model code. See ``docs/data.md`` for list formats, frame-index conventions, the view
order of multi-view testing, decoding backends and what happens to bad input.
"""

from . import folders
from .annotations import (
    AnnotationError,
    TarIndex,
    VideoRecord,
    read_class_descriptions,
    read_class_names,
    read_video_list,
)
from .datasets import BAD_REASONS, DummyVideoDataset, MultiViewTestDataset, VideoClipDataset, views_text
from .decode import KeyframeIndex, KeyframeIndexCache, VideoDecodeError, build_keyframe_index
from .readers import (
    BACKENDS,
    VideoReader,
    available_backends,
    decode_frames,
    open_video,
    read_rawframes,
    video_fps,
    video_num_frames,
)
from .sampling import (
    PROTOCOLS,
    FrameSampler,
    dense_test_indices,
    dense_train_indices,
    segment_test_indices,
    segment_train_indices,
)
from .transforms import (
    BatchAugment,
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MixupCutmixCollate,
    MultiScaleCrop,
    NormalizeClip,
    RandomShortSide,
    TestTransform,
    build_test_transform,
    build_train_transform,
    mixup_cutmix_collate,
    smooth_one_hot,
    soft_target_cross_entropy,
)

__all__ = [
    "views_text",
    "AnnotationError", "TarIndex", "VideoRecord", "read_class_descriptions", "read_class_names", "read_video_list",
    "BAD_REASONS", "DummyVideoDataset", "MultiViewTestDataset", "VideoClipDataset",
    "BACKENDS", "KeyframeIndex", "KeyframeIndexCache", "VideoDecodeError", "VideoReader", "available_backends",
    "build_keyframe_index", "decode_frames", "open_video", "read_rawframes", "video_fps", "video_num_frames",
    "PROTOCOLS", "FrameSampler", "dense_test_indices", "dense_train_indices", "segment_test_indices", "segment_train_indices",
    "BatchAugment", "CLIP_MEAN", "CLIP_STD", "IMAGENET_MEAN", "IMAGENET_STD", "MixupCutmixCollate", "MultiScaleCrop",
    "NormalizeClip", "RandomShortSide", "TestTransform", "build_test_transform", "build_train_transform", "mixup_cutmix_collate",
    "smooth_one_hot", "soft_target_cross_entropy",
]
