"""clipvideo: video action recognition with pretrained CLIP models."""

__version__ = "0.1.0"
