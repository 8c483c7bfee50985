"""`clipvideo embed` and `clipvideo search`: video embeddings and exact cosine search over them.

Which embedding a model gives (`video_embedding`, the one place that knows): the text-classifying
methods (frozen CLIP with its text classifier, X-CLIP, Text4Vis, FROSTER) embed a video in their
text space, so a phrase can search it (`text_embedding`); EVL, AIM and a frozen CLIP with a linear
head give their feature before the classifier, which only a video can search (`--like VIDEO`).
Every embedding is L2-normalised, so a dot product is the cosine.

An index (`--out EMB`) is a folder: `meta.json` (the model file, method, dimension, whether it is
in a text space, the window settings) and `part-K-of-N-SEQ.safetensors` files, each holding
`embeddings` (M, D) float32 and, in its metadata, the rows: {"video", "start", "end", "kind"
("video" or "window")}. A video is a whole-video row (sampled over the whole video as
`clipvideo predict` does, the views' embeddings averaged) and, with `--timeline`, one row per
window. A video that fails to decode is reported and left out (a resumed run tries it again). Every `flush_every` videos a new part file is written (atomically), so an interrupted run
resumes: videos already in any part are skipped. Shards (`--shard K/N`, or torchrun's RANK and
WORLD_SIZE as for `clipvideo prepare`) take list lines i with i % N == K and write their own parts;
search reads every part, so nothing needs merging.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import data as video_data
from .config import ConfigError
from .precision import autocast

META = "meta.json"


class SearchError(ConfigError):
    """Bad input to embed/search: a one-line message naming the file and what to do."""


# ---------------------------------------------------------------------------------------------
# The model adapter
# ---------------------------------------------------------------------------------------------


def video_embedding(model, video: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) normalised video -> (B, D) L2-normalised embeddings: the model contract's
    `forward_features`, except for X-CLIP, whose features also carry the prompt context for its
    head: there the MIT's video embedding, the part that lives in the text space."""
    if callable(getattr(model, "encode_frames", None)) and hasattr(model, "mit"):
        frames, _ = model.encode_frames(video)
        features = model.mit(frames)
    else:
        features = model.forward_features(video)
    return F.normalize(features.float(), dim=-1)


def has_text_space(model) -> bool:
    """True when the video embedding lies in the space of a text tower (a phrase can search it)."""
    return bool(getattr(model, "uses_text", False))


@torch.no_grad()
def text_embedding(model, texts: list[str]) -> torch.Tensor:
    """(Q, D) L2-normalised embeddings of phrases, as the model embeds class names."""
    if not has_text_space(model):
        raise SearchError(f"a {type(model).__name__} model has no text tower, so it cannot search by text; "
                          "search with --like VIDEO")
    encode = getattr(model, "encode_class_names", None)
    if callable(encode):  # frozen CLIP, Text4Vis: prompt template + text tower, no state changed
        features = encode(list(texts))
    else:  # X-CLIP, FROSTER: the phrases become the vocabulary for a moment
        previous = list(model.class_names or [])
        model.set_class_names(list(texts))
        try:
            features = model.class_embeddings().clone()
        finally:
            if previous:
                model.set_class_names(previous)
    return F.normalize(features.float(), dim=-1)


# ---------------------------------------------------------------------------------------------
# Embedding videos
# ---------------------------------------------------------------------------------------------


def whole_video_views(predictor, path: str) -> torch.Tensor:
    """(V, T, 3, h, w) normalised views of a whole video, exactly as `clipvideo predict` (and
    `clipvideo test`) sample, decode and transform it: predict's evaluation dataset."""
    from .predict import video_dataset

    dataset = video_dataset(str(path), predictor.data, predictor.test)
    total, _, frames = dataset.sample(0)
    if total <= 0:
        raise video_data.VideoDecodeError(str(path), "no frames")
    return dataset.views(frames)


@torch.no_grad()
def embed_whole_video(predictor, path: str) -> torch.Tensor:
    """(D,) embedding of a whole video: its views' embeddings averaged and normalised again."""
    clips = whole_video_views(predictor, path)
    with autocast(predictor.device, predictor.precision):
        embeddings = video_embedding(predictor.model, clips.to(predictor.device))
    return F.normalize(embeddings.float().mean(dim=0), dim=-1).cpu()


@torch.no_grad()
def embed_windows(predictor, path: str, window: float, stride: float, batch_size: int = 8):
    """[(start s, end s)], (W, D) embeddings of the sliding windows of `clipvideo predict --timeline`."""
    from .timeline import plan_video, window_batches

    plan = plan_video(predictor.data, path, window, stride)
    times, rows = [], []
    for starts, clips in window_batches(plan, predictor.data, batch_size):
        with autocast(predictor.device, predictor.precision):
            rows.append(video_embedding(predictor.model, clips.to(predictor.device)).float().cpu())
        times += [plan.bounds(start) for start in starts]
    return times, torch.cat(rows), plan.duration


def list_videos(source: str | os.PathLike, root: str | None = None) -> list[str]:
    """A folder (every video below it, sorted) or a list file (a path first on each line; a label
    after it is ignored; relative paths under `root`)."""
    source = Path(source)
    if source.is_dir():
        from ..data.folders import VIDEO_EXTENSIONS

        return sorted(str(p) for p in source.rglob("*")
                      if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                      and not any(part.startswith(".") for part in p.relative_to(source).parts))
    if not source.is_file():
        raise SearchError(f"{source}: no such list file or folder; give a folder of videos or a list of paths")
    videos = []
    for line in source.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = line if Path(line if root is None else Path(root) / line).exists() else line.split()[0]
        videos.append(str(Path(root) / path) if root and not Path(path).is_absolute() else path)
    if not videos:
        raise SearchError(f"{source}: no videos listed")
    return videos


def _model_meta(predictor, checkpoint, window, stride) -> dict:
    from ..methods import METHODS

    model = predictor.model
    config = getattr(model, "config", None)
    method = next((name for name, module in METHODS.items() if isinstance(config, module.Config)), type(model).__name__)
    return {"checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None, "method": method,
            "text": has_text_space(model), "timeline": window is not None, "window": window, "stride": stride}


def _save_part(out: Path, name: str, embeddings: torch.Tensor, rows: list[dict]) -> None:
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({"embeddings": embeddings.contiguous()}, tmp, metadata={"rows": json.dumps(rows)})
        os.replace(tmp, out / name)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_index(emb: str | os.PathLike) -> tuple[torch.Tensor, list[dict], dict]:
    """(N, D) embeddings, their rows and meta.json of an index."""
    from safetensors import safe_open

    emb = Path(emb)
    if not (emb / META).is_file():
        raise SearchError(f"{emb}: not an embedding index (no {META}); make one with "
                          "`clipvideo embed VIDEOS --checkpoint M --out EMB`")
    meta = json.loads((emb / META).read_text())
    blocks, rows = [], []
    for part in sorted(emb.glob("part-*.safetensors")):
        try:
            with safe_open(str(part), framework="pt") as f:
                part_rows = json.loads(f.metadata()["rows"])
                embeddings = f.get_tensor("embeddings")
        except Exception as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise SearchError(f"{part}: unreadable index part ({first}); delete it and run `clipvideo embed` "
                              "again to redo its videos") from None
        blocks.append(embeddings)
        rows += part_rows
    embeddings = torch.cat(blocks) if blocks else torch.zeros(0, meta.get("dim") or 0)
    return embeddings, rows, meta


def _done_videos(out: Path) -> set[str]:
    from safetensors import safe_open

    done = set()
    for part in out.glob("part-*.safetensors"):
        with safe_open(str(part), framework="pt") as f:
            done |= {row["video"] for row in json.loads(f.metadata()["rows"])}
    return done


def embed_videos(source, checkpoint, out, window: float | None = None, stride: float = 1.0,
                 shard: tuple[int, int] = (0, 1), root: str | None = None, device="cpu", precision="auto",
                 flush_every: int = 64, progress: bool = False, predictor=None, **options) -> dict:
    """Embed every video of `source` into the index folder `out` (see the module docstring).
    `window`: also embed sliding windows of that many seconds every `stride` seconds."""
    from tqdm import tqdm

    from .predict import load_predictor

    if window is not None and (window <= 0 or stride <= 0):
        raise SearchError(f"--window and --stride must be > 0 seconds, got {window} and {stride}")
    videos = list_videos(source, root)
    k, n = shard
    if not 0 <= k < n:
        raise SearchError(f"--shard {k}/{n}: K must be in [0, N)")
    if predictor is None:
        predictor = load_predictor(checkpoint, None, None, device, precision, **options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = _model_meta(predictor, checkpoint, window, stride)
    if (out / META).is_file():
        old = json.loads((out / META).read_text())
        differs = {key for key in ("checkpoint", "method", "timeline", "window", "stride") if old.get(key) != meta[key]}
        if differs:
            raise SearchError(f"{out}: the index was made with other settings ({', '.join(sorted(differs))}); "
                              "give a new --out, or the same --checkpoint/--timeline/--window/--stride to resume")
        meta = old
    done = _done_videos(out)
    mine = [v for i, v in enumerate(videos) if i % n == k and v not in done]
    sequence = len(list(out.glob(f"part-{k}-of-{n}-*.safetensors")))
    embeddings, rows = [], []
    summary = {"videos": len(videos), "this_shard": len(mine), "skipped_already_done": sum(
        1 for i, v in enumerate(videos) if i % n == k and v in done), "failed": 0, "rows": 0}

    def flush():
        nonlocal sequence, embeddings, rows
        if not rows:
            return
        stacked = torch.stack(embeddings)
        if "dim" not in meta:
            meta["dim"] = int(stacked.shape[1])
        _write_meta(out, meta)
        _save_part(out, f"part-{k}-of-{n}-{sequence:05d}.safetensors", stacked, rows)
        summary["rows"] += len(rows)
        sequence, embeddings, rows = sequence + 1, [], []

    for number, video in enumerate(tqdm(mine, desc="embed", unit="video", disable=not progress), 1):
        try:
            vectors = [embed_whole_video(predictor, video)]
            video_rows = [{"video": video, "start": 0.0, "end": None, "kind": "video"}]
            if window is not None:
                times, windows, duration = embed_windows(predictor, video, window, stride)
                video_rows[0]["end"] = round(duration, 3)
                vectors += list(windows)
                video_rows += [{"video": video, "start": s, "end": e, "kind": "window"} for s, e in times]
        except (video_data.VideoDecodeError, ConfigError) as error:
            # Not written, so a later run (resuming) tries the video again.
            summary["failed"] += 1
            summary.setdefault("errors", []).append(str(error))
            continue
        embeddings += vectors
        rows += video_rows
        if number % flush_every == 0:
            flush()
    flush()
    return summary


def _write_meta(out: Path, meta: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".meta.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(tmp, out / META)


# ---------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------


KINDS = ("video", "window")


def search_index(emb, query: str | None = None, like: str | None = None, top: int = 10, kind: str | None = None,
                 checkpoint=None, device="cpu", precision="auto", predictor=None, index=None) -> list[dict]:
    """Exact cosine search: the `top` rows of the index `emb` closest to a phrase (`query`, for
    models with a text tower) or to a video (`like`), best first, as {"video", "start", "end",
    "kind", "score"}. `index`: an already read (embeddings, rows, meta), e.g. a server's."""
    from .predict import load_predictor

    if (query is None) == (like is None):
        raise SearchError("give a text query or --like VIDEO (one of them)")
    if query is not None and not query.strip():
        raise SearchError("the text query is empty")
    if top < 1:
        raise SearchError(f"--top must be >= 1, got {top}")
    if kind is not None and kind not in KINDS:
        raise SearchError(f"--kind must be one of {KINDS}, got {kind!r}")
    embeddings, rows, meta = index if index is not None else read_index(emb)
    if not rows:
        raise SearchError(f"{emb}: the index holds no embeddings yet; run `clipvideo embed` into it")
    if query is not None and not meta.get("text"):
        raise SearchError(f"{emb}: made with a {meta.get('method')} model, which has no text tower, so it cannot "
                          "be searched by text; search it with --like VIDEO")
    if predictor is None:
        checkpoint = checkpoint or meta.get("checkpoint")
        if not checkpoint or not Path(checkpoint).is_file():
            raise SearchError(f"{emb}: the model file it was made with ({checkpoint}) is not there; give --checkpoint")
        predictor = load_predictor(checkpoint, None, None, device, precision)
    if query is not None:
        target = text_embedding(predictor.model, [query])[0].cpu()
    else:
        target = embed_whole_video(predictor, like)
    if target.shape[0] != embeddings.shape[1]:
        raise SearchError(f"{emb}: embeddings of dimension {embeddings.shape[1]}, but this model gives "
                          f"{target.shape[0]}; search with the model the index was made with")
    scores = embeddings.float() @ target.float()  # cosines: both sides are L2-normalised
    if kind is not None:
        scores = scores.masked_fill(torch.tensor([row["kind"] != kind for row in rows]), float("-inf"))
    best = scores.topk(min(top, len(rows)))
    return [{**{key: rows[i][key] for key in ("video", "start", "end", "kind")}, "score": round(float(s), 6)}
            for s, i in zip(best.values.tolist(), best.indices.tolist()) if s != float("-inf")]


def embed(source, checkpoint, out, **options) -> dict:
    """Python API (`clipvideo.embed`): see `embed_videos`."""
    return embed_videos(source, checkpoint, out, **options)


def search(emb, query=None, like=None, top: int = 10, **options) -> list[dict]:
    """Python API (`clipvideo.search`): see `search_index`."""
    return search_index(emb, query, like, top, **options)
