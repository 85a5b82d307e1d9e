"""`edgesr export MODEL --format trt`: model -> ONNX (FP32 / FP16 / Q/DQ INT8) -> readiness -> TensorRT engine.

    result = export_engine(model, "out", TrtExportOptions(fp16=True, timing_cache="out/trt.cache"))
    print("\\n".join(result.summary()))

Files (``<base>`` is the ONNX artifact name, e.g. ``rlfn_x4_fp16``): ``<base>.onnx`` + ``<base>.onnx.json``
(the verified ONNX export), for INT8 also ``<base>_int8.onnx`` + its sidecar (the Q/DQ copy), and the engine
``<base>[_int8]_trt.engine`` + ``<base>[_int8]_trt.engine.json`` (engine sidecar, see
`edgesr.export.tensorrt.build`).
TensorRT and the GPU are checked first, before any export work.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from torch import nn

from edgesr.errors import ExportError, UserInputError
from edgesr.export.tensorrt.build import EngineBuildResult, TrtBuildOptions, engine_from_onnx
from edgesr.export.tensorrt.profiles import make_profile

if TYPE_CHECKING:
    from edgesr.artifacts.sidecar import Sidecar

log = logging.getLogger(__name__)


@dataclass
class TrtExportOptions:
    """`build` holds the TensorRT builder options; `int8_calib` the calibration image folder for --int8."""

    build: TrtBuildOptions = field(default_factory=TrtBuildOptions)
    int8_calib: Path | None = None
    name: str | None = None
    quantizer: str = "auto"  # see quantize_artifact
    int8_budget: dict[str, Any] = field(default_factory=dict)  # quantize_onnx keyword arguments (Int8Budget)


@dataclass
class TrtExportResult:
    onnx_path: Path
    engine: EngineBuildResult
    qdq_path: Path | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.engine.engine_path

    def summary(self) -> list[str]:
        return self.lines + self.engine.summary()


@dataclass(frozen=True)
class TrtConfig:
    """The options of ``--format trt`` (`edgesr.export.formats` builds one from the command line by field name):
    `int8` with `calib_images` (a Q/DQ INT8 engine), builder `workspace` (MB), `timing_cache` (file), `opt_level`
    (0..5), `hardware_compat` (one engine for every Ampere+ GPU), `weakly_typed` (with --fp16 on TensorRT 10.x:
    the FP32 ONNX and the deprecated FP16 builder flag)."""

    int8: bool = False
    calib_images: Path | None = None
    calib_method: str | None = None
    int8_max_drop: float | None = None
    int8_max_float: int | None = None
    int8_val: str | None = None
    workspace: int | None = None
    timing_cache: Path | None = None
    opt_level: int | None = None
    hardware_compat: bool = False
    weakly_typed: bool = False

    @property
    def name_suffix(self) -> str:
        return "_int8_trt" if self.int8 else "_trt"

    def build_options(self, options: Any) -> TrtBuildOptions:
        """The builder options for the common export `options` (`ExportOptions`)."""
        # --weakly-typed (checked by `prepare` to go with --fp16) exports FP32 and sets the FP16 builder flag
        return TrtBuildOptions(fp16=bool(options.half or self.weakly_typed), int8=self.int8,
                               strongly_typed=False if self.weakly_typed else None,
                               workspace_mb=self.workspace if self.workspace is not None else
                               TrtBuildOptions.workspace_mb, timing_cache=self.timing_cache,
                               opt_level=self.opt_level, hardware_compat=self.hardware_compat)

    def budget(self) -> Any:
        """The INT8 quality budget (`edgesr.export.formats.Int8Budget`) of the Q/DQ graph's quantization."""
        from edgesr.export.formats import Int8Budget

        return Int8Budget(method=self.calib_method, max_drop_db=self.int8_max_drop, max_float=self.int8_max_float,
                          val_dataset=self.int8_val)

    def prepare(self, options: Any, trt: ModuleType | None = None) -> Any:
        """Validate against the common `options`, check TensorRT and the GPU (fail fast, before the export);
        returns the options the ONNX export runs with (FP32 for --weakly-typed)."""
        from edgesr.export.tensorrt.runtime import preflight

        if self.int8 and self.calib_images is None:
            raise UserInputError("--int8 needs --calib-images DIR (real images to calibrate the INT8 ranges on).")
        if self.calib_images is not None and not self.int8:
            raise UserInputError("--calib-images is for --int8.")
        if not self.int8 and any(v is not None for v in (self.calib_method, self.int8_max_drop, self.int8_max_float,
                                                         self.int8_val)):
            raise UserInputError("--calib-method / --int8-max-drop / --int8-max-float / --int8-val are for --int8.")
        self.budget().check()
        if self.calib_images is not None and not Path(self.calib_images).is_dir():
            raise UserInputError(f"--calib-images folder not found: {self.calib_images}")
        if self.weakly_typed and (options.fp16_io or not options.half):
            raise UserInputError("--weakly-typed goes with --fp16 (FP32 ONNX + the TensorRT 10.x FP16 builder flag); "
                                 "it cannot give FP16 I/O.")
        build = self.build_options(options)
        build.validate()
        preflight(trt, build.gpu_index)
        return replace(options, fp16=False, fp16_io=False) if self.weakly_typed else options


def export_trt(model: nn.Module, path: str | Path, options: Any, config: TrtConfig | None = None,
               **kw: Any) -> TrtExportResult:
    """The ``trt`` converter of `edgesr.export.formats`: engine at `path` (``<name>.engine``), built from the
    ONNX export with `options` (`ExportOptions`) and `config` (`TrtConfig`, as `edgesr export` passes it; its
    `prepare` must have run). Without `config`, `kw` are `TrtBuildOptions` fields (workspace_mb, timing_cache,
    opt_level, hardware_compat, int8, strongly_typed, ...), plus ``calib_images`` (with int8) and ``quantizer``."""
    path = Path(path)
    if path.suffix.lower() not in (".engine", ".plan"):
        raise UserInputError(f"the engine path must end in .engine or .plan, got {path}.")
    if config is not None:
        request = TrtExportOptions(build=config.build_options(options), int8_calib=config.calib_images,
                                   name=path.stem, quantizer=kw.pop("quantizer", "auto"),
                                   int8_budget=config.budget().onnx_kwargs())
        return export_engine(model, path.parent, options, request, force=options.force)
    kw = dict(kw)
    calib = kw.pop("calib_images", None)
    quantizer = kw.pop("quantizer", "auto")
    try:
        build = TrtBuildOptions(**kw)
    except TypeError as exc:
        raise UserInputError(f"bad TensorRT build option: {exc}") from exc
    request = TrtExportOptions(build=build, int8_calib=Path(calib) if calib else None, name=path.stem,
                               quantizer=quantizer)
    return export_engine(model, path.parent, options, request, force=options.force)


def artifact_names(base: str, name: str | None, int8: bool) -> tuple[str, str]:
    """(ONNX base name, engine name). `name` (the user's --name) names the engine."""
    if name:
        if name.endswith(".engine"):
            name = name[: -len(".engine")]
        tail = "_int8_trt" if int8 and name.endswith("_int8_trt") else "_trt"
        onnx_base = name[: -len(tail)] if name.endswith(tail) and len(name) > len(tail) else f"{name}_src"
        return onnx_base, name
    return base, f"{base}{'_int8' if int8 else ''}_trt"


def _rewrite_artifact(path: Path, proto: Any) -> None:
    """Write a modified ONNX back with its sidecar (new size/hash), as one transaction."""
    from edgesr.artifacts.sidecar import Sidecar
    from edgesr.utils.atomic import write_bytes_atomic

    data = proto.SerializeToString()
    side = Sidecar.for_artifact(path)
    if side is None:
        write_bytes_atomic(path, data, force=True)
    else:
        side.write({path: data}, force=True)


def prepare_for_tensorrt(onnx_path: Path) -> list[str]:
    """Readiness check of an exported ONNX; applies the safe UINT8-shape rewiring. ExportError when not ready."""
    import onnx

    from edgesr.export.tensorrt.readiness import check_readiness, rewire_uint8_shapes

    notes = []
    proto = onnx.load(str(onnx_path))
    if rewire_uint8_shapes(proto):
        _rewrite_artifact(onnx_path, proto)
        notes.append("UINT8 input: Shape nodes now read the input's Cast (UINT8 stays at the network boundary)")
    report = check_readiness(onnx_path, dla=False, polygraphy=False)
    if not report.ok:
        raise ExportError("the exported ONNX is not ready for TensorRT:\n" + report.format(dla=False))
    notes.extend(f"readiness: {f.line()}" for f in report.warnings)
    return notes


def quantize_artifact(onnx_path: Path, qdq_path: Path, calib: Path, force: bool = False,
                      implementation: str = "auto", budget: dict[str, Any] | None = None) -> list[str]:
    """Q/DQ INT8 copy of an FP32 ONNX artifact for TensorRT, with its sidecar; returns summary lines.

    implementation: "project" (`edgesr.export.quantize.quantize_onnx(target="tensorrt", exclude="auto")`:
    symmetric int8, sensitive nodes kept in float until the PSNR budget holds), "fallback" (this package's
    `quantize_for_tensorrt`), or "auto" (the same as "project"). `budget`: further `quantize_onnx` keyword
    arguments (`Int8Budget.onnx_kwargs`: method, max_drop_db, max_excluded); the fallback takes none.
    """
    if implementation not in ("auto", "project", "fallback"):
        raise UserInputError(f"unknown quantizer {implementation!r}; use auto, project or fallback.")
    from edgesr.artifacts.sidecar import Sidecar

    meta = Sidecar.for_artifact(onnx_path, required=True)
    io = meta.io
    if implementation != "fallback":
        from edgesr.export.quantize import quantize_onnx

        result = quantize_onnx(onnx_path, qdq_path, calib, target="tensorrt", exclude="auto", io=io, force=force,
                               **(budget or {}))
        return list(result.summary())
    if budget:
        raise UserInputError(f"the fallback TensorRT quantizer takes no INT8 budget ({', '.join(budget)}); use the "
                             "project's quantizer.")
    return _fallback_quantize(onnx_path, qdq_path, calib, meta, io, force)


def _fallback_quantize(onnx_path: Path, qdq_path: Path, calib: Path, meta: "Sidecar", io: str,
                       force: bool) -> list[str]:
    from edgesr.artifacts.sidecar import ArtifactFile, sidecar_path_for
    from edgesr.export.tensorrt.qdq import quantize_for_tensorrt
    from edgesr.export.verify import compare_255, create_session, parity_images, run_onnx_255
    from edgesr.utils.atomic import check_writable

    side_path = sidecar_path_for(qdq_path)
    check_writable(qdq_path, force)
    check_writable(side_path, force)
    report = quantize_for_tensorrt(onnx_path, qdq_path, calib, io=io, min_size=meta.min_size,
                                   exclude_boundary_convs=True)
    (name, image), = parity_images([(127, 93)])
    ref = run_onnx_255(create_session(str(onnx_path)), image, io)
    cmp = compare_255(run_onnx_255(create_session(str(qdq_path)), image, io), ref)
    data = qdq_path.read_bytes()
    meta = meta.copy()
    meta.artifact = ArtifactFile(file=qdq_path.name, format="onnx")
    meta.export.precision = "int8"
    meta.blocks["quantization"] = {"target": "tensorrt", "scheme": "int8 symmetric Q/DQ (TensorRT explicit quantization)",
                            "implementation": report.implementation, "calibration": report.method,
                            "calibration_images": report.calibration_images, "crop": report.crop,
                            "op_types": report.op_types, "excluded_nodes": report.excluded_nodes,
                            "qdq_nodes": report.qdq_nodes, "source": onnx_path.name,
                            "vs_fp32": {"image": name, "height": 127, "width": 93,
                                        "psnr_db": cmp.psnr_db if math.isfinite(cmp.psnr_db) else None,
                                        "max_abs_diff": cmp.max_abs_diff, "runtime": "onnxruntime CPU"}}
    meta.write({qdq_path: data}, force=True)
    return [report.describe(), f"INT8 ONNX vs FP32 on {name} 127x93 (ONNX Runtime CPU): PSNR "
                               f"{cmp.psnr_db:.2f} dB, max |d| {cmp.max_abs_diff:.3g} (0..255)",
            f"wrote {qdq_path} and {side_path}"]


def export_engine(model: nn.Module, output_dir: str | Path, export_options: Any, options: TrtExportOptions, *,
                  force: bool = False, trt: ModuleType | None = None, gpu: Any = None) -> TrtExportResult:
    """Export `model` with `export_options` (an `ExportOptions`), then build its TensorRT engine."""
    from edgesr.artifacts.sidecar import Sidecar, sidecar_path_for
    from edgesr.export import default_artifact_name, export_onnx
    from edgesr.export.tensorrt.runtime import preflight
    from edgesr.utils.atomic import check_writable

    build = options.build
    build.validate()
    int8 = bool(build.int8)
    if int8 and options.int8_calib is None:
        raise UserInputError("--int8 needs --calib-images DIR (real images to calibrate the INT8 ranges on).")
    if int8 and export_options.half:
        raise UserInputError("--int8 with --fp16 is not supported: INT8 is quantized from the FP32 export, and its "
                             "unquantized layers run in FP32 in the strongly typed engine. Drop --fp16.")
    trt_module, found_gpu = preflight(trt, build.gpu_index) if gpu is None else (trt, gpu)
    min_size = int(getattr(model, "min_input_size", 1) or 1)
    align = int(getattr(model, "input_alignment", 1) or 1)
    profile = make_profile(export_options.min_shape, export_options.opt_shape, export_options.max_shape,
                           batch=export_options.batch, min_size=min_size, alignment=align)
    build = replace(build, profile=build.profile or profile, fp16=bool(export_options.half or build.fp16))

    out = Path(output_dir)
    base = default_artifact_name(getattr(model, "edgesr_name", "model"), getattr(model, "scale", 4),
                                 export_options.half, export_options.io, export_options.fp16_io)
    onnx_base, engine_name = artifact_names(base, options.name, int8)
    onnx_path, engine_path = out / f"{onnx_base}.onnx", out / f"{engine_name}.engine"
    qdq_path = out / f"{onnx_base}_int8.onnx" if int8 else None
    for p in (onnx_path, engine_path, qdq_path):
        if p is not None:
            check_writable(p, force)
            check_writable(sidecar_path_for(p), force)

    lines: list[str] = []
    exported = export_onnx(model, onnx_path, replace(export_options, force=force))
    lines.extend(exported.summary())
    lines.extend(prepare_for_tensorrt(onnx_path))
    source = onnx_path
    if int8:
        assert qdq_path is not None and options.int8_calib is not None
        lines.extend(quantize_artifact(onnx_path, qdq_path, Path(options.int8_calib), force=force,
                                       implementation=options.quantizer, budget=options.int8_budget))
        source = qdq_path
    side = Sidecar.for_artifact(source, required=True).to_dict()
    result = engine_from_onnx(source, engine_path, build, force=force, trt=trt_module, gpu=found_gpu,
                              onnx_sidecar=side)
    return TrtExportResult(onnx_path, result, qdq_path, lines)
