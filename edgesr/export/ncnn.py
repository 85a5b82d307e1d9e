"""PyTorch SR model -> ncnn ``.param`` + ``.bin`` (via pnnx) + sidecar, verified with the ncnn runtime.

The pipeline of `export_ncnn`:

1. check the options, that pnnx and ncnn are installed (`pip install edgesr[mobile]`) and that the
   outputs may be written, before any work;
2. wrap a copy of the model for the I/O convention (``float01``: edgesr's float RGB 0..1, or
   ``float255``) and fold it for inference (`edgesr.transforms.reparameterize`; the range scaling
   folds into the first/last conv, except for FP16 weights, see below);
3. trace it with TorchScript (a trace that depends on tensor values in Python is refused, naming the
   line) and convert the trace with the pnnx converter at two different input sizes, which is how
   pnnx learns that height and width are dynamic;
4. scan the ``.param`` for layer types ncnn does not implement (pnnx writes an op it cannot map as a
   layer named after the op, e.g. ``torch.fft.rfft2`` or ``aten::erfinv``, which ncnn refuses to
   load) and fail naming the op and the module that calls it;
5. run the ncnn model with the ncnn Python runtime on crops of real images at several sizes (odd ones
   included), assert the output shape (= scale x input) and compare with PyTorch; with ``fp16`` a
   second conversion stores the weights as float16 and is compared too;
6. write ``<name>.param``, ``<name>.bin`` and then the sidecar ``<name>.param.json`` as one transaction
   (`edgesr.artifacts.store.write_artifact`).

Why the range scaling is not folded for FP16 weights: pnnx/ncnn's float16 weight storage flushes
float16 subnormals (|w| < 6.1e-5) to zero. Folding the 1/255 output scaling of a 0..255 model into its
last conv puts about a quarter of that conv's weights there (RLFN x4), which costs ~30 dB (50 dB
instead of 80 dB vs PyTorch). The FP16 export keeps the two scalar multiplications as layers instead.

pnnx is run through the converter executable its Python package ships (`pnnx.EXEC_PATH`), not through
`pnnx.export`, which discards the converter's exit status and log (a failure surfaces as an import
error of a missing generated file), imports the generated Python module, and ignores ``fp16`` when
given input shapes instead of tensors.

The shared helpers below (`prepare_model`, `parity_entries`, `build_sidecar`, ...) are used by
`edgesr.export.executorch` too.
"""
from __future__ import annotations

import collections
import copy
import datetime as _dt
import hashlib
import logging
import platform
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from edgesr.errors import ExportError, MissingDependencyError, UserInputError
from edgesr.export.onnx_export import ExportOptions, ExportResult, IOWrapper
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
from edgesr.metrics.psnr import format_psnr

log = logging.getLogger(__name__)

MOBILE_EXTRA = "pip install edgesr[mobile]"
MOBILE_IO_MODES = ("float01", "float255")
FP16_MIN_NORMAL = 6.103515625e-05  # smallest normal float16; ncnn's fp16 weights flush below it
INPUT_BLOB, OUTPUT_BLOB = "in0", "out0"  # the names pnnx gives a one-input, one-output graph
PNNX_TIMEOUT_S = 600


# =============================================================================== shared helpers


def import_pnnx() -> Any:
    """The pnnx package, or a MissingDependencyError naming the extra."""
    try:
        import pnnx
    except ImportError as exc:
        raise MissingDependencyError(
            f"ncnn export needs the Python package 'pnnx' (the PyTorch -> ncnn converter), which is not "
            f"installed ({exc}). Install it with: {MOBILE_EXTRA}.") from exc
    return pnnx


def import_ncnn() -> Any:
    """The ncnn package, or a MissingDependencyError naming the extra."""
    try:
        import ncnn
    except ImportError as exc:
        raise MissingDependencyError(
            f"ncnn export and the ncnn runner need the Python package 'ncnn', which is not installed ({exc}). "
            f"Install it with: {MOBILE_EXTRA}.") from exc
    return ncnn


def check_mobile_options(options: ExportOptions, min_size: int, fmt: str,
                         fp16_supported: bool = True) -> tuple[tuple[int, int], ...]:
    """Validate the ExportOptions fields a mobile format uses; return (min, opt, max, *parity sizes)."""
    from edgesr.export.onnx_export import _check_shape

    if options.io not in MOBILE_IO_MODES:
        hint = ""
        if fmt == "ncnn":
            hint = (" ncnn takes float Mats: convert 8-bit pixels with Mat::from_pixels and "
                    "substract_mean_normalize using the sidecar's ncnn.mean_vals / ncnn.norm_vals.")
        raise UserInputError(f"io {options.io!r} is not supported for {fmt} export; choose one of "
                             f"{', '.join(MOBILE_IO_MODES)}.{hint}")
    if options.fp16_io:
        raise UserInputError(f"--fp16-io is not supported for {fmt} export: its input and output are float32 "
                             f"({'use --fp16 for float16 weight storage' if fp16_supported else 'drop it'}).")
    if options.half and not fp16_supported:
        raise UserInputError(f"--fp16 is not supported for {fmt} export; export FP32 (drop --fp16).")
    lo = _check_shape(options.min_shape or (min_size, min_size), "min shape")
    opt = _check_shape(options.opt_shape, "opt shape")
    hi = _check_shape(options.max_shape, "max shape")
    if lo[0] < min_size or lo[1] < min_size:
        raise UserInputError(f"min shape {lo[0]}x{lo[1]} is below this model's minimum input size "
                             f"{min_size}x{min_size}.")
    if not (lo[0] <= opt[0] <= hi[0] and lo[1] <= opt[1] <= hi[1]):
        raise UserInputError(f"shapes must satisfy min <= opt <= max per dimension, got min {lo[0]}x{lo[1]}, "
                             f"opt {opt[0]}x{opt[1]}, max {hi[0]}x{hi[1]}.")
    sizes = tuple(_check_shape(s, "parity size") for s in options.parity_sizes)
    if not sizes:
        raise UserInputError("at least one parity size is needed: an unverified export is not written.")
    for h, w in sizes:
        if h < lo[0] or w < lo[1] or h > hi[0] or w > hi[1]:
            raise UserInputError(f"parity size {h}x{w} is outside the export's shape range {lo[0]}x{lo[1]} .. "
                                 f"{hi[0]}x{hi[1]}.")
    if options.max_abs_diff <= 0:
        raise UserInputError(f"max_abs_diff must be positive, got {options.max_abs_diff!r}.")
    return (lo, opt, hi) + sizes


@dataclass
class PreparedModel:
    """An edgesr model made ready for a mobile converter."""

    reference: nn.Module        # the caller's model, copied, fp32 CPU eval: what parity compares with
    module: nn.Module           # IOWrapper(copy) folded for inference: what gets converted
    scale: int
    min_size: int
    reparam: ReparamInfo
    reparam_report: Any = None


def prepare_model(model: nn.Module, options: ExportOptions, keep_value_scales: bool = False) -> PreparedModel:
    """Copy, wrap for `options.io` and fold `model` (the caller's model is not modified).

    `keep_value_scales` skips the ``value_scale`` fold pass (the I/O range multiplications stay).
    """
    from edgesr.export.onnx_export import _probe_scale, _reparameterize

    if not isinstance(model, nn.Module):
        raise UserInputError(f"expected a torch.nn.Module, got {type(model).__name__}.")
    min_size = int(getattr(model, "min_input_size", 1) or 1)
    reference = copy.deepcopy(model).float().cpu().eval()
    work = copy.deepcopy(model).float().cpu().eval()
    side = max(64, min_size)
    example = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    declared = options.scale if options.scale is not None else getattr(model, "scale", None)
    scale = _probe_scale(reference, example, declared)
    wrapped = IOWrapper(work, options.io).eval()
    if keep_value_scales and "value_scale" not in options.reparam_skip:
        options = copy.copy(options)
        options.reparam_skip = tuple(options.reparam_skip) + ("value_scale",)
    info, report = _reparameterize(wrapped, options, side)
    return PreparedModel(reference, wrapped.eval(), scale, min_size, info, report)


def example_input(height: int, width: int, io: str, seed: int = 0) -> torch.Tensor:
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))
    return x * 255.0 if io == "float255" else x


def locate_ops(module: nn.Module, example: torch.Tensor, ops: Sequence[str]) -> dict[str, str]:
    """{op: "'module.path' (Class)"} for the ops a run of `module` can attribute to a module."""
    from edgesr.export.onnx_export import _locate_op

    found = {}
    for op in ops:
        for candidate in _op_aliases(op):
            where = _locate_op(module, example, candidate)
            if where:
                found[op] = where
                break
    return found


def _op_aliases(op: str) -> list[str]:
    """Names a torch function / aten op is seen under at run time: 'torch.fft.rfft2' -> fft_rfft2, rfft2."""
    base = op.split("::")[-1]
    parts = [p for p in base.replace("torch.", "").replace("Tensor.", "").replace("F.", "").split(".") if p]
    out = []
    if parts:
        out.append("_".join(parts))
        out.append(parts[-1])
    return [o for i, o in enumerate(out) if o and o not in out[:i]]


def trace_module(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """TorchScript trace; a trace that hard-codes a value-dependent branch/shape is an ExportError."""
    import linecache

    from edgesr.export.onnx_export import _module_at, _strip_wrapper

    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        try:
            traced = torch.jit.trace(module, (example,), check_trace=False)
        except Exception as exc:  # noqa: BLE001 - turned into a clear ExportError
            raise ExportError(f"TorchScript tracing failed: {str(exc).strip().splitlines()[0][:300]}") from exc
    tracer = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    if tracer:
        w = tracer[0]
        found = _module_at(module, w.filename, w.lineno)
        code = linecache.getline(w.filename, w.lineno).strip()
        where = f"module {_strip_wrapper(found[0])!r} ({found[1]})" if found else "the model"
        raise ExportError(
            f"{where} cannot be traced faithfully: {Path(w.filename).name}:{w.lineno} `{code}` depends on tensor "
            f"values in Python ({str(w.message).split('.')[0]}), so the converted model would hard-code one "
            "branch/shape. Rewrite it with tensor ops (torch.where, masks) instead of Python control flow.")
    return traced


def parity_sizes_images(sizes: Sequence[tuple[int, int]], folder: Any) -> list[tuple[str, np.ndarray]]:
    from edgesr.export.verify import parity_images

    return parity_images(sizes, folder)


def image_to_input(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 1x3xHxW in 0..1 (the edgesr convention)."""
    return np.ascontiguousarray((image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])


def compare_outputs(name: str, fmt: str, h: int, w: int, got01: np.ndarray, ref255: np.ndarray,
                    tol: float) -> tuple[float, float]:
    """(max abs diff, PSNR) of a runtime's 0..1 output vs the PyTorch reference on 0..255; the output
    shape must equal the reference's (a frozen shape is an ExportError)."""
    from edgesr.export.verify import compare_255

    if tuple(got01.shape) != tuple(ref255.shape):
        raise ExportError(f"the {fmt} model returns {tuple(got01.shape)} for a {h}x{w} input, PyTorch "
                          f"{tuple(ref255.shape)}: a shape was frozen at conversion ({name}).")
    cmp = compare_255(got01.astype(np.float64) * 255.0, ref255)
    if not cmp.finite or cmp.max_abs_diff > tol:
        raise ExportError(f"parity check failed at {h}x{w}: {fmt} differs from PyTorch by up to "
                          f"{cmp.max_abs_diff:.4g} (0..255 scale; allowed {tol:g}), PSNR {cmp.psnr_db:.2f} dB.")
    return cmp.max_abs_diff, cmp.psnr_db


def parity_entries(reference: nn.Module, sizes: Sequence[tuple[int, int]], options: ExportOptions, fmt: str,
                   run: Callable[[np.ndarray], np.ndarray],
                   run16: Callable[[np.ndarray], np.ndarray] | None = None) -> list[ParityEntry]:
    """Parity of `run` (float32 1x3xHxW 0..1 -> same, x scale) vs the PyTorch `reference` on real images.

    `run16` (an FP16 artifact) is compared with `run` and must stay above `options.fp16_min_psnr`.
    """
    from edgesr.export.verify import compare_255, torch_reference_255

    entries = []
    for (name, image), (h, w) in zip(parity_sizes_images(sizes, options.parity_dir), sizes):
        ref = torch_reference_255(reference, image, "float01")
        x = image_to_input(image)
        try:
            out = run(x)
        except ExportError:
            raise
        except Exception as exc:  # noqa: BLE001 - a runtime failure at this size
            raise ExportError(f"the {fmt} model fails on a {h}x{w} input: {str(exc).strip()[:300]}") from exc
        diff, psnr = compare_outputs(name, fmt, h, w, out, ref, options.max_abs_diff)
        entry = ParityEntry(height=h, width=w, image=name, max_abs_diff=diff, psnr_db=psnr)
        if run16 is not None:
            out16 = run16(x)
            if tuple(out16.shape) != tuple(out.shape):
                raise ExportError(f"the FP16 {fmt} model returns {tuple(out16.shape)} for a {h}x{w} input, "
                                  f"FP32 {tuple(out.shape)}.")
            c16 = compare_255(out16.astype(np.float64) * 255.0, out.astype(np.float64) * 255.0)
            if not c16.finite:
                raise ExportError(f"FP16 export failed: the FP16 {fmt} model returns NaN/inf at {h}x{w}. "
                                  "Keep FP32 (drop --fp16).")
            if options.fp16_min_psnr is not None and c16.psnr_db < options.fp16_min_psnr:
                raise ExportError(f"FP16 export failed: the FP16 {fmt} output is only {c16.psnr_db:.2f} dB from "
                                  f"FP32 at {h}x{w} (at least {options.fp16_min_psnr:g} dB required). "
                                  "Keep FP32 (drop --fp16).")
            entry.fp16_max_abs_diff, entry.fp16_psnr_db = c16.max_abs_diff, c16.psnr_db
        entries.append(entry)
    return entries


def parity_info(entries: list[ParityEntry], runtime: str) -> ParityInfo:
    fp16 = [e.fp16_psnr_db for e in entries if e.fp16_psnr_db is not None]
    return ParityInfo(reference="PyTorch eager FP32, CPU (the model before folding)", runtime=runtime,
                      entries=entries, max_abs_diff=max(e.max_abs_diff for e in entries),
                      min_psnr_db=min(e.psnr_db for e in entries), fp16_min_psnr_db=min(fp16) if fp16 else None)


def base_versions(**extra: str) -> dict[str, str]:
    import edgesr

    return {"edgesr": edgesr.__version__, "torch": torch.__version__, **extra, "python": platform.python_version()}


def build_sidecar(model: nn.Module, prepared: PreparedModel, options: ExportOptions, *, artifact: str,
                  fmt: str, inputs: list[TensorSpec], outputs: list[TensorSpec], shapes: tuple, exporter: str,
                  note: str | None, parity: ParityInfo, graph: GraphStats, versions: dict[str, str],
                  precision: str, min_size: int) -> Sidecar:
    """The common sidecar of the mobile artifact file `artifact` (the caller adds the format's own block; the file
    sizes and checksums are filled in when it is written)."""
    from edgesr.export.onnx_export import _tiling_halo, _weights_info

    lo, opt, hi = shapes
    weights_path, weights_sha = _weights_info(model)
    cfg = getattr(model, "pretrained_cfg", None)
    return Sidecar(
        artifact=ArtifactFile(file=artifact, format=fmt),
        scale=prepared.scale,
        model=ModelInfo(name=getattr(model, "edgesr_name", type(model).__name__), variant=getattr(cfg, "name", None),
                        params=sum(p.numel() for p in model.parameters()), weights_path=weights_path,
                        weights_sha256=weights_sha),
        inputs=inputs, outputs=outputs,
        shape_profile=ShapeProfile(min=[1, 3, *lo], opt=[1, 3, *opt], max=[1, 3, *hi]),
        alignment=int(getattr(model, "input_alignment", 1) or 1),
        min_size=int(min_size),
        halo=_tiling_halo(model),
        export=ExportInfo(exporter=exporter, exporter_note=note, opset=0, precision=precision, fp16_io=False,
                          io=options.io, simplified=False, reparam=prepared.reparam),
        parity=parity, graph=graph, versions=versions,
        created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    )


def tensor_specs(io: str, in_name: str, out_name: str, dynamic: bool = True,
                 static_hw: tuple[int, int] | None = None, scale: int = 1) -> tuple[list[TensorSpec], list[TensorSpec]]:
    rng = [0.0, 1.0] if io == "float01" else [0.0, 255.0]
    if dynamic or static_hw is None:
        ishape: list[int | str] = [1, 3, "height", "width"]
        oshape: list[int | str] = [1, 3, "out_height", "out_width"]
    else:
        ishape = [1, 3, *static_hw]
        oshape = [1, 3, static_hw[0] * scale, static_hw[1] * scale]
    return ([TensorSpec(name=in_name, dtype="float32", shape=ishape, value_range=rng)],
            [TensorSpec(name=out_name, dtype="float32", shape=oshape, value_range=rng)])


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


@dataclass
class MobileExportResult(ExportResult):
    """What a mobile export wrote and measured: `files` are all the files written (artifact(s) and
    sidecar); `details` is the format's own sidecar block."""

    files: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> list[str]:
        sc, ex = self.sidecar, self.sidecar.export
        lines = []
        rp = ex.reparam
        lines.append(f"reparam: {', '.join(rp.passes) or 'no pass changed the model'}" if rp.applied
                     else f"reparam: not applied{f' ({rp.report})' if rp.report else ''}")
        note = f" ({ex.exporter_note})" if ex.exporter_note else ""
        lines.append(f"format: {sc.artifact.format} via {ex.exporter}{note}, io {ex.io}, precision {ex.precision}")
        g = sc.graph
        from edgesr.export.graph import format_op_counts

        lines.append(f"graph: {g.nodes} layers/ops: {format_op_counts(g.op_counts, 8)}")
        for e in sc.parity.entries:
            fp16 = ""
            if e.fp16_max_abs_diff is not None:
                fp16 = f" | fp16 vs fp32: max|d| {e.fp16_max_abs_diff:.4g}, PSNR {format_psnr(e.fp16_psnr_db)}"
            lines.append(f"parity {e.height}x{e.width} ({sc.parity.runtime}): vs PyTorch max|d| "
                         f"{e.max_abs_diff:.3g} (0..255), PSNR {format_psnr(e.psnr_db)}{fp16}")
        written = ", ".join(f"{p} ({_size(p.stat().st_size)})" for p in self.files if p.exists())
        lines.append(f"wrote {written}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines


def check_outputs(paths: Sequence[Path], force: bool) -> None:
    from edgesr.utils.atomic import check_writable

    for p in paths:
        check_writable(p, force)


# ======================================================================================= ncnn


@dataclass(frozen=True)
class NcnnLayer:
    """One line of an ncnn ``.param`` file."""

    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: str = ""


def read_param(path: str | Path) -> list[NcnnLayer]:
    """Parse an ncnn text ``.param`` (magic 7767517, counts, then one layer per line)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read the ncnn param file {path}: {exc}") from exc
    if not lines or lines[0].strip() != "7767517":
        raise UserInputError(f"{path} is not an ncnn text param file (first line {lines[0][:20] if lines else ''!r}, "
                             "expected 7767517).")
    layers = []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        try:
            n_in, n_out = int(parts[2]), int(parts[3])
        except (IndexError, ValueError):
            raise UserInputError(f"{path}:{number}: malformed layer line {line[:80]!r}") from None
        bottoms = tuple(parts[4:4 + n_in])
        tops = tuple(parts[4 + n_in:4 + n_in + n_out])
        layers.append(NcnnLayer(parts[0], parts[1], bottoms, tops, " ".join(parts[4 + n_in + n_out:])))
    return layers


def param_io_blobs(layers: Sequence[NcnnLayer]) -> tuple[list[str], list[str]]:
    """(input blobs: tops of Input layers, output blobs: produced and never consumed)."""
    inputs = [t for layer in layers if layer.type == "Input" for t in layer.tops]
    consumed = {b for layer in layers for b in layer.bottoms}
    outputs = [t for layer in layers for t in layer.tops if t not in consumed]
    return inputs, outputs


def unknown_layer_types(layers: Sequence[NcnnLayer], ncnn: Any = None) -> list[str]:
    """Layer types of the param that the installed ncnn does not implement, in file order."""
    ncnn = ncnn or import_ncnn()
    seen: dict[str, None] = {}
    for layer in layers:
        if layer.type not in seen and ncnn.layer_to_index(layer.type) < 0:
            seen[layer.type] = None
    return list(seen)


def layer_counts(layers: Sequence[NcnnLayer]) -> dict[str, int]:
    counts = collections.Counter(layer.type for layer in layers)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def unsupported_op_error(kinds: Sequence[str], layers: Sequence[NcnnLayer], where: dict[str, str]) -> ExportError:
    parts = []
    for kind in kinds:
        names = [layer.name for layer in layers if layer.type == kind]
        expr = ""
        if kind == "pnnx.Expression":
            expr = next((f" [{layer.params}]" for layer in layers if layer.type == kind and layer.params), "")
        loc = f" in module {where[kind]}" if kind in where else ""
        parts.append(f"{kind}{loc} ({len(names)} layer{'s' if len(names) > 1 else ''}, e.g. {names[0]}){expr}")
    return ExportError(
        f"ncnn cannot express op{'s' if len(kinds) > 1 else ''} {'; '.join(parts)}: pnnx left "
        f"{'them' if len(kinds) > 1 else 'it'} as layer type(s) the installed ncnn does not implement. Replace "
        "the op with ones ncnn supports (convolutions, elementwise ops, pooling, interpolation, PixelShuffle, ...), "
        "or export another format (--format onnx / executorch).")


def _pnnx_shape(x: torch.Tensor) -> str:
    return "[" + ",".join(str(d) for d in x.shape) + "]f32"


def ncnn_from_torchscript(traced_path: Path, out_dir: Path, stem: str, example: torch.Tensor,
                          example2: torch.Tensor, fp16: bool = False) -> tuple[Path, Path, str]:
    """Run the pnnx converter on a saved TorchScript module; return (param, bin, converter log).

    `example` and `example2` must differ in height and width: pnnx compares the two traces to mark
    them dynamic. Every file pnnx writes goes to `out_dir`.
    """
    pnnx = import_pnnx()
    exe = Path(getattr(pnnx, "EXEC_PATH", ""))
    if not exe.is_file():
        raise MissingDependencyError(f"the pnnx converter executable is missing from the installed pnnx package "
                                     f"({exe}); reinstall it: {MOBILE_EXTRA}.")
    out = {k: out_dir / f"{stem}{suffix}" for k, suffix in (
        ("pnnxparam", ".pnnx.param"), ("pnnxbin", ".pnnx.bin"), ("pnnxpy", "_pnnx.py"), ("pnnxonnx", ".pnnx.onnx"),
        ("ncnnparam", ".ncnn.param"), ("ncnnbin", ".ncnn.bin"), ("ncnnpy", "_ncnn.py"))}
    cmd = [str(exe), str(traced_path), f"inputshape={_pnnx_shape(example)}", f"inputshape2={_pnnx_shape(example2)}",
           "device=cpu", "optlevel=2", f"fp16={1 if fp16 else 0}", *(f"{k}={v}" for k, v in out.items())]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out_dir, timeout=PNNX_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"pnnx did not finish within {PNNX_TIMEOUT_S} s.") from exc
    text = (proc.stdout or "") + (proc.stderr or "")
    param, bin_ = out["ncnnparam"], out["ncnnbin"]
    if proc.returncode != 0 or not param.is_file() or not bin_.is_file():
        tail = "\n".join(line for line in text.strip().splitlines()[-8:])
        raise ExportError(f"pnnx failed to convert the model (exit status {proc.returncode}):\n{tail}")
    return param, bin_, text


def ignored_params(log_text: str, known: Callable[[str], bool]) -> list[str]:
    """pnnx's "ignore <type> <name> param <p>=..." lines for layer types ncnn implements (a dropped
    parameter of a supported layer may change results; parity decides)."""
    out = []
    for line in log_text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "ignore" and parts[3] == "param" and known(parts[1]):
            out.append(" ".join(parts[1:]))
    return out


class NcnnModel:
    """A loaded ncnn net run on float32 NCHW 0..1 arrays (one image per extractor)."""

    def __init__(self, param: Path, bin_: Path, *, threads: int = 2, fp16: bool = False,
                 input_blob: str = INPUT_BLOB, output_blob: str = OUTPUT_BLOB) -> None:
        ncnn = import_ncnn()
        self.net = ncnn.Net()
        set_ncnn_options(self.net.opt, threads=threads, fp16=fp16)
        if self.net.load_param(str(param)) != 0:
            raise ExportError(f"ncnn cannot load {param.name}")
        if self.net.load_model(str(bin_)) != 0:
            raise ExportError(f"ncnn cannot load the weights {bin_.name}")
        self.input_blob, self.output_blob = input_blob, output_blob
        self._ncnn = ncnn

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.stack([run_ncnn_image(self._ncnn, self.net, self.input_blob, self.output_blob, img) for img in x])


def set_ncnn_options(opt: Any, *, threads: int | None, fp16: bool, fp16_arithmetic: bool = False,
                     vulkan: bool = False) -> None:
    """Set the ncnn Option fields edgesr controls (before load_param). ncnn's defaults enable FP16
    storage and arithmetic where the CPU has them (ARMv8.2): FP32 artifacts turn them off."""
    if threads is not None:
        opt.num_threads = int(threads)
    opt.use_vulkan_compute = bool(vulkan)
    opt.use_fp16_storage = bool(fp16)
    opt.use_fp16_packed = bool(fp16)
    opt.use_fp16_arithmetic = bool(fp16 and fp16_arithmetic)
    opt.use_bf16_storage = False


def run_ncnn_image(ncnn: Any, net: Any, input_blob: str, output_blob: str, image: np.ndarray) -> np.ndarray:
    """One CHW float32 image through `net`; returns a float32 CHW copy of the output blob."""
    with net.create_extractor() as ex:
        # clone: ncnn may compute in place into the input Mat, which must not be the caller's array
        if ex.input(input_blob, ncnn.Mat(np.ascontiguousarray(image, dtype=np.float32)).clone()) != 0:
            raise ExportError(f"ncnn has no input blob {input_blob!r}")
        rc, out = ex.extract(output_blob)
        if rc != 0:
            raise ExportError(f"ncnn failed to compute blob {output_blob!r} (status {rc}) for a {image.shape} input")
        y = np.array(out, dtype=np.float32, copy=True)
    if y.ndim == 2:  # a one-channel output comes back as HxW
        y = y[None]
    return y


def export_ncnn(model: nn.Module, path: str | Path, options: ExportOptions | None = None,
                **kw: Any) -> MobileExportResult:
    """Export an edgesr SR model to ncnn: ``path`` (``.param``), the ``.bin`` and the sidecar ``<name>.param.json``.

    Uses from `options`: io ("float01" | "float255"), fp16 (float16 weight storage, and FP16 storage in
    the sidecar's runtime options), reparam*, min/opt/max shape (the sidecar's recommended profile; ncnn
    itself takes any size >= the model's minimum), parity_sizes / parity_dir / max_abs_diff /
    fp16_min_psnr, threads (ncnn threads for the parity runs), force. Raises UserInputError for bad
    options, MissingDependencyError without pnnx/ncnn, ExportError when the model cannot be converted or
    the ncnn model does not match PyTorch; nothing is written then. The model is not modified.
    """
    options = options or ExportOptions()
    path = Path(path)
    if kw:
        raise UserInputError(f"unknown option(s) for the ncnn format: {', '.join(sorted(kw))}.")
    if path.suffix.lower() != ".param":
        raise UserInputError(f"the ncnn artifact path must end in .param (the .bin goes beside it), got {path}.")
    import_pnnx()
    ncnn = import_ncnn()
    if not isinstance(model, nn.Module):
        raise UserInputError(f"expected a torch.nn.Module, got {type(model).__name__}.")
    min_size = int(getattr(model, "min_input_size", 1) or 1)
    lo, opt, hi, *sizes = check_mobile_options(options, min_size, "ncnn")
    bin_path, side_path = path.with_suffix(".bin"), sidecar_path_for(path)
    check_outputs([path, bin_path, side_path], options.force)

    prepared = prepare_model(model, options, keep_value_scales=options.half)
    # two trace sizes that differ in H and W and keep every intermediate (ESA's pooled map) above 1 pixel
    side = max(64, min_size)
    example = example_input(side, side, options.io)
    example2 = example_input(side + 19, side - 11 if side - 11 >= max(min_size, 32) else side + 7, options.io, seed=1)
    warn: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgesr-ncnn-") as tmp:
        tmpdir = Path(tmp)
        traced = trace_module(prepared.module, example)
        pt = tmpdir / "model.pt"
        traced.save(str(pt))
        param32, bin32, log32 = ncnn_from_torchscript(pt, tmpdir, "fp32", example, example2, fp16=False)
        layers = read_param(param32)
        unknown = unknown_layer_types(layers, ncnn)
        if unknown:
            where = locate_ops(prepared.module, example, [k for k in unknown if k != "pnnx.Expression"][:3])
            raise unsupported_op_error(unknown, layers, where)
        for item in ignored_params(log32, lambda t: ncnn.layer_to_index(t) >= 0):
            warn.append(f"pnnx ignored a parameter: {item}")
        inputs, outputs = param_io_blobs(layers)
        if len(inputs) != 1 or len(outputs) != 1:
            raise ExportError(f"the ncnn model has inputs {inputs} and outputs {outputs}; edgesr exports one image "
                              "in and one image out.")
        in_blob, out_blob = inputs[0], outputs[0]
        run32 = NcnnModel(param32, bin32, threads=options.threads, input_blob=in_blob, output_blob=out_blob)
        run16 = None
        param_final, bin_final = param32, bin32
        if options.half:
            param16, bin16, _ = ncnn_from_torchscript(pt, tmpdir, "fp16", example, example2, fp16=True)
            run16 = NcnnModel(param16, bin16, threads=options.threads, fp16=True, input_blob=in_blob,
                              output_blob=out_blob)
            param_final, bin_final = param16, bin16
            tiny = _fp16_flushed_weights(prepared.module)
            if tiny > 0.01:  # a few are harmless (RLFN/RFDN: 0.1%, 80 dB); the folded 1/255 scale made 25%
                warn.append(f"{tiny:.1%} of the weights are below the smallest normal float16 {FP16_MIN_NORMAL:.3g} "
                            "and become 0 in ncnn's FP16 weight storage")
        io_scale = 1.0 if options.io == "float01" else 255.0

        def to_runtime(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
            return lambda x01: fn(x01 * np.float32(io_scale)) / np.float32(io_scale)

        entries = parity_entries(prepared.reference, sizes, options, "ncnn", to_runtime(run32),
                                 to_runtime(run16) if run16 is not None else None)
        param_bytes, bin_bytes = param_final.read_bytes(), bin_final.read_bytes()

    import pnnx

    precision = "fp16" if options.half else "fp32"
    inputs_spec, outputs_spec = tensor_specs(options.io, in_blob, out_blob)
    norm = 1.0 / 255.0 if options.io == "float01" else 1.0
    block = {
        "param": path.name,
        "bin": {"file": bin_path.name, "bytes": len(bin_bytes), "sha256": hashlib.sha256(bin_bytes).hexdigest()},
        "input_blob": in_blob,
        "output_blob": out_blob,
        "mean_vals": [0.0, 0.0, 0.0],
        "norm_vals": [norm, norm, norm],
        "output_scale": 255.0 if options.io == "float01" else 1.0,
        "pixel_format": "RGB",
        "fp16_weights": bool(options.half),
        "opt": {"use_fp16_storage": bool(options.half), "use_fp16_packed": bool(options.half),
                "use_fp16_arithmetic": False, "use_bf16_storage": False, "use_vulkan_compute": False},
        "dynamic_shape": True,
        "layers": len(layers),
        "value_scales_folded": not options.half,
    }
    sidecar = build_sidecar(
        model, prepared, options, artifact=path.name, fmt="ncnn", inputs=inputs_spec, outputs=outputs_spec, shapes=(lo, opt, hi), exporter="pnnx",
        note="TorchScript trace converted by pnnx at two input sizes (dynamic height/width)" + (
            "; FP16 weights: the I/O range scalings stay layers, not folded into the convs (fp16 subnormals)"
            if options.half else ""),
        parity=parity_info(entries, f"ncnn {ncnn.__version__} CPU, {options.threads} threads"
                           + (" (fp16 vs the fp32 conversion)" if options.half else "")),
        graph=GraphStats(nodes=len(layers), op_counts=layer_counts(layers), nodes_exported=len(layers),
                         op_counts_exported=layer_counts(layers), initializers=0, initializer_bytes=len(bin_bytes)),
        versions=base_versions(pnnx=str(getattr(pnnx, "__version__", "?")), ncnn=str(ncnn.__version__)),
        precision=precision, min_size=prepared.min_size)
    sidecar.blocks["ncnn"] = block
    sidecar.write({path: param_bytes, bin_path: bin_bytes}, force=options.force, roles={bin_path.name: "weights"})
    log.info("wrote %s, %s and %s", path, bin_path, side_path)
    return MobileExportResult(path=path, sidecar_path=side_path, sidecar=sidecar,
                              reparam_report=prepared.reparam_report, warnings=warn,
                              files=[path, bin_path, side_path], details=block)


def _fp16_flushed_weights(module: nn.Module) -> float:
    """Fraction of the non-zero conv/linear weights that float16 storage without subnormals zeroes."""
    total = tiny = 0
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight.detach().abs()
            nz = w[w > 0]
            total += nz.numel()
            tiny += int((nz < FP16_MIN_NORMAL).sum())
    return tiny / total if total else 0.0


def read_ncnn_blobs(param: str | Path) -> tuple[str, str]:
    """(input blob, output blob) of a one-input one-output ncnn param file."""
    layers = read_param(param)
    inputs, outputs = param_io_blobs(layers)
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserInputError(f"{Path(param).name} has input blobs {inputs} and output blobs {outputs}; "
                             "edgesr runners expect one image in, one image out.")
    return inputs[0], outputs[0]


__all__ = [
    "MOBILE_EXTRA",
    "MobileExportResult",
    "NcnnLayer",
    "NcnnModel",
    "export_ncnn",
    "ncnn_from_torchscript",
    "param_io_blobs",
    "read_ncnn_blobs",
    "read_param",
    "unknown_layer_types",
]
