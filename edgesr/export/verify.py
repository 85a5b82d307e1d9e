"""Run exported ONNX models with ONNX Runtime (CPU) and measure how closely they follow PyTorch.

`onnxruntime_sr_function` wraps an artifact as an edgesr SR function (float32 NCHW 0..1 in and out,
whatever the artifact's own I/O convention), so `edgesr.evaluate.evaluate` scores it exactly like a
PyTorch model. The parity helpers are what `export_onnx` uses to fill the sidecar's ``parity`` block.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from edgesr.errors import ExportError, UserInputError
from edgesr.inference.predict import SRFunction

if TYPE_CHECKING:
    import onnx
    import onnxruntime

log = logging.getLogger(__name__)

IO_MODES = ("float01", "float255", "uint8")
DEFAULT_PARITY_SIZES: tuple[tuple[int, int], ...] = ((64, 64), (127, 93), (339, 510))
PARITY_FOLDER = ("datasets", "DIV2K_test_LR_x4")


def create_session(model: "str | Path | bytes | onnx.ModelProto", threads: int = 2,
                   optimize: bool = True) -> "onnxruntime.InferenceSession":
    """A CPU InferenceSession with `threads` intra-op threads and quiet logging.

    The CPU memory arena is off: these sessions check artifacts at a few different sizes, and an arena
    keeps the largest run's buffers for the session's whole life (an EDSR export's parity check at
    339x510 peaked at 10.5 GB with it, 5.2 GB without)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.enable_cpu_mem_arena = False
    so.intra_op_num_threads = max(1, int(threads))
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    elif not isinstance(model, bytes):
        path = Path(model)
        if not path.is_file():
            raise UserInputError(f"ONNX model not found: {path}")
        model = str(path)
    try:
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise ExportError(f"ONNX Runtime cannot load the model: {str(exc).strip().splitlines()[0]}") from exc


def _session_io(session: "onnxruntime.InferenceSession") -> tuple[str, str, str]:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserInputError(f"expected one input and one output, got {len(inputs)} and {len(outputs)}.")
    return inputs[0].name, inputs[0].type, outputs[0].name


def to_model_input(x01: np.ndarray, io: str, onnx_type: str) -> np.ndarray:
    """float 0..1 NCHW -> what a graph with this I/O convention and input type expects."""
    if io == "uint8":
        return np.clip(np.round(x01 * 255.0), 0, 255).astype(np.uint8)
    x = x01 * 255.0 if io == "float255" else x01
    return x.astype(np.float16 if onnx_type == "tensor(float16)" else np.float32)


def from_model_output(y: np.ndarray, io: str) -> np.ndarray:
    """A graph's output -> float32 0..1 NCHW (the edgesr convention)."""
    y = y.astype(np.float32)
    return y / 255.0 if io in ("uint8", "float255") else y


def to_255(y: np.ndarray, io: str) -> np.ndarray:
    """A graph's output on the 0..255 scale, as float64 (for parity figures)."""
    y = y.astype(np.float64)
    return y if io in ("uint8", "float255") else y * 255.0


def onnxruntime_sr_function(path_or_session: "str | Path | onnxruntime.InferenceSession", threads: int = 2,
                            io: str | None = None) -> SRFunction:
    """An SR function (float32 NCHW 0..1 -> float32 NCHW 0..1) running an ONNX model in ONNX Runtime CPU.

    `io` is the artifact's I/O convention ("float01" | "float255" | "uint8"); by default it is read from
    the sidecar beside a model path, else inferred from the input type (uint8 -> "uint8", else "float01").
    """
    if hasattr(path_or_session, "run") and hasattr(path_or_session, "get_inputs"):
        session = path_or_session
    else:
        path = Path(path_or_session)
        session = create_session(path, threads=threads)
        if io is None:
            from edgesr.artifacts.sidecar import Sidecar

            side = Sidecar.for_artifact(path)
            io = side.io if side is not None else None
    in_name, in_type, out_name = _session_io(session)
    if io is None:
        io = "uint8" if in_type == "tensor(uint8)" else "float01"
    if io not in IO_MODES:
        raise UserInputError(f"unknown io {io!r}; choose one of {', '.join(IO_MODES)}.")

    def run(x: np.ndarray) -> np.ndarray:
        y = session.run([out_name], {in_name: to_model_input(np.asarray(x, dtype=np.float32), io, in_type)})[0]
        return from_model_output(y, io)

    return run


# --------------------------------------------------------------------------------------------- parity


def _synthetic_image(height: int, width: int, seed: int) -> np.ndarray:
    """A deterministic image with edges, gradients and texture (used only when no real images exist)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([
        128 + 100 * np.sin(xx / 7.0 + seed) * np.cos(yy / 11.0),
        255 * (xx / max(1, width - 1)),
        np.where((xx // 16 + yy // 16) % 2 == 0, 200.0, 40.0),
    ], axis=-1)
    img += rng.normal(0, 8, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def parity_images(sizes: Sequence[tuple[int, int]], folder: str | Path | None = None) -> list[tuple[str, np.ndarray]]:
    """One uint8 HxWx3 crop per (H, W) size: centre crops of real DIV2K LR images (image k for size k).

    `folder` defaults to shared/datasets/DIV2K_test_LR_x4; crops larger than an image are mirror-padded.
    Without real images a deterministic synthetic image is used (and named "synthetic").
    """
    from edgesr.data import find_images, read_image
    from edgesr.inference.tiling import pad_to
    from edgesr.paths import shared_dir

    folder = Path(folder) if folder is not None else shared_dir().joinpath(*PARITY_FOLDER)
    files = find_images(folder) if folder.is_dir() else []
    if not files:
        log.warning("no parity images in %s: using synthetic images", folder)
    out = []
    for k, (h, w) in enumerate(sizes):
        if files:
            src = files[k % len(files)]
            img = read_image(src)
            name = src.name
        else:
            img = _synthetic_image(h, w, k)
            name = "synthetic"
        if img.shape[0] < h or img.shape[1] < w:
            img = pad_to(img.transpose(2, 0, 1)[None], h, w)[0].transpose(1, 2, 0)
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        out.append((f"{name}[{y0}:{y0 + h},{x0}:{x0 + w}]", np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])))
    return out


def psnr_255(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR between two arrays on the 0..255 scale (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


@dataclass
class Comparison:
    max_abs_diff: float
    psnr_db: float
    finite: bool


def compare_255(candidate: np.ndarray, reference: np.ndarray) -> Comparison:
    """Max abs difference and PSNR of `candidate` vs `reference`, both on the 0..255 scale."""
    if candidate.shape != reference.shape:
        raise ExportError(f"output shape {candidate.shape} differs from the reference {reference.shape}.")
    finite = bool(np.isfinite(candidate).all())
    if not finite:
        return Comparison(math.inf, 0.0, False)
    return Comparison(float(np.abs(candidate - reference).max()), psnr_255(candidate, reference), True)


def torch_reference_255(model: Any, image: np.ndarray, io: str) -> np.ndarray:
    """The PyTorch model's output for a uint8 HxWx3 image, on 0..255 (rounded and clamped for io uint8)."""
    import torch

    x = torch.from_numpy((image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        y = model(x).double().numpy() * 255.0
    return np.clip(np.round(y), 0, 255) if io == "uint8" else y


def run_onnx_255(session: "onnxruntime.InferenceSession", image: np.ndarray, io: str) -> np.ndarray:
    """An ONNX Runtime session's output for a uint8 HxWx3 image, on 0..255."""
    in_name, in_type, out_name = _session_io(session)
    x01 = (image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    y = session.run([out_name], {in_name: to_model_input(x01, io, in_type)})[0]
    return to_255(y, io)


def run_fp16_emulation(session: "onnxruntime.InferenceSession", image: np.ndarray, io: str) -> tuple[np.ndarray, float]:
    """Output (0..255) and activation peak of an `edgesr.export.fp16.fp16_emulation_graph` session."""
    from edgesr.export.fp16 import PEAK_OUTPUT

    inputs, outputs = session.get_inputs(), session.get_outputs()
    x01 = (image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    names = [outputs[0].name, PEAK_OUTPUT]
    y, peak = session.run(names, {inputs[0].name: to_model_input(x01, io, inputs[0].type)})
    return to_255(y, io), float(peak)


def find_fp16_overflow(model: "onnx.ModelProto", image: np.ndarray, io: str, limit: float = 65504.0,
                       threads: int = 2) -> list[tuple[str, str, float]]:
    """(node, tensor, peak) of the activations that overflow float16 on `image`, in graph order.

    Runs the FP16 emulation of the FP32 graph with every tensor's peak before rounding exposed (scalars
    only, so any image size is cheap); the first entry is where float16 first overflows.
    """
    from edgesr.export.fp16 import fp16_emulation_graph

    producer = {o: (n.name or n.op_type) for n in model.graph.node for o in n.output}
    producer.update({i.name: f"input {i.name}" for i in model.graph.input})
    probe = fp16_emulation_graph(model, expose_peaks=True)
    session = create_session(probe, threads=threads)
    names = [o.name for o in session.get_outputs() if o.name.endswith("__peak32")]
    inputs = session.get_inputs()
    x01 = (image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    values = session.run(names, {inputs[0].name: to_model_input(x01, io, inputs[0].type)})
    hits = []
    for name, value in zip(names, values):
        peak = float(value)
        if not (peak <= limit):  # inf and NaN too
            tensor = name[: -len("__peak32")]
            hits.append((producer.get(tensor, "?"), tensor, peak))
    return hits
