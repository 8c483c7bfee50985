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

from .upload import ServeError, Upload, receive_form

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

    @app.post("/api/timeline")
    async def timeline(request: Request):
        engine.reserve()
        upload, submitted = Upload(), False
        try:
            upload = await receive_form(request, engine.workdir, engine.settings.max_upload_bytes)
            names = engine.class_names_for(upload.fields.get("classes"))
            top_k = upload.fields.get("top_k", "").strip() or "3"
            if not top_k.isdigit() or not 1 <= int(top_k) <= 100:
                raise ServeError(400, f"top_k must be a whole number from 1 to 100, got {top_k!r}")
            window = _number(upload.fields, "window", 2.0, 0.05, 3600)
            stride = _number(upload.fields, "stride", 1.0, 0.05, 3600)
            min_segment = _number(upload.fields, "min_segment", None, 0, 3600)
            sample_name = upload.fields.get("sample", "").strip()
            if upload.path is not None:
                if upload.size == 0:
                    raise ServeError(400, f"the uploaded file {upload.filename!r} is empty")
                path, display = upload.path, upload.filename or "upload"
            elif sample_name in engine.samples:
                path, display = engine.samples[sample_name], f"{sample_name}.mp4"
            else:
                raise ServeError(400, "no video: send a file in the 'video' field, or a bundled 'sample' name")
            future = asyncio.get_running_loop().run_in_executor(
                engine._executor, run_timeline, path, display, names, int(top_k), window, stride, min_segment)
            future.add_done_callback(lambda _: engine.release())
            submitted = True
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                future.add_done_callback(lambda _: upload.remove())
                upload = Upload()
                raise
        finally:
            if not submitted:
                engine.release()
            upload.remove()

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
