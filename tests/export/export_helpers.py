"""Tiny EVL and X-CLIP native checkpoints for the export tests (a uniquely named helper module)."""

import torch

from clipvideo.engine.checkpoint import save_model
from clipvideo.methods import evl, xclip
from clipvideo.methods.base import BackboneConfig

CLASSES = ["moving left", "moving right", "a dog playing fetch"]


def randomize(model, seed=0, skip=("clip.",)):
    """Random values for the method's own tensors (zero-initialised ones would hide export bugs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith(skip):
                p.copy_(0.3 * torch.randn(p.shape, generator=generator) + (1.0 if name.endswith("norm.weight") else 0.0))
    return model


def tiny_checkpoints(folder) -> dict:
    """{"evl": path, "xclip": path}: tiny random models (width 64, 2 layers, 64 px, 4 frames) as native files."""
    torch.manual_seed(0)
    evl_model = randomize(evl.build(evl.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4, decoder_layers=2,
                                               decoder_heads=2), len(CLASSES), CLASSES))
    xclip_model = randomize(xclip.build(xclip.Config(backbone=BackboneConfig(arch="tiny"), num_frames=4, mit_heads=2,
                                                     prompt_heads=2), len(CLASSES), CLASSES),
                            skip=("clip.transformer", "clip.token_embedding", "clip.ln_final", "clip.visual.transformer"))
    paths = {}
    for name, model in (("evl", evl_model), ("xclip", xclip_model)):
        paths[name] = folder / f"{name}.pt"
        save_model(model.eval(), paths[name], config={"data": {"num_frames": 4, "input_size": 64, "short_side": 64}})
    return paths


def reference_logits(path, video, classes=None):
    """Logits of the checkpoint loaded fresh (no frozen classes), for comparing exported files against."""
    import clipvideo

    model = clipvideo.load(path)
    if classes:
        model.set_class_names(classes)
    with torch.no_grad():
        return model(video)
