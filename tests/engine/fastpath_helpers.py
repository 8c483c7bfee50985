"""Tiny models of every method from their tiny recipes, for the fast-path tests."""

import copy
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
METHODS = ("frozen", "evl", "xclip", "aim", "aim_timm", "text4vis", "froster")
CLASSES = ["juggling balls", "riding a bike", "playing the violin", "surfing a wave", "baking bread"]


def tiny_model(method: str, folder: Path, seed: int = 0):
    """The method's tiny recipe model on a random tiny CLIP (a random timm ViT for aim_timm), eval mode."""
    from clipvideo.engine.config import build_config
    from clipvideo.engine.train import build_model

    name = "aim/imagenet_tiny_synthetic" if method == "aim_timm" else f"{method}/tiny_synthetic"
    recipe = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    size = recipe["data"]["input_size"]
    torch.manual_seed(seed)
    if method == "aim_timm":
        from clipvideo.methods.aim_timm import write_random_vit

        vit = write_random_vit(folder / "vit.pth", img_size=size, patch_size=16, embed_dim=64, depth=2, num_heads=2)
        recipe["model"]["backbone"] = {"pretrained": str(vit), "heads": 2}
    else:
        recipe["model"]["backbone"] = {"arch": "tiny", "image_resolution": size, "heads": 2, "text_heads": 2}
    recipe["data"].update(num_classes=len(CLASSES), class_names="")
    config = build_config(recipe, f"fast-path test {method}")
    model = build_model(config, len(CLASSES), CLASSES).eval()
    # Random heads start at zero in some recipes (EVL's query, AIM's temporal tables): give every
    # parameter a value so each path is exercised, then encode the classes with the final weights.
    with torch.no_grad():
        for param in model.parameters():
            if not param.abs().sum():
                param.normal_(0, 0.02)
    if model.uses_text:
        model.vocabulary_changed()
    video = torch.randn(2, config.data.num_frames, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return model, video


def fast_copy(model, precision="bf16", **options):
    from clipvideo.engine.fastpath import prepare_for_inference

    return prepare_for_inference(copy.deepcopy(model), precision, **options)
