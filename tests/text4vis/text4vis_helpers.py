"""Helpers shared by the Text4Vis tests (a uniquely named module: other test folders have conftests)."""

from pathlib import Path

import torch

from clipvideo.methods import text4vis
from clipvideo.methods.base import BackboneConfig

FIXTURES = Path(__file__).parents[1] / "fixtures" / "text4vis"
CLASSES = ["moving left", "rotating clockwise", "a dog playing fetch"]
CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073])[:, None, None]
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711])[:, None, None]


def read_fixture() -> dict:
    return torch.load(FIXTURES / "text4vis_tiny.pt", weights_only=True)


def write_clip_file(fixture: dict, path: Path) -> Path:
    """The fixture's tiny OpenAI-style CLIP (fp16 state dict) with its full token table rebuilt."""
    sd = dict(fixture["clip_fp16"])
    table = torch.zeros(49408, sd["ln_final.weight"].shape[0], dtype=torch.float16)
    table[fixture["token_embedding_rows"]] = fixture["token_embedding_values"]
    sd["token_embedding.weight"] = table
    torch.save(sd, path)
    return path


def fixture_views(fixture: dict) -> torch.Tensor:
    """(B, V, T, 3, H, W) CLIP-normalised views, as the official run made them from video_uint8."""
    return (fixture["video_uint8"].float() / 255 - CLIP_MEAN) / CLIP_STD


def tiny_model(class_names=CLASSES, **overrides) -> text4vis.Text4Vis:
    """The "tiny" CLIP (width 64, 2 layers, 64 px, patch 16), 4 frames, fusion with 2 heads."""
    values = dict(backbone=BackboneConfig(arch="tiny"), num_frames=4, fusion_heads=2, fusion_layers=2)
    values.update(overrides)
    return text4vis.build(text4vis.Config(**values), len(class_names), class_names)
