"""Artifact formats by name, and `export_artifact`, which runs the converter of one.

A format is added in one place: a `register_format(...)` line below naming its converter as
``"module:function"`` (imported only when that format is exported, so a missing ncnn/ExecuTorch/TensorRT
never breaks ``edgesr export --help``), the suffixes of the files it writes (the artifact's first) and
whether it has an INT8 variant. A converter is called as::

    converter(model, path, options, **kw) -> result with .summary() -> list[str] and .path

where ``path`` is ``out_dir / (name + suffixes[0])`` and ``options`` an `edgesr.export.ExportOptions`.

Formats registered here: ``onnx`` (`export_onnx`), ``ort`` (ONNX Runtime mobile `.ort`,
`edgesr.export.ort_mobile.export_ort`), ``onnx-int8`` and ``ort-int8`` (static QDQ INT8 calibrated on real
images, `edgesr.export.quantize.quantize_onnx`; keyword arguments: ``calib_images`` (required),
``calib_count``, and any other `quantize_onnx` option such as ``exclude``, ``method``, ``target``).
"""
from __future__ import annotations

import importlib
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgesr.errors import UserInputError, suggest

if TYPE_CHECKING:
    from torch import nn

    from edgesr.export.onnx_export import ExportOptions


@dataclass(frozen=True)
class FormatInfo:
    """A registered artifact format. `suffixes`: the files one export writes (``name + suffix``), the
    artifact first (its sidecar, ``<artifact file>.json``, comes on top); `int8_variant`: the format `--int8`
    turns this one into (None: no INT8 path)."""

    name: str
    converter: str
    suffixes: tuple[str, ...]
    description: str
    int8_variant: str | None = None
    accepts_fp16: bool = True

    @property
    def suffix(self) -> str:
        return self.suffixes[0]

    def outputs(self, out_dir: str | Path, name: str) -> list[Path]:
        """Every file one export writes: the artifact's files, then its sidecar."""
        from edgesr.artifacts.sidecar import sidecar_path_for

        files = [Path(out_dir) / f"{name}{s}" for s in self.suffixes]
        return files + [sidecar_path_for(files[0])]

    def load_converter(self) -> Callable[..., Any]:
        module, _, attr = self.converter.partition(":")
        return getattr(importlib.import_module(module), attr)


_FORMATS: dict[str, FormatInfo] = {}


def register_format(info: FormatInfo) -> FormatInfo:
    if info.name in _FORMATS:
        raise ValueError(f"format {info.name!r} registered twice")
    _FORMATS[info.name] = info
    return info


def list_formats() -> list[str]:
    """Registered format names, in registration order."""
    return list(_FORMATS)


def get_format(name: str) -> FormatInfo:
    key = str(name).strip().lower()
    if key not in _FORMATS:
        raise UserInputError(f"unknown artifact format {name!r}.{suggest(key, list(_FORMATS))} "
                             f"Registered formats: {', '.join(_FORMATS)}.")
    return _FORMATS[key]


def resolve_format(name: str, int8: bool = False) -> FormatInfo:
    """The format to export for ``--format name`` (with ``--int8``: its INT8 variant)."""
    info = get_format(name)
    if not int8 or info.name.endswith("-int8"):
        return info
    if info.int8_variant is None:
        with_int8 = [f.name for f in _FORMATS.values() if f.int8_variant]
        raise UserInputError(f"--int8 is not available for the {info.name} format; formats with an INT8 path: "
                             f"{', '.join(with_int8)}.")
    return get_format(info.int8_variant)


def export_artifact(model: "nn.Module", out_dir: str | Path, name: str, fmt: str, options: "ExportOptions",
                    **kw: Any) -> Any:
    """Export `model` as `fmt` to ``out_dir/<name><suffix>`` (+ the format's other files and sidecar).

    `options` are the common `ExportOptions`; `kw` go to the format's converter (e.g. ``calib_images`` for
    the INT8 formats). Returns the converter's result (``.summary()`` lists what was written and measured).
    """
    info = get_format(fmt)
    if options.half and not info.accepts_fp16:
        raise UserInputError(f"the {info.name} format does not take --fp16/--fp16-io.")
    if not name or Path(name).name != name or name.startswith("."):
        raise UserInputError(f"the artifact name must be a plain file name without folders, got {name!r}.")
    for suffix in info.suffixes:  # "rlfn_x4.ort" -> "rlfn_x4"
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    path = Path(out_dir) / f"{name}{info.suffix}"
    return info.load_converter()(model, path, options, **kw)


# ---- converters of the INT8 formats -------------------------------------------------------------------


@dataclass
class Int8ExportResult:
    """`onnx-int8`: the FP32 export's report, then the quantization's."""

    path: Path
    onnx_summary: list[str] = field(default_factory=list)
    quantize: Any = None

    def summary(self) -> list[str]:
        return list(self.onnx_summary) + (self.quantize.summary() if self.quantize is not None else [])


def _quantize_kwargs(kw: dict[str, Any], options: "ExportOptions") -> tuple[Path, dict[str, Any]]:
    from edgesr.paths import shared_dir

    kw = dict(kw)
    calib = kw.pop("calib_images", None)
    if calib is None:
        default = shared_dir() / "datasets" / "DIV2K_test_LR_x4"
        if not default.is_dir():
            raise UserInputError("INT8 needs calibration images: pass --calib-images DIR (LR images, e.g. DIV2K "
                                 "LR crops).")
        calib = default
    from edgesr.export.calibration import calibration_files

    calibration_files(calib)  # a missing/empty folder fails now, before the FP32 export
    if kw.get("calib_count") is None:
        kw.pop("calib_count", None)
    kw.setdefault("threads", options.threads)
    kw.setdefault("exclude", "auto")
    return Path(calib), kw


def export_onnx_int8(model: "nn.Module", path: str | Path, options: "ExportOptions", **kw: Any) -> Int8ExportResult:
    """FP32 ONNX export (in a temporary folder), then `quantize_onnx` to `path` with its sidecar."""
    from edgesr.export.onnx_export import export_onnx
    from edgesr.export.quantize import quantize_onnx
    from edgesr.utils.atomic import check_writable

    path = Path(path)
    if options.half:
        raise UserInputError("INT8 and FP16 exclude each other: INT8 is quantized from the FP32 export. Drop --fp16.")
    calib, qkw = _quantize_kwargs(kw, options)
    for out in get_format("onnx-int8").outputs(path.parent, path.stem):
        check_writable(out, options.force)
    with tempfile.TemporaryDirectory(prefix="edgesr-int8-export-") as tmp:
        fp32 = Path(tmp) / (path.stem.removesuffix("_int8") + ".onnx")
        onnx_result = export_onnx(model, fp32, replace(options, force=True))
        q = quantize_onnx(fp32, path, calib, force=options.force, **qkw)
    lines = [line for line in onnx_result.summary() if not line.startswith("wrote ")]
    return Int8ExportResult(path=path, onnx_summary=lines, quantize=q)


def export_ort_int8(model: "nn.Module", path: str | Path, options: "ExportOptions", **kw: Any) -> Any:
    """`export_ort` with INT8 quantization (``.ort`` of the QDQ graph)."""
    from edgesr.export.ort_mobile import export_ort

    ort_kw = {k: kw.pop(k) for k in ("optimization_style", "target_platform") if k in kw}
    calib, qkw = _quantize_kwargs(kw, options)
    return export_ort(model, path, options, quantize={"calib_images": calib, **qkw}, **ort_kw)


# ---- the formats ------------------------------------------------------------------------------------------
register_format(FormatInfo("onnx", "edgesr.export.onnx_export:export_onnx", (".onnx",),
                           "ONNX (FP32/FP16) + sidecar, verified in ONNX Runtime", int8_variant="onnx-int8"))
register_format(FormatInfo("ort", "edgesr.export.ort_mobile:export_ort",
                           (".ort", ".required_operators.config"),
                           "ONNX Runtime mobile format + reduced-operator config + sidecar", int8_variant="ort-int8"))
register_format(FormatInfo("onnx-int8", "edgesr.export.formats:export_onnx_int8", (".onnx",),
                           "ONNX QDQ INT8 (static, calibrated on real images) + sidecar", accepts_fp16=False))
register_format(FormatInfo("ort-int8", "edgesr.export.formats:export_ort_int8",
                           (".ort", ".required_operators.config"),
                           "ONNX Runtime mobile format of the QDQ INT8 graph", accepts_fp16=False))
register_format(FormatInfo("trt", "edgesr.export.tensorrt.pipeline:export_trt", (".engine",),
                           "TensorRT engine (NVIDIA GPU + edgesr[tensorrt]) built from the ONNX export, + sidecar"))
register_format(FormatInfo("ncnn", "edgesr.export.ncnn:export_ncnn", (".param", ".bin"), "ncnn param/bin via pnnx (edgesr[mobile]) + sidecar, verified in ncnn"))  # noqa: E501
register_format(FormatInfo("executorch", "edgesr.export.executorch:export_executorch", (".pte",), "ExecuTorch .pte, XNNPACK (edgesr[executorch]) + sidecar", accepts_fp16=False))  # noqa: E501
