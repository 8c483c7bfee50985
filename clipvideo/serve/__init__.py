"""`clipvideo serve`: a local web page and JSON API for video recognition.

    clipvideo serve --checkpoint runs/x/model.pt                       # http://127.0.0.1:8000
    clipvideo serve --backbone ViT-B-16.pt --classes "dancing,cooking"   # zero-shot CLIP

Needs the web extra: `pip install 'clipvideo[serve]'` (FastAPI, uvicorn, python-multipart).
Inference goes through `clipvideo.engine.predict` exactly as `clipvideo predict` does.
"""

from .app import ServeSettings, create_app

__all__ = ["ServeSettings", "build_app", "create_app", "run_server"]


def method_name(model) -> str:
    from ..methods import METHODS

    name = next((n for n, module in METHODS.items() if isinstance(model.config, module.Config)), None)
    if name == "frozen" and model.uses_text and model.config.temporal == "mean":
        return "frozen (zero-shot CLIP)"
    return name or type(model).__name__


def build_app(checkpoint=None, classes=None, backbone=None, device="cpu", precision="auto",
              settings: ServeSettings | None = None, **options):
    """Load the model once (as `clipvideo predict` does) and wrap it in the web app."""
    from pathlib import Path

    from ..engine.predict import load_predictor

    predictor = load_predictor(checkpoint, classes, backbone, device, precision, **options)
    source = Path(checkpoint or backbone).name
    return create_app(predictor, method_name(predictor.model), source, settings)


def run_server(app, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        import logging

        logging.getLogger("clipvideo.serve").warning(
            "serving on %s: anyone who can reach this address can upload videos to this machine", host)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
