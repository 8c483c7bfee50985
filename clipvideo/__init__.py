"""clipvideo: video action recognition with pretrained CLIP models.

    import clipvideo
    model = clipvideo.load("runs/demo/model.pt")                     # a native checkpoint, ready
    model = clipvideo.load_official("xclip", "k400_32_8.pth")       # an official release
    clipvideo.predict("video.mp4", checkpoint="model.pt")            # [{"label": ..., "score": ...}, ...]
    clipvideo.predict("video.mp4", classes=["dancing", "cooking"], backbone="ViT-B-16.pt")  # zero-shot
"""

__version__ = "0.1.0"


def load(path, device="cpu"):
    """A ready model (eval mode) from a native clipvideo checkpoint."""
    from .engine.checkpoint import load_model

    return load_model(path, device)


def load_official(name, path, **overrides):
    """An officially released checkpoint ("evl", "xclip", "hf-xclip", ...) as a ready model."""
    from .official import load_official as _load_official

    return _load_official(name, path, **overrides)


def predict(videos, checkpoint=None, classes=None, backbone=None, top_k=5, **options):
    """Top-k labels with scores for one video path (a list) or several (a list of lists)."""
    from .engine.predict import predict as _predict

    return _predict(videos, checkpoint=checkpoint, classes=classes, backbone=backbone, top_k=top_k, **options)


__all__ = ["__version__", "load", "load_official", "predict"]
