"""Export a model for fixed-class inference: video (batch, T, 3, H, W) -> logits (batch, K).

    clipvideo export model.pt --format onnx model.onnx --check
    clipvideo export xclip-b32-8f-k400 --format torchscript xclip.ts --classes "surfing,cooking"

The class set is fixed at export: text-based methods (X-CLIP, frozen CLIP, ...) encode their class
prompts once and the exported graph holds the class embeddings as constants, so the text tower
is not in the file. The batch axis is dynamic; frames and crop size are those of the model.
Pre-processing (sampling, resize, crop, normalisation) stays outside: the file's metadata
(`clipvideo` key: ONNX metadata_props, or an extra file `clipvideo.json` in TorchScript and
ExportedProgram archives) records the data settings and class names needed to feed it.

Formats: ONNX through torch.export (`torch.onnx.export(dynamo=True)`; the older TorchScript-based
exporter bakes the batch size into EVL's reshapes), TorchScript by tracing, and a saved
torch.export ExportedProgram (`.pt2`).
"""

import contextlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .clip import CheckpointError

FORMATS = ("onnx", "torchscript", "exported-program")
METADATA_KEY = "clipvideo"
MAX_BATCH = 4096


@dataclass
class ExportResult:
    path: Path
    format: str
    model: torch.nn.Module  # the PyTorch model the file was made from (classes frozen), for checks
    num_frames: int
    size: int
    class_names: list[str]
    metadata: dict = field(default_factory=dict)


def freeze_classes(model: torch.nn.Module) -> torch.nn.Module:
    """Text-based models: fix the (K, D) class embeddings as a constant (`model.freeze_classes()`),
    which drops the text tower, so tracing and torch.export see no text encoder."""
    model.freeze_classes()
    return model


def model_geometry(model, data: dict) -> tuple[int, int]:
    """(frames, crop size) the model takes: the file's data settings over the model's own record."""
    settings = {**model.input_config()["data"], **data}
    return int(settings.get("num_frames", 8)), int(settings.get("input_size", 224))


def example_video(batch: int, num_frames: int, size: int, seed: int = 0) -> torch.Tensor:
    """A generated, normalised-looking clip (batch, T, 3, size, size)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, num_frames, 3, size, size, generator=generator)


def load_for_export(checkpoint, classes=None):
    """(model in eval mode, data settings, class names) from a native checkpoint or a zoo name."""
    from .engine import checkpoint as ckpt
    from .engine.predict import class_vocabulary, parse_classes

    path = Path(str(checkpoint))
    if not path.is_file():
        from . import zoo

        if zoo.find(str(checkpoint)) is None:
            raise CheckpointError(f"{checkpoint}: no such checkpoint file, and not a zoo name (`clipvideo models`)")
        path = zoo.native_checkpoint(str(checkpoint))
    payload = ckpt.read_checkpoint(path)
    model = ckpt.model_from_payload(payload, path)
    data = ckpt.inference_settings(model, (payload.get("config") or {}).get("data"))["data"]
    if parse_classes(classes):
        if not model.uses_text:
            raise CheckpointError(f"{path}: a {payload['method']} model has a trained head; it cannot take --classes")
        model.set_classes(class_vocabulary(classes))
    if not model.class_names:
        raise CheckpointError(f"{path}: the checkpoint has no class names; pass --classes \"a,b,c\" to fix the class set")
    return model.eval(), data, list(model.class_names)


def export_model(model, output, fmt: str, class_names: list[str], data: dict | None = None, opset: int = 18) -> ExportResult:
    """Write `model` (eval mode) as `fmt`; returns what was written (and the frozen model for checks)."""
    if fmt not in FORMATS:
        raise ValueError(f"export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    data = dict(data or {})
    output = Path(output)
    if fmt == "exported-program" and output.suffix != ".pt2":
        raise ValueError(f"{output}: an ExportedProgram file must end in .pt2 (torch.export.load reads it by that name)")
    output.parent.mkdir(parents=True, exist_ok=True)
    model = freeze_classes(model.eval())
    num_frames, size = model_geometry(model, data)
    metadata = {"format": 1, "input": "video", "output": "logits", "input_shape": ["batch", num_frames, 3, size, size],
                "class_names": class_names, "data": data, "method": type(model).__name__}
    text = json.dumps(metadata)
    video = example_video(2, num_frames, size)  # batch 2: a batch of 1 would be specialised away
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer / exporter chatter about Python scalars and deprecations
        if fmt == "torchscript":
            traced = torch.jit.trace(model, (video,), check_trace=False)
            torch.jit.save(traced, str(output), _extra_files={f"{METADATA_KEY}.json": text})
        elif fmt == "exported-program":
            program = torch.export.export(model, (video,), dynamic_shapes=({0: batch},))
            torch.export.save(program, str(output), extra_files={f"{METADATA_KEY}.json": text})
        else:
            _export_onnx(model, video, batch, output, opset, text)
    return ExportResult(output, fmt, model, num_frames, size, class_names, metadata)


def _export_onnx(model, video, batch, output: Path, opset: int, metadata: str) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as error:
        raise ImportError(f"ONNX export needs the `export` extra: pip install 'clipvideo[export]' ({error})") from None
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > 1.5e9  # protobuf's 2 GB limit
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress steps
        torch.onnx.export(model, (video,), str(output), dynamo=True, input_names=["video"], output_names=["logits"],
                          dynamic_shapes=({0: batch},), opset_version=opset, external_data=large, verbose=False)
    proto = onnx.load(str(output), load_external_data=False)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata
    onnx.save(proto, str(output))


def export_checkpoint(checkpoint, output, fmt: str, classes=None, opset: int = 18) -> ExportResult:
    model, data, names = load_for_export(checkpoint, classes)
    return export_model(model, output, fmt, names, data, opset)


def exported_runner(path, fmt: str):
    """A function video -> logits (torch tensors) running an exported file (ONNX through onnxruntime)."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda video: torch.from_numpy(session.run(None, {"video": video.numpy()})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        module = torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path)).module()

    def run(video):
        with torch.no_grad():
            return module(video)

    return run


def run_exported(path, fmt: str, video: torch.Tensor) -> torch.Tensor:
    """Logits of an exported file for one batch."""
    return exported_runner(path, fmt)(video)


def check_export(result: ExportResult, batches=(1, 3)) -> dict[int, float]:
    """Max |exported - PyTorch| of the logits on generated clips, for each batch size."""
    differences = {}
    run = exported_runner(result.path, result.format)
    for batch in batches:
        video = example_video(batch, result.num_frames, result.size, seed=100 + batch)
        with torch.no_grad():
            expected = result.model(video).float()
        got = run(video).float()
        if got.shape != expected.shape:
            raise RuntimeError(f"{result.path}: output shape {tuple(got.shape)}, PyTorch gives {tuple(expected.shape)}")
        differences[batch] = float((got - expected).abs().max())
    return differences
