"""Serve endpoints for long videos and search (added to the app by `register`).

- `POST /api/timeline`: the form of `/api/predict` (a `video` file or a bundled `sample`, `classes`,
  `top_k`) plus `window`, `stride` (seconds) and `min_segment`: what `clipvideo predict --timeline`
  prints, as JSON (windows and merged segments).
- `GET /api/index`: whether an index was given (`clipvideo serve --index EMB`), its size, and
  whether it can be searched by text.
- `GET /api/search?q=PHRASE&top=10`: exact cosine search of that index with the served model.

Both run on the engine's one worker thread, inside its bound on requests in flight, so they never
race a prediction for the model (a text query may set the vocabulary of X-CLIP/FROSTER for a moment).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

from fastapi import Request

from .upload import ServeError

log = logging.getLogger("clipvideo.serve")


def load_index(app, path: str | None) -> None:
    """Read the index once, at startup (`clipvideo serve --index EMB`)."""
    from ..engine.embed import read_index

    app.state.search_index = None
    if path:
        app.state.search_index = read_index(path)
        app.state.search_index_path = str(path)
        log.info("search index %s: %d embeddings", path, len(app.state.search_index[1]))


def _number(fields: dict, key: str, default: float | None, low: float, high: float) -> float | None:
    text = fields.get(key, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ServeError(400, f"{key} must be a number of seconds, got {text!r}") from None
    if not low <= value <= high:
        raise ServeError(400, f"{key} must be from {low:g} to {high:g} seconds, got {value:g}")
    return value


def register(app, engine) -> None:
    from ..data import VideoDecodeError
    from ..engine.config import ConfigError
    from ..engine.embed import search_index
    from ..engine.timeline import video_timeline

    if not hasattr(app.state, "search_index"):
        app.state.search_index = None

    async def on_worker(function, *args):
        return await asyncio.get_running_loop().run_in_executor(engine._executor, function, *args)

    def run_timeline(path, display, names, top_k, window, stride, min_segment):
        model = engine.predictor.model
        if engine.text_based and list(model.class_names or []) != names:
            model.set_class_names(names)
        predictor = dataclasses.replace(engine.predictor, class_names=names)
        try:
            result = video_timeline(predictor, path, window, stride, top_k, min_segment=min_segment)
        except (ConfigError, VideoDecodeError) as error:
            raise ServeError(400, str(error).replace(path, display)) from None
        out = result.to_dict()
        out["video"] = display
        return out

    def timeline_options(fields: dict) -> dict:
        return {"window": _number(fields, "window", 2.0, 0.05, 3600), "stride": _number(fields, "stride", 1.0, 0.05, 3600),
                "min_segment": _number(fields, "min_segment", None, 0, 3600)}

    @app.post("/api/timeline")
    async def timeline(request: Request):
        def submit(path, display, names, top_k, window, stride, min_segment):
            return engine.queue(run_timeline, path, display, names, top_k, window, stride, min_segment)

        return await engine.handle_video_request(request, "3", submit, timeline_options)

    @app.get("/api/index")
    async def index_info():
        index = app.state.search_index
        if index is None:
            return {"available": False}
        embeddings, rows, meta = index
        return {"available": True, "name": Path(app.state.search_index_path).name, "rows": len(rows),
                "videos": len({r["video"] for r in rows}), "text": bool(meta.get("text")),
                "method": meta.get("method")}

    @app.get("/api/search")
    async def search(q: str = "", top: int = 10, kind: str | None = None):
        index = app.state.search_index
        if index is None:
            raise ServeError(404, "no search index: start the server with `clipvideo serve --index EMB`")
        if not 1 <= top <= 100:
            raise ServeError(400, f"top must be from 1 to 100, got {top}")
        engine.reserve()
        try:
            results = await on_worker(lambda: search_index(app.state.search_index_path, query=q, top=top, kind=kind,
                                                           predictor=engine.predictor, index=index))
        except ConfigError as error:
            raise ServeError(400, str(error)) from None
        finally:
            engine.release()
        return {"query": q, "results": results}
