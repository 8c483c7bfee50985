"""The web app: one page, `POST /api/predict`, `GET /api/model`, bundled synthetic samples.

The model is loaded once, before the server starts. Inference runs on one worker thread; at most
`1 + queue_size` requests are in flight (running, waiting, or still uploading) and the next one
gets 503 at once. Uploads and samples live in one private folder (mkdtemp, mode 0700) that is
deleted at shutdown; each upload is deleted as soon as its request is answered.
"""

import asyncio
import base64
import dataclasses
import io
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources

import av
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from PIL import Image

from ..engine.predict import Predictor, predict_video
from .upload import ServeError, Upload, receive_form, size_text

log = logging.getLogger("clipvideo.serve")


# Bundled samples: (file stem, synthetic class rendered), classes that `clipvideo demo` trains on.
SAMPLES = (("moving_left", "moving left"), ("moving_up", "moving up"), ("still_green_circle", "still green circle"))
MAX_CLASSES = 1000
MAX_CLASS_NAME = 200


@dataclass
class ServeSettings:
    max_upload_bytes: int = 50 * 2**20
    max_decoded_bytes: int = 1024 * 2**20  # the sampled frames, decoded at the video's own size
    queue_size: int = 2  # requests that may wait while one runs; more get 503
    top_k: int = 5
    max_thumbnails: int = 32  # frames shown in the strip (evenly picked when more were sampled)
    thumbnail_height: int = 64
    samples: bool = True  # write the synthetic samples at startup


def parse_class_text(text: str) -> list[str]:
    """Class names separated by commas or new lines; blanks and repeats dropped."""
    names = []
    for line in text.replace("\r", "\n").split("\n"):
        for name in line.split(","):
            name = " ".join(name.split())
            if name and name not in names:
                names.append(name)
    if len(names) > MAX_CLASSES:
        raise ServeError(400, f"too many class names ({len(names)}; at most {MAX_CLASSES})")
    long = next((n for n in names if len(n) > MAX_CLASS_NAME), None)
    if long:
        raise ServeError(400, f"class name {long[:40]!r}... is longer than {MAX_CLASS_NAME} characters")
    return names


def crop_box(width: int, height: int, input_size: int, short_side: int | None) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centre crop the model sees, in the frame's own pixels: the
    test transform scales the short side to `short_side` (default `input_size`) and crops `input_size`."""
    side = min(width, height, round(input_size * min(width, height) / (short_side or input_size)))
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def _jpeg_url(image: "Image.Image", height: int) -> str:
    width = max(1, round(image.width * height / image.height))
    buffer = io.BytesIO()
    image.resize((width, height), Image.BILINEAR).save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def thumbnails(indices: list[int], frames, limit: int, height: int, box: tuple[int, int, int, int] | None = None) -> list[dict]:
    """JPEG data URLs of the sampled frames, at most `limit`, evenly picked; with `box`, each also
    with `crop`: the part of the frame the model sees."""
    picks = range(len(indices)) if len(indices) <= limit else np.linspace(0, len(indices) - 1, limit).round().astype(int)
    strip = []
    for row in picks:
        image = Image.fromarray(frames[int(row)].numpy())
        item = {"index": int(indices[int(row)]), "image": _jpeg_url(image, height)}
        if box is not None:
            item["crop"] = _jpeg_url(image.crop(box), height)
        strip.append(item)
    return strip


def decoded_bytes(path: str, predictor: Predictor) -> tuple[int, int, int, int] | None:
    """(bytes, frames, width, height) that predicting `path` would decode: the sampled frames at the
    stream's own size. None when the file cannot be probed (predict then reports why)."""
    from .. import data as video_data
    from ..engine.predict import video_dataset

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
        sampler = video_dataset(path, predictor.data, predictor.test).sampler  # predict's own frame choice
        total = video_data.video_num_frames(path, backend=predictor.data.backend)
        if sampler.needs_fps:
            fps = video_data.video_fps(path, backend=predictor.data.backend)
            views = sampler.test(total, predictor.test.num_clips, fps=fps)
        else:
            views = sampler.test(total, predictor.test.num_clips)
        views = views.tolist()
    except (av.FFmpegError, OSError, IndexError, ValueError, video_data.VideoDecodeError):
        return None
    frames = len({i for clip in views for i in clip})
    return frames * width * height * 3, frames, width, height


class Engine:
    """The loaded model behind one worker thread, with a bound on requests in flight."""

    def __init__(self, predictor: Predictor, method: str, source: str, settings: ServeSettings):
        self.predictor, self.method, self.source, self.settings = predictor, method, source, settings
        self.text_based = predictor.model.uses_text
        self.default_names = list(predictor.class_names)
        self.in_flight = 0
        self.workdir: str | None = None
        self.samples: dict[str, str] = {}
        self._executor: ThreadPoolExecutor | None = None

    # -- lifetime -----------------------------------------------------------------------------

    def start(self) -> None:
        self.workdir = tempfile.mkdtemp(prefix="clipvideo-serve-")  # mode 0700
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clipvideo-predict")
        if self.settings.samples:
            self.samples = write_samples(self.workdir)

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # -- description --------------------------------------------------------------------------

    def describe(self) -> dict:
        data = self.predictor.data
        return {
            "method": self.method,
            "source": self.source,
            "text_based": self.text_based,
            "classes": self.default_names,
            "num_frames": data.num_frames,
            "sampling": data.sampling,
            "frame_stride": data.frame_stride,
            "input_size": data.input_size,
            "short_side": self.predictor.test.short_side or data.short_side,
            "num_clips": self.predictor.test.num_clips,
            "num_crops": self.predictor.test.num_crops,
            "aggregate": self.predictor.test.aggregate,
            "precision": self.predictor.precision,
            "device": str(self.predictor.device),
            "top_k": self.settings.top_k,
            "max_upload_bytes": self.settings.max_upload_bytes,
            "max_decoded_bytes": self.settings.max_decoded_bytes,
            "queue_size": self.settings.queue_size,
            "samples": sorted(self.samples),
        }

    # -- requests -----------------------------------------------------------------------------

    def reserve(self) -> None:
        """Take a place in the queue, on the event loop (so no lock is needed), or refuse."""
        if self.in_flight >= 1 + self.settings.queue_size:
            raise ServeError(503, f"busy: {self.in_flight} videos are being processed or waiting "
                                  f"(queue size {self.settings.queue_size}); try again in a few seconds",
                             {"Retry-After": "2"})
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    def class_names_for(self, text: str | None) -> list[str]:
        names = parse_class_text(text or "")
        if not names or names == self.default_names:
            return self.default_names
        if not self.text_based:
            raise ServeError(400, f"this {self.method} model has a trained head for its {len(self.default_names)} "
                                  "classes and cannot take other class names; leave the classes empty")
        return names

    def video_source(self, upload: Upload) -> tuple[str, str]:
        """(path, name to show) of the request's video: the uploaded file or a bundled sample."""
        sample_name = upload.fields.get("sample", "").strip()
        if upload.path is not None:
            if upload.size == 0:
                raise ServeError(400, f"the uploaded file {upload.filename!r} is empty")
            return upload.path, upload.filename or "upload"
        if sample_name:
            if sample_name not in self.samples:
                raise ServeError(400, f"no sample named {sample_name!r}; samples: {', '.join(sorted(self.samples))}")
            return self.samples[sample_name], f"{sample_name}.mp4"
        raise ServeError(400, "no video: send a file in the 'video' field, or a bundled 'sample' name")

    async def handle_video_request(self, request: Request, default_top_k: str, submit, options=lambda fields: {}):
        """One video request from queue place to answer, as /api/predict and /api/timeline share it:
        a place in the queue, the form (`classes`, `top_k`, and `options(fields)` -> extra keyword
        arguments, checked in that order), the video, then `submit(path, display, names, top_k,
        **options)` -> a worker future that releases the place when it finishes. The upload is
        removed when nothing uses it any more, also when the client goes away mid-run."""
        self.reserve()
        upload, submitted = Upload(), False
        try:
            upload = await receive_form(request, self.workdir, self.settings.max_upload_bytes)
            names = self.class_names_for(upload.fields.get("classes"))
            top_k = upload.fields.get("top_k", "").strip() or default_top_k
            if not top_k.isdigit() or not 1 <= int(top_k) <= 100:
                raise ServeError(400, f"top_k must be a whole number from 1 to 100, got {top_k!r}")
            extra = options(upload.fields)
            path, display = self.video_source(upload)
            future = submit(path, display, names, int(top_k), **extra)
            submitted = True
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                # The client went away: the worker still owns the file until it is done.
                future.add_done_callback(lambda _: upload.remove())
                upload = Upload()
                raise
        finally:
            if not submitted:
                self.release()
            upload.remove()

    def queue(self, function, *args) -> "asyncio.Future":
        """Run `function(*args)` on the worker thread; the queue place is released when it finishes."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        future.add_done_callback(lambda _: self.release())
        return future

    def run(self, path: str, names: list[str], top_k: int, display_name: str) -> "asyncio.Future":
        """Queue one prediction on the worker thread."""
        return self.queue(self._predict, path, names, top_k, display_name, time.perf_counter())

    def _predict(self, path: str, names: list[str], top_k: int, display_name: str, queued: float) -> dict:
        started = time.perf_counter()
        model = self.predictor.model
        predictor = dataclasses.replace(self.predictor, class_names=names)
        sampled = {}

        def keep_frames(views, indices, frames):
            box = crop_box(frames.shape[2], frames.shape[1], predictor.data.input_size, predictor.data.short_side)
            sampled.update(clips=views, box=box, strip=thumbnails(indices, frames, self.settings.max_thumbnails,
                                                                  self.settings.thumbnail_height, box))

        # The upload limit bounds bytes on disk, not pixels: a short high-resolution clip under it can
        # decode to gigabytes. Refuse before decoding, saying what would be decoded and what to do.
        probe = decoded_bytes(path, predictor)
        if probe is not None and probe[0] > self.settings.max_decoded_bytes:
            size, frames, width, height = probe
            raise ServeError(413, f"{display_name!r} is {width}x{height}: its {frames} sampled frames would decode to "
                                  f"{size_text(size)}, over the {size_text(self.settings.max_decoded_bytes)} limit "
                                  "(the server's --max-decoded-mb); send a smaller version of the video "
                                  "(e.g. ffmpeg -i IN -vf scale=-2:360 OUT)")

        try:
            # Only re-encode the class names when they change: models cache their text features.
            if self.text_based and list(model.class_names or []) != names:
                model.set_class_names(names)
            result = predict_video(predictor, path, top_k, on_frames=keep_frames)
        except Exception as error:  # a model that rejects this input: say why, keep serving
            log.exception("prediction failed for %s", display_name)
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ServeError(500, f"prediction failed: {type(error).__name__}: {first}") from None
        seconds = time.perf_counter() - started
        if result.error:
            reason = result.error.replace(path, display_name).removeprefix(f"{display_name}: ")
            raise ServeError(400, f"cannot decode {display_name!r} as a video: {reason}")
        return {
            "video": display_name,
            "top": result.top,
            "views": result.views,
            "num_views": result.num_views,
            "num_frames_in_video": result.num_frames_in_video,
            "clips": sampled.get("clips", []),
            "frames": sampled.get("strip", []),
            "crop_box": list(sampled["box"]) if "box" in sampled else None,
            "precision": self.predictor.precision,
            "device": str(self.predictor.device),
            "num_classes": len(names),
            "seconds": round(seconds, 4),
            "queue_seconds": round(started - queued, 4),
        }


def write_samples(directory: str) -> dict[str, str]:
    """A few tiny synthetic clips (clipvideo/data/synthetic.py) in the private folder."""
    from ..data.synthetic import render_motion_clip, write_video

    paths = {}
    for number, (stem, name) in enumerate(SAMPLES):
        frames = render_motion_clip(name, 24, 128, 128, np.random.default_rng([7, number]))
        paths[stem] = os.path.join(directory, f"sample-{stem}.mp4")
        write_video(paths[stem], frames, fps=12, crf=20)
    return paths


def create_app(predictor: Predictor, method: str = "", source: str = "",
               settings: ServeSettings | None = None) -> FastAPI:
    engine = Engine(predictor, method or type(predictor.model).__name__, source, settings or ServeSettings())

    @asynccontextmanager
    async def lifespan(app):
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    # No /docs: FastAPI's docs page loads its scripts from a CDN, and this server is offline.
    app = FastAPI(title="clipvideo", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine = engine

    @app.exception_handler(ServeError)
    async def serve_error(request, error: ServeError):
        return JSONResponse({"error": error.message}, status_code=error.status, headers=error.headers)

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return resources.files(__package__).joinpath("index.html").read_text(encoding="utf-8")

    @app.get("/api/model")
    async def model_info():
        return engine.describe()

    @app.get("/samples/{name}.mp4")
    async def sample(name: str):
        if name not in engine.samples:
            raise ServeError(404, f"no sample named {name!r}; samples: {', '.join(sorted(engine.samples))}")
        return FileResponse(engine.samples[name], media_type="video/mp4")

    @app.post("/api/predict")
    async def predict(request: Request):
        return await engine.handle_video_request(
            request, str(engine.settings.top_k),
            lambda path, display, names, top_k: engine.run(path, names, top_k, display))

    from .longvideo import register  # timelines of long videos, search over an index

    register(app, engine)
    return app
