"""clipvideo: video action recognition with pretrained CLIP models.

    import clipvideo
    model = clipvideo.load("runs/demo/model.pt")                     # a native checkpoint, ready
    model = clipvideo.load_official("xclip", "k400_32_8.pth")       # an official release
    clipvideo.predict("video.mp4", checkpoint="model.pt")            # [{"label": ..., "score": ...}, ...]
    clipvideo.predict("video.mp4", classes=["dancing", "cooking"], backbone="ViT-B-16.pt")  # zero-shot
    model = clipvideo.load_pretrained("xclip-b32-8f-k400")          # a released checkpoint by name (zoo)
    clipvideo.timeline("long.mp4", checkpoint="model.pt", window=2, stride=1)  # {"segments": [...], ...}
    clipvideo.embed("videos/", checkpoint="model.pt", out="emb")  # an index folder
    clipvideo.search("emb", "a person juggling", top=10)          # or like="clip.mp4"
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


def load_pretrained(name, device="cpu", **overrides):
    """A released checkpoint by zoo name ("evl-b16-8f-k400", "ViT-B/16", ...): downloaded once, verified, imported."""
    from .zoo import load_pretrained as _load_pretrained

    return _load_pretrained(name, device=device, **overrides)


def predict(videos, checkpoint=None, classes=None, backbone=None, top_k=5, model=None, **options):
    """Top-k labels with scores for one video path (a list) or several (a list of lists).

    model: a zoo name instead of a checkpoint file; backbone: a CLIP file or a zoo name ("ViT-B/16").
    """
    from .engine.predict import predict as _predict
    from .zoo import backbone_path, native_checkpoint

    if model is not None:
        checkpoint = native_checkpoint(model)
    backbone = backbone_path(backbone)

    return _predict(videos, checkpoint=checkpoint, classes=classes, backbone=backbone, top_k=top_k, **options)


def timeline(video, checkpoint=None, classes=None, backbone=None, window=2.0, stride=1.0, top_k=5, smooth=1,
             model=None, **options):  # min_segment=S: segments no longer than S go to their neighbours (default: window)
    """Sliding-window top-k and merged segments [{"start", "end", "label", "score"}] for a long video."""
    from .engine.timeline import timeline as _timeline
    from .zoo import backbone_path, native_checkpoint

    if model is not None:
        checkpoint = native_checkpoint(model)
    return _timeline(video, checkpoint=checkpoint, classes=classes, backbone=backbone_path(backbone), window=window,
                     stride=stride, top_k=top_k, smooth=smooth, **options)


def embed(videos, checkpoint=None, out=None, window=None, stride=1.0, model=None, **options):
    """Embed a folder or list of videos into the index folder `out` (resumable); window=S adds
    one embedding per sliding window. Returns a summary dict."""
    from .engine.embed import embed as _embed
    from .zoo import native_checkpoint

    if model is not None:
        checkpoint = native_checkpoint(model)
    return _embed(videos, checkpoint, out, window=window, stride=stride, **options)


def search(index, query=None, like=None, top=10, **options):
    """Exact cosine search of an index by a phrase or a video (like=PATH): [{"video", "start", "end", "score"}]."""
    from .engine.embed import search as _search

    return _search(index, query, like, top, **options)


__all__ = ["__version__", "embed", "load", "load_official", "load_pretrained", "predict", "search", "timeline"]
