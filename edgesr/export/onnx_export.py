"""PyTorch SR model -> ONNX artifact (FP32 or FP16) + sidecar, verified against PyTorch on real images.

The pipeline of `export_onnx`:

1. check the options and that the outputs may be written (before any work);
2. wrap a copy of the model for the requested I/O convention (``float01``, ``float255``, ``uint8``);
3. optionally fold it for inference (`edgesr.transforms.reparameterize`; the I/O scaling folds too);
4. export with torch.onnx (the dynamo exporter, falling back to the TorchScript one when it is not
   available or fails; the one used is recorded), dynamic batch/height/width, I/O named input/output;
5. simplify with onnxsim, fold scalar multiplications, run the onnx checker;
6. optionally convert to FP16 (`edgesr.export.fp16`);
7. measure parity on crops of real images at several sizes with ONNX Runtime: FP32 graph vs the
   PyTorch model; FP16 artifact vs FP32 graph, and a strict FP16 emulation (every activation rounded
   to float16) vs FP32 graph; fail clearly on a mismatch or an FP16 overflow;
8. write ``<name>.onnx`` and then its sidecar ``<name>.onnx.json`` as one transaction
   (`edgesr.artifacts.store.write_artifact`: a reader finds the old pair or the new one, never a mix).
"""
from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import inspect
import io as _io
import logging
import math
import os
import platform
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from edgesr.utils.shapes import parse_hw
from edgesr.errors import ExportError, UserInputError
from edgesr.artifacts.sidecar import (
    ArtifactFile,
    ExportInfo,
    GraphStats,
    ModelInfo,
    ParityEntry,
    ParityInfo,
    ReparamInfo,
    ShapeProfile,
    Sidecar,
    TensorSpec,
    sidecar_path_for,
)
from edgesr.export.verify import DEFAULT_PARITY_SIZES, IO_MODES
from edgesr.metrics.psnr import format_psnr
from edgesr.utils.jsonable import to_jsonable

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

EXPORTERS = ("auto", "dynamo", "torchscript")
MIN_OPSET = 13
DEFAULT_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "output"
_INPUT_DIMS = ("batch", None, "height", "width")
_OUTPUT_DIMS = ("batch", None, "out_height", "out_width")


@dataclass
class ExportOptions:
    """How to export. `None` means "the default" everywhere.

    io: "float01" (edgesr's float RGB 0..1), "float255" (float 0..255 in and out) or "uint8" (uint8 in,
        uint8 out; scaling, rounding and clamping inside the graph).
    fp16: FP16 arithmetic inside the graph; the I/O stays float32 unless `fp16_io` (which implies fp16).
    reparam: fold the model for inference first (True or None, the default) or not (False).
        `reparam_passes`/`reparam_skip` select passes by name.
    min_shape/opt_shape/max_shape: (H, W) of the recommended optimisation profile recorded in the sidecar
        (min defaults to the model's minimum input size); `batch` is its (min, opt, max) batch.
    parity_sizes: (H, W) crops of real images the export is verified on; `parity_dir` holds the images
        (default shared/datasets/DIV2K_test_LR_x4). `max_abs_diff` is the largest FP32-vs-PyTorch
        difference accepted, in 8-bit levels (uint8 I/O: at least 1); `fp16_min_psnr` the lowest
        FP16-vs-FP32 PSNR accepted, for the FP16 artifact in ONNX Runtime and for the strict FP16
        emulation (None: only an overflow fails).
    scale: upscaling factor of a model without a `.scale` attribute (else measured).
    """

    opset: int = DEFAULT_OPSET
    exporter: str = "auto"
    io: str = "float01"
    fp16: bool = False
    fp16_io: bool = False
    reparam: bool | None = None
    reparam_passes: Sequence[str] | None = None
    reparam_skip: Sequence[str] = ()
    simplify: bool = True
    min_shape: tuple[int, int] | None = None
    opt_shape: tuple[int, int] = (256, 256)
    max_shape: tuple[int, int] = (1024, 1024)
    batch: tuple[int, int, int] = (1, 1, 4)
    parity_sizes: Sequence[tuple[int, int]] = DEFAULT_PARITY_SIZES
    parity_dir: str | Path | None = None
    max_abs_diff: float = 0.1
    fp16_min_psnr: float | None = 40.0
    scale: int | None = None
    threads: int = 2
    force: bool = False

    @property
    def half(self) -> bool:
        return bool(self.fp16 or self.fp16_io)


@dataclass
class ExportResult:
    """What `export_onnx` wrote and measured."""

    path: Path
    sidecar_path: Path
    sidecar: Sidecar
    reparam_report: Any = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        """Short human-readable report (the CLI prints it)."""
        from edgesr.export.graph import format_op_counts

        sc = self.sidecar
        ex = sc.export
        lines = []
        rp = ex.reparam
        if rp.applied:
            lines.append(f"reparam: {', '.join(rp.passes) or 'no pass changed the model'}")
            if rp.report:  # the table; the per-pass notes are in the sidecar
                table = str(rp.report).split("\nnotes:")[0]
                lines.extend(f"  {line}" for line in table.splitlines())
        else:
            lines.append(f"reparam: not applied{f' ({rp.report})' if rp.report else ''}")
        note = f" ({ex.exporter_note})" if ex.exporter_note else ""
        lines.append(f"exporter: {ex.exporter}{note}, opset {ex.opset}, io {ex.io}, precision {ex.precision}"
                     f"{' (fp16 I/O)' if ex.fp16_io else ''}")
        g = sc.graph
        lines.append(f"graph: {g.nodes_exported} nodes exported -> {g.nodes} in the artifact"
                     f"{' (onnxsim)' if ex.simplified else ''}: {format_op_counts(g.op_counts)}")
        for e in sc.parity.entries:
            fp16 = ""
            if e.fp16_max_abs_diff is not None:
                fp16 = (f" | fp16 vs fp32: max|d| {e.fp16_max_abs_diff:.4g}, PSNR {format_psnr(e.fp16_psnr_db)} "
                        f"(strict emulation {format_psnr(e.fp16_emulated_psnr_db)}, peak |x| {e.fp16_peak:.4g})")
            lines.append(f"parity {e.height}x{e.width}: vs PyTorch max|d| {e.max_abs_diff:.3g} (0..255), "
                         f"PSNR {format_psnr(e.psnr_db)}{fp16}")
        lines.append(f"wrote {self.path} ({_mib(sc.artifact.bytes)}, sha256 {sc.artifact.sha256[:16]}...) "
                     f"and {self.sidecar_path}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines


class _Stopwatch:
    """Stage durations, logged at DEBUG and kept for the sidecar-free summary."""

    def __init__(self) -> None:
        import time

        self._time = time.perf_counter
        self._last = self._time()
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = self._time()
        self.stages[stage] = self.stages.get(stage, 0.0) + now - self._last
        self._last = now
        log.debug("export stage %s: %.2f s", stage, self.stages[stage])


def _mib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def default_artifact_name(model_name: str, scale: int, fp16: bool = False, io: str = "float01",
                          fp16_io: bool = False) -> str:
    """e.g. ``rlfn_x4``, ``rlfn_x4_fp16``, ``rlfn_x4_fp16io`` (float16 I/O), ``rlfn_x4_fp16_uint8``."""
    name = f"{model_name}_x{scale}"
    if fp16_io:
        name += "_fp16io"
    elif fp16:
        name += "_fp16"
    if io != "float01":
        name += f"_{io}"
    return name


# ----------------------------------------------------------------------------------------- options


def _check_shape(value: Any, what: str) -> tuple[int, int]:
    return parse_hw(value, what)


def _validate(options: ExportOptions, min_size: int) -> tuple[tuple[int, int], ...]:
    if options.io not in IO_MODES:
        raise UserInputError(f"unknown io {options.io!r}; choose one of {', '.join(IO_MODES)}.")
    if options.exporter not in EXPORTERS:
        raise UserInputError(f"unknown exporter {options.exporter!r}; choose one of {', '.join(EXPORTERS)}.")
    import onnx

    top = onnx.defs.onnx_opset_version()
    if not isinstance(options.opset, int) or not MIN_OPSET <= options.opset <= top:
        raise UserInputError(f"opset must be an integer from {MIN_OPSET} to {top}, got {options.opset!r}.")
    lo = _check_shape(options.min_shape or (min_size, min_size), "min shape")
    opt = _check_shape(options.opt_shape, "opt shape")
    hi = _check_shape(options.max_shape, "max shape")
    if lo[0] < min_size or lo[1] < min_size:
        raise UserInputError(f"min shape {lo[0]}x{lo[1]} is below this model's minimum input size "
                             f"{min_size}x{min_size}.")
    if not (lo[0] <= opt[0] <= hi[0] and lo[1] <= opt[1] <= hi[1]):
        raise UserInputError(f"shapes must satisfy min <= opt <= max per dimension, got min {lo[0]}x{lo[1]}, "
                             f"opt {opt[0]}x{opt[1]}, max {hi[0]}x{hi[1]}.")
    b = tuple(options.batch)
    if len(b) != 3 or not all(isinstance(v, int) and v >= 1 for v in b) or not b[0] <= b[1] <= b[2]:
        raise UserInputError(f"batch must be (min, opt, max) with 1 <= min <= opt <= max, got {options.batch!r}.")
    sizes = tuple(_check_shape(s, "parity size") for s in options.parity_sizes)
    if not sizes:
        raise UserInputError("at least one parity size is needed: an unverified export is not written.")
    for h, w in sizes:
        if h < min_size or w < min_size:
            raise UserInputError(f"parity size {h}x{w} is below this model's minimum input size {min_size}.")
    if options.max_abs_diff <= 0:
        raise UserInputError(f"max_abs_diff must be positive, got {options.max_abs_diff!r}.")
    return (lo, opt, hi) + sizes


# ------------------------------------------------------------------------------------------- model


class IOWrapper(nn.Module):
    """Adapt an edgesr model (float 0..1 in/out) to the requested I/O convention inside the graph.

    The range change is a pair of `ValueScale` modules, so the fold passes merge them into the model's
    own first/last conv (together with the model's 0..1 <-> 0..255 scaling) instead of leaving
    multiplications in the graph. uint8 I/O adds a Cast in front and Round/Clip/Cast at the end.
    """

    def __init__(self, model: nn.Module, io: str) -> None:
        from edgesr.layers.scale import ValueScale

        super().__init__()
        if io not in IO_MODES:
            raise UserInputError(f"unknown io {io!r}; choose one of {', '.join(IO_MODES)}.")
        factor = 1.0 if io == "float01" else 255.0
        self.io = io
        self.model = model
        native_in, native_out = getattr(model, "to_native", None), getattr(model, "from_native", None)
        if factor != 1.0 and isinstance(native_in, ValueScale) and isinstance(native_out, ValueScale):
            # edgesr models scale 0..1 to their native range first and back last: merge the I/O range
            # change into those (the model is a copy made for export), leaving one scale per side
            model.to_native = ValueScale(native_in.factor / factor)
            model.from_native = ValueScale(native_out.factor * factor)
            factor = 1.0
        self.scale_in = ValueScale(1.0 / factor)
        self.scale_out = ValueScale(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.io == "uint8":
            x = x.to(torch.float32)
        y = self.scale_out(self.model(self.scale_in(x)))
        if self.io == "uint8":
            y = torch.clamp(torch.round(y), 0.0, 255.0).to(torch.uint8)
        return y


def _uses_esa(model: nn.Module) -> bool:
    from edgesr.layers.esa import ESA

    return any(isinstance(m, ESA) for m in model.modules())


def _tiling_halo(model: nn.Module) -> int:
    halo = getattr(model, "tiling_halo", None)
    if isinstance(halo, int) and halo >= 0:
        return halo
    return 32 if _uses_esa(model) else 16


def _reparameterize(model: nn.Module, options: ExportOptions, size: int) -> tuple[ReparamInfo, Any]:
    """Fold `model` in place with `edgesr.transforms.reparameterize` unless disabled; describe what happened."""
    from edgesr.transforms import reparameterize

    if options.reparam is False:
        return ReparamInfo(applied=False, report="disabled (--no-reparam)"), None
    kwargs: dict[str, Any] = {"skip": tuple(options.reparam_skip), "input_size": (size, size)}
    if options.reparam_passes is not None:
        kwargs["passes"] = list(options.reparam_passes)
    report = reparameterize(model, **kwargs)  # input_size: where the passes measure MACs and check their folds
    applied = [p.name for p in report.passes if p.changed and not p.skipped]
    details = to_jsonable(report.to_dict())
    return ReparamInfo(applied=True, passes=applied, report=str(report), details=details), report


# ---------------------------------------------------------------------------------------- exporters


def _module_at(root: nn.Module, filename: str, lineno: int) -> tuple[str, str] | None:
    """(qualified name, class) of the module whose forward holds filename:lineno."""
    for qname, module in root.named_modules():
        fwd = type(module).forward
        try:
            src = inspect.getsourcefile(fwd)
            lines, start = inspect.getsourcelines(fwd)
        except (OSError, TypeError):
            continue
        if src and os.path.abspath(src) == os.path.abspath(filename) and start <= lineno < start + len(lines):
            return qname, type(module).__name__
    return None


def _strip_wrapper(qname: str) -> str:
    return qname[len("model."):] if qname.startswith("model.") else ("<model>" if qname in ("", "model") else qname)


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


def _export_torchscript(module: nn.Module, example: torch.Tensor, opset: int) -> bytes:
    from torch.onnx import _constants

    top = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20)
    if opset > top:
        raise ExportError(f"the TorchScript exporter supports opset <= {top}, {opset} was asked for.")
    buf = _io.BytesIO()
    with _quiet_exporter(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch.onnx.export(
                module, (example,), buf, dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                              OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"}},
                do_constant_folding=True,
            )
        except Exception as exc:  # noqa: BLE001 - turned into a clear ExportError
            op = re.search(r"operator '([\w:.]+)'", str(exc))
            where = _locate_op(module, example, op.group(1)) if op else None
            what = f" (op {op.group(1)}{f' in module {where}' if where else ''})" if op else ""
            raise ExportError(f"TorchScript exporter failed{what}: {_first_line(exc)}") from exc
    tracer = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    if tracer:
        w = tracer[0]
        found = _module_at(module, w.filename, w.lineno)
        import linecache

        code = linecache.getline(w.filename, w.lineno).strip()
        where = f"module {_strip_wrapper(found[0])!r} ({found[1]})" if found else "the model"
        raise ExportError(
            f"{where} cannot be exported faithfully: {Path(w.filename).name}:{w.lineno} `{code}` depends on "
            f"tensor values in Python ({str(w.message).split('.')[0]}), so the exported graph would hard-code "
            "one branch/shape. Rewrite it with tensor ops (torch.where, masks) instead of Python control flow."
        )
    for w in caught:
        log.debug("exporter warning: %s", w.message)
    return buf.getvalue()


_EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch.fx", "torch._dynamo", "onnxscript",
                     "onnx_ir")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep the exporters' chatter (graph dumps, 'torchvision is not installed', ...) off the terminal.

    Their loggers go to ERROR and file descriptors 1/2 (C++ prints) to a temporary file for the duration;
    what was printed is logged at DEBUG. Nothing is hidden when edgesr's export logger is at DEBUG.
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    import sys
    import tempfile

    loggers = [logging.getLogger(n) for n in _EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    saved: list[tuple[int, int]] = []
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (AttributeError, ValueError, OSError):
                    pass
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
                except OSError:
                    pass
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (AttributeError, ValueError, OSError):
                    pass
            for fd, copy_fd in saved:
                os.dup2(copy_fd, fd)
                os.close(copy_fd)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
            sink.seek(0)
            printed = sink.read().decode("utf-8", "replace").strip()
            if printed:
                log.debug("exporter output:\n%s", printed[-20000:])


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _dynamo_reason(exc: BaseException) -> str:
    """The informative part of a torch.onnx (dynamo) error: its exception summary and the user code line."""
    text = _ANSI.sub("", str(exc))
    lines = [ln.strip() for ln in text.splitlines()]
    summary = ""
    if "## Exception summary" in lines:
        rest = lines[lines.index("## Exception summary") + 1:]
        summary = next((ln for ln in rest if ln and not ln.startswith("⬆")), "")
    summary = re.sub(r"^<class '([\w.]+)'>: ", lambda m: m.group(1).rsplit(".", 1)[-1] + ": ", summary)
    where = ""
    if "The following call raised this error:" in lines:
        k = lines.index("The following call raised this error:")
        where = " at " + " ".join(ln for ln in lines[k + 1:k + 3] if ln)
    return (summary or (lines[0] if lines else type(exc).__name__))[:300] + where[:300]


def _locate_op(module: nn.Module, example: torch.Tensor, op: str) -> str | None:
    """Module path (and class) whose forward calls torch/aten op `op` (e.g. 'aten::histc'), found by a run."""
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    target = op.split("::")[-1]
    stack: list[str] = []
    found: list[str] = []
    names = {id(m): n for n, m in module.named_modules()}

    def matches(name: str) -> bool:
        return name == target or name.split(".")[0] == target

    class Functions(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if not found and stack and matches(getattr(func, "__name__", "")):
                found.append(stack[-1])
            return func(*args, **(kwargs or {}))

    class Dispatch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not found and stack and matches(getattr(func, "__name__", "")):
                found.append(stack[-1])
            return func(*args, **(kwargs or {}))

    def enter(mod: nn.Module, inputs: Any) -> None:
        stack.append(names.get(id(mod), "?"))

    def leave(mod: nn.Module, inputs: Any, output: Any) -> None:
        stack.pop()

    handles = []
    for m in module.modules():
        handles.append(m.register_forward_pre_hook(enter))
        handles.append(m.register_forward_hook(leave))
    try:
        with torch.no_grad(), Functions(), Dispatch():
            module(example)
    except Exception:  # noqa: BLE001 - only a diagnosis
        pass
    finally:
        for h in handles:
            h.remove()
    if not found:
        return None
    modules = dict(module.named_modules())
    cls = type(modules[found[0]]).__name__ if found[0] in modules else "?"
    return f"{_strip_wrapper(found[0])!r} ({cls})"


def _export_dynamo(module: nn.Module, example: torch.Tensor, opset: int) -> bytes:
    from torch.export import Dim

    dyn = ({0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC},)
    with _quiet_exporter():
        program = torch.onnx.export(
            module, (example,), dynamo=True, dynamic_shapes=dyn, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], external_data=False,
            optimize=True, verbose=False, report=False,
        )
    if program is None:
        raise ExportError("the dynamo exporter returned no program")
    return program.model_proto.SerializeToString()


def export_torch_to_onnx(module: nn.Module, example: torch.Tensor, opset: int,
                         exporter: str = "auto") -> tuple[bytes, str, str | None]:
    """Export `module` with dynamic batch/height/width; return (bytes, exporter used, note)."""
    note = None
    if exporter in ("auto", "dynamo"):
        try:
            # a batch of 2 keeps torch.export from specialising the batch dimension to 1
            return _export_dynamo(module, example.repeat(2, 1, 1, 1), opset), "dynamo", None
        except ModuleNotFoundError as exc:
            reason = f"dynamo exporter unavailable: {exc.name or exc} is not installed"
            if exporter == "dynamo":
                raise ExportError(f"{reason}; use --exporter torchscript (or auto).") from exc
        except Exception as exc:  # noqa: BLE001 - fall back, and keep the reason
            reason = f"dynamo exporter failed: {_dynamo_reason(exc)}"
            if exporter == "dynamo":
                raise ExportError(reason) from exc
        note = f"{reason}; used the TorchScript exporter"
        log.info(note)
    try:
        return _export_torchscript(module, example, opset), "torchscript", note
    except ExportError as exc:
        if note and "unavailable" not in note:
            raise ExportError(f"{exc} (and the {note.split(';')[0]})") from exc
        raise


# ------------------------------------------------------------------------------------------- export


def _simplify(proto: "onnx.ModelProto") -> tuple["onnx.ModelProto", bool, str | None]:
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(proto)
    except Exception as exc:  # noqa: BLE001 - simplification is an optimisation, not a requirement
        return proto, False, f"onnxsim failed: {_first_line(exc)}"
    if not ok:
        return proto, False, "onnxsim could not validate its result"
    return simplified, True, None


def _value_range(io: str) -> list[float]:
    return [0.0, 1.0] if io == "float01" else [0.0, 255.0]


def _tensor_specs(values: Any, io: str, output: bool) -> list[TensorSpec]:
    from edgesr.export.graph import tensor_dtype_name, value_shape

    return [TensorSpec(name=v.name, dtype=tensor_dtype_name(v.type.tensor_type.elem_type), shape=value_shape(v),
                       value_range=_value_range(io), clamped=output and io == "uint8") for v in values]


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    import edgesr

    out = {"edgesr": edgesr.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
           "onnxruntime": onnxruntime.__version__, "python": platform.python_version()}
    try:
        import onnxsim

        out["onnxsim"] = str(onnxsim.__version__)
    except Exception:  # noqa: BLE001
        pass
    return out


def _weights_info(model: nn.Module) -> tuple[str | None, str | None]:
    path = getattr(model, "weights_path", None)
    if not path:
        return None, None
    from edgesr.utils.hashing import sha256_file

    p = Path(path)
    return str(path), (sha256_file(p) if p.is_file() else None)


def _probe_scale(model: nn.Module, example: torch.Tensor, declared: int | None) -> int:
    with torch.no_grad():
        try:
            y = model(example)
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"the model fails on a {tuple(example.shape)} input: {_first_line(exc)}") from exc
    if not isinstance(y, torch.Tensor) or y.ndim != 4 or y.shape[1] != example.shape[1]:
        raise ExportError(f"expected one NCHW RGB output, got {getattr(y, 'shape', type(y).__name__)}.")
    h, w = example.shape[-2:]
    if y.shape[-2] % h or y.shape[-1] % w or y.shape[-2] // h != y.shape[-1] // w:
        raise ExportError(f"output {tuple(y.shape)} is not an integer upscale of the input {tuple(example.shape)}.")
    measured = y.shape[-2] // h
    if declared is not None and declared != measured:
        raise ExportError(f"the model declares scale {declared} but upscales by {measured}.")
    return measured


def _node_modules(proto: "onnx.ModelProto") -> dict[str, str]:
    """ONNX node name -> "module.path (Class)" from the exporters' metadata / TorchScript node names."""
    import ast

    out = {}
    for node in proto.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        path, cls = None, ""
        if "pkg.torch.onnx.name_scopes" in meta:  # dynamo: ['', 'model', 'model.amplify', 'conv2d']
            try:
                scopes = ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])
                classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
            except (ValueError, SyntaxError):
                continue
            if len(scopes) >= 2:
                path = scopes[-2]
                cls = classes[-2].rsplit(".", 1)[-1] if len(classes) >= 2 else ""
        elif node.name.startswith("/"):  # TorchScript: /model/amplify/Conv
            path = ".".join(node.name.strip("/").split("/")[:-1])
        if path is not None:
            path = _strip_wrapper(path)
            out[node.name] = f"{path!r}" + (f" ({cls})" if cls else "")
    return out


def _overflow_error(proto32: "onnx.ModelProto", image: np.ndarray, io: str, threads: int, where: str,
                    modules: dict[str, str]) -> ExportError:
    from edgesr.export.fp16 import FP16_MAX
    from edgesr.export.verify import find_fp16_overflow

    hits = find_fp16_overflow(proto32, image, io, FP16_MAX, threads)
    detail = ""
    if hits:
        node, tensor, peak = hits[0]
        value = f"values up to {peak:.6g}" if math.isfinite(peak) else "non-finite values"
        module = f" in module {modules[node]}" if node in modules else ""
        detail = (f" The first to overflow is {tensor!r}, produced by node {node!r}{module}, with {value}"
                  + (f" ({len(hits)} tensors overflow in all)" if len(hits) > 1 else "") + ".")
    return ExportError(
        f"FP16 export failed: on the {where} parity image the FP16 graph's activations overflow the float16 "
        f"maximum of {FP16_MAX:g} (NaN/inf).{detail} Keep FP32 (drop --fp16), or keep values within float16 "
        "(e.g. --io float01 rather than float255, or rescale the layer)."
    )


def export_onnx(model: nn.Module, path: str | Path, options: ExportOptions | None = None) -> ExportResult:
    """Export an edgesr SR model (float RGB 0..1 NCHW in/out) to ``path`` (.onnx) and its sidecar (``<name>.onnx.json``).

    The model is not modified (folding works on a copy). Raises UserInputError for bad options or
    outputs that exist without `options.force`, ExportError when the model cannot be exported or the
    exported graph does not match PyTorch; in both cases nothing is written.
    """
    import onnx

    from edgesr.export.fp16 import convert_to_fp16, fp16_emulation_graph
    from edgesr.export.graph import fold_scalar_muls, initializer_stats, name_dynamic_dims, op_counts
    from edgesr.export.verify import (
        compare_255,
        create_session,
        parity_images,
        run_fp16_emulation,
        run_onnx_255,
        torch_reference_255,
    )
    from edgesr.utils.atomic import check_writable

    options = options or ExportOptions()
    if not isinstance(model, nn.Module):
        raise UserInputError(f"expected a torch.nn.Module, got {type(model).__name__}.")
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise UserInputError(f"the artifact path must end in .onnx, got {path}.")
    side_path = sidecar_path_for(path)
    min_size = int(getattr(model, "min_input_size", 1) or 1)
    lo, opt, hi, *sizes = _validate(options, min_size)
    check_writable(path, options.force)
    check_writable(side_path, options.force)

    warn: list[str] = []
    watch = _Stopwatch()
    reference = copy.deepcopy(model).float().cpu().eval()
    work = copy.deepcopy(model).float().cpu().eval()
    side = max(64, min_size)
    scale = _probe_scale(reference, torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)),
                         options.scale if options.scale is not None else getattr(model, "scale", None))

    wrapped = IOWrapper(work, options.io).eval()
    watch.lap("prepare")
    reparam_info, reparam_report = _reparameterize(wrapped, options, side)
    watch.lap("reparam")
    if options.io == "uint8":
        example = torch.randint(0, 256, (1, 3, side, side), dtype=torch.uint8,
                                generator=torch.Generator().manual_seed(0))
    else:
        example = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
        if options.io == "float255":
            example = example * 255.0

    raw, exporter, note = export_torch_to_onnx(wrapped, example, options.opset, options.exporter)
    watch.lap("export")
    proto = onnx.load_from_string(raw)
    node_modules = _node_modules(proto)
    name_dynamic_dims(proto, {INPUT_NAME: _INPUT_DIMS, OUTPUT_NAME: _OUTPUT_DIMS})
    exported_counts = op_counts(proto)
    simplified = False
    if options.simplify:
        proto, simplified, why = _simplify(proto)
        if why:
            warn.append(why)
            log.warning(why)
    fold_scalar_muls(proto)
    name_dynamic_dims(proto, {INPUT_NAME: _INPUT_DIMS, OUTPUT_NAME: _OUTPUT_DIMS})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"the exported graph fails the ONNX checker: {_first_line(exc)}") from exc
    proto32 = proto
    final = convert_to_fp16(proto32, keep_io_types=not options.fp16_io) if options.half else proto32
    watch.lap("simplify/check/fp16")

    # ---- parity on real images
    images = parity_images(sizes, options.parity_dir)
    threads = options.threads
    sess32 = create_session(proto32, threads=threads)
    sess16 = create_session(final, threads=threads) if options.half else None
    sess_emu = create_session(fp16_emulation_graph(proto32), threads=threads) if options.half else None
    tol = max(options.max_abs_diff, 1.0) if options.io == "uint8" else options.max_abs_diff
    entries = []
    for (name, image), (h, w) in zip(images, sizes):
        watch.lap("parity (onnxruntime)")
        ref = torch_reference_255(reference, image, options.io)
        watch.lap("parity (pytorch)")
        try:
            out32 = run_onnx_255(sess32, image, options.io)
        except Exception as exc:  # noqa: BLE001 - e.g. a shape the graph froze
            raise ExportError(f"ONNX Runtime fails on a {h}x{w} input: {_first_line(exc)}") from exc
        if out32.shape != ref.shape:
            raise ExportError(f"the exported graph returns {out32.shape} for a {h}x{w} input, PyTorch "
                              f"{ref.shape}: a shape was frozen at export.")
        c32 = compare_255(out32, ref)
        if not c32.finite or c32.max_abs_diff > tol:
            raise ExportError(
                f"parity check failed at {h}x{w}: ONNX Runtime differs from PyTorch by up to "
                f"{c32.max_abs_diff:.4g} (0..255 scale; allowed {tol:g}), PSNR {c32.psnr_db:.2f} dB."
            )
        entry = ParityEntry(height=h, width=w, image=name, max_abs_diff=c32.max_abs_diff, psnr_db=c32.psnr_db)
        if sess16 is not None and sess_emu is not None:
            c16 = compare_255(run_onnx_255(sess16, image, options.io), out32)
            emulated, peak = run_fp16_emulation(sess_emu, image, options.io)
            ce = compare_255(emulated, out32)
            if not (c16.finite and ce.finite and math.isfinite(peak)):
                raise _overflow_error(proto32, image, options.io, threads, f"{h}x{w} ({name})", node_modules)
            entry.fp16_max_abs_diff, entry.fp16_psnr_db = c16.max_abs_diff, c16.psnr_db
            entry.fp16_emulated_psnr_db, entry.fp16_peak = ce.psnr_db, peak
            worst = min(c16.psnr_db, ce.psnr_db)
            if options.fp16_min_psnr is not None and worst < options.fp16_min_psnr:
                raise ExportError(
                    f"FP16 export failed: the FP16 output is only {worst:.2f} dB from FP32 at {h}x{w} (at least "
                    f"{options.fp16_min_psnr:g} dB required; ONNX Runtime FP16 {c16.psnr_db:.2f} dB, strict "
                    f"FP16 emulation {ce.psnr_db:.2f} dB). No activation exceeds the float16 maximum of 65504 "
                    f"(peak {peak:.6g}), so precision, not range, is lost. Keep FP32 (drop --fp16)."
                )
        entries.append(entry)
    watch.lap("parity (onnxruntime)")

    # ---- metadata, sidecar, write
    weights_path, weights_sha = _weights_info(model)
    cfg = getattr(model, "pretrained_cfg", None)
    meta = {"edgesr.scale": str(scale), "edgesr.io": options.io, "edgesr.model": getattr(model, "edgesr_name", ""),
            "edgesr.precision": "fp16" if options.half else "fp32", "edgesr.layout": "NCHW RGB",
            "edgesr.sidecar": side_path.name}
    del final.metadata_props[:]
    for node in final.graph.node:  # exporter debug info (stack traces with local paths) stays private
        del node.metadata_props[:]
    for k, v in meta.items():
        final.metadata_props.add(key=k, value=v)
    final.doc_string = (f"edgesr {getattr(model, 'edgesr_name', type(model).__name__)} x{scale}; "
                        f"see {side_path.name} for I/O ranges, shapes and parity.")
    data = final.SerializeToString()
    n_init, init_bytes = initializer_stats(final)
    fp16_psnrs = [e.fp16_psnr_db for e in entries if e.fp16_psnr_db is not None]
    emu_psnrs = [e.fp16_emulated_psnr_db for e in entries if e.fp16_emulated_psnr_db is not None]
    peaks = [e.fp16_peak for e in entries if e.fp16_peak is not None]
    sidecar = Sidecar(
        artifact=ArtifactFile(file=path.name, format="onnx"),
        scale=scale,
        model=ModelInfo(name=getattr(model, "edgesr_name", type(model).__name__),
                        variant=getattr(cfg, "name", None), params=sum(p.numel() for p in model.parameters()),
                        weights_path=weights_path, weights_sha256=weights_sha),
        inputs=_tensor_specs(final.graph.input, options.io, output=False),
        outputs=_tensor_specs(final.graph.output, options.io, output=True),
        shape_profile=ShapeProfile(min=[options.batch[0], 3, *lo], opt=[options.batch[1], 3, *opt],
                                  max=[options.batch[2], 3, *hi]),
        alignment=int(getattr(model, "input_alignment", 1) or 1),
        min_size=min_size,
        halo=_tiling_halo(model),
        export=ExportInfo(exporter=exporter, exporter_note=note, opset=options.opset,
                          precision="fp16" if options.half else "fp32", fp16_io=bool(options.fp16_io),
                          io=options.io, simplified=simplified, reparam=reparam_info),
        parity=ParityInfo(
            reference="PyTorch eager FP32, CPU (the model before folding)",
            runtime=f"onnxruntime CPUExecutionProvider, {threads} threads",
            entries=entries,
            max_abs_diff=max(e.max_abs_diff for e in entries),
            min_psnr_db=min(e.psnr_db for e in entries),
            fp16_min_psnr_db=min(fp16_psnrs) if fp16_psnrs else None,
            fp16_emulated_min_psnr_db=min(emu_psnrs) if emu_psnrs else None,
            fp16_peak=max(peaks) if peaks else None),
        graph=GraphStats(nodes=len(final.graph.node), op_counts=op_counts(final),
                         nodes_exported=sum(exported_counts.values()), op_counts_exported=exported_counts,
                         initializers=n_init, initializer_bytes=init_bytes),
        versions=_versions(),
        created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    )
    sidecar.write({path: data}, force=options.force)  # the sidecar last, with the sha256 of the model file
    watch.lap("write")
    log.info("wrote %s and %s (%s)", path, side_path,
             ", ".join(f"{k} {v:.1f} s" for k, v in watch.stages.items()))
    return ExportResult(path=path, sidecar_path=side_path, sidecar=sidecar, reparam_report=reparam_report,
                        warnings=warn)
