"""Artifact formats by name, and `export_artifact`, which runs the converter of one.

A format is added in one place: a `register_format(...)` line below naming its converter as
``"module:function"`` (imported only when that format is exported, so a missing ncnn/ExecuTorch/TensorRT
never breaks ``edgesr export --help``), the suffixes of the files it writes (the artifact's first), whether it
has an INT8 variant, and its typed options (``config``: ``"module:Class"`` of a dataclass; None when it has
none). A converter is called as::

    converter(model, path, options, config=None, **kw) -> result with .summary() -> list[str] and .path

where ``path`` is ``out_dir / (name + suffixes[0])``, ``options`` the common `edgesr.export.ExportOptions`
and ``config`` an instance of the format's options class. A config class may define ``prepare(options) ->
ExportOptions`` (validate its fields against the common options, check its runtime is usable, adjust the
common options; called before any work) and ``name_suffix`` (appended to the default artifact name).
`edgesr export` builds the config from its command-line options by field name (`make_format_config`): a
format's options need no code in the CLI.

Formats registered here: ``onnx`` (`export_onnx`), ``ort`` (ONNX Runtime mobile `.ort`,
`edgesr.export.ort_mobile.export_ort`), ``onnx-int8`` and ``ort-int8`` (static QDQ INT8 calibrated on real
images, `edgesr.export.quantize.quantize_onnx`; keyword arguments: ``calib_images`` (required),
``calib_count``, and any other `quantize_onnx` option such as ``exclude``, ``method``, ``target``), ``openvino``
(IR .xml + .bin, FP32 / FP16 weights / INT8 by NNCF, `edgesr.export.openvino.export_openvino`). Every INT8
path takes the same quality budget (`Int8Budget`).
"""
from __future__ import annotations

import importlib
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

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
    config: str | None = None

    @property
    def suffix(self) -> str:
        return self.suffixes[0]

    def outputs(self, out_dir: str | Path, name: str) -> list[Path]:
        """Every file one export writes: the artifact's files, then its sidecar."""
        from edgesr.artifacts.sidecar import sidecar_path_for

        files = [Path(out_dir) / f"{name}{s}" for s in self.suffixes]
        return files + [sidecar_path_for(files[0])]

    def load_converter(self) -> Callable[..., Any]:
        return _load(self.converter)

    def check_options(self, options: "ExportOptions") -> None:
        """Refuse common options this format does not take."""
        if options.half and not self.accepts_fp16:
            raise UserInputError(f"the {self.name} format does not take --fp16/--fp16-io.")

    def config_class(self) -> type | None:
        """The dataclass of this format's own options (None: it has none)."""
        return _load(self.config) if self.config else None

    def config_fields(self) -> tuple[str, ...]:
        cls = self.config_class()
        return tuple(f.name for f in fields(cls)) if cls is not None else ()


def _load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
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
    """The format to export for ``--format name`` (with ``--int8``: its INT8 variant, or the format itself when
    INT8 is one of its own options, as for trt)."""
    info = get_format(name)
    if not int8 or info.name.endswith("-int8") or "int8" in info.config_fields():
        return info
    if info.int8_variant is None:
        with_int8 = [f.name for f in _FORMATS.values() if f.int8_variant or "int8" in f.config_fields()]
        raise UserInputError(f"--int8 is not available for the {info.name} format; formats with an INT8 path: "
                             f"{', '.join(with_int8)}.")
    return get_format(info.int8_variant)


def make_format_config(info: FormatInfo, values: Mapping[str, Any], flags: Mapping[str, str] | None = None) -> Any:
    """`info`'s options (an instance of its config class) from `values` ({field: value}, e.g. the command line's).

    A value that is set (not None / False) for a field the format does not have is a UserInputError naming the
    option (`flags`: {field: "--flag"}) and the formats that take it. Returns None for a format without options.
    """
    flags = flags or {}
    own = set(info.config_fields())
    for key, value in values.items():
        if key in own or value is None or value is False or key == "int8":
            continue
        flag = flags.get(key, key)
        takers = [f.name for f in _FORMATS.values() if key in f.config_fields()]
        variant = get_format(info.int8_variant) if info.int8_variant else None
        if variant is not None and key in variant.config_fields():
            raise UserInputError(f"{flag} applies to INT8 exports: add --int8.")
        raise UserInputError(f"{flag} applies to --format {takers[0]} only." if len(takers) == 1 else
                             f"{flag} applies to --format {', '.join(takers)}.")
    cls = info.config_class()
    return cls(**{k: v for k, v in values.items() if k in own}) if cls is not None else None


def export_artifact(model: "nn.Module", out_dir: str | Path, name: str, fmt: str, options: "ExportOptions",
                    config: Any = None, **kw: Any) -> Any:
    """Export `model` as `fmt` to ``out_dir/<name><suffix>`` (+ the format's other files and sidecar).

    `options` are the common `ExportOptions`, `config` the format's own (its config class; see
    `make_format_config`); `kw` go to the format's converter too (e.g. ``calib_images`` for the INT8 formats).
    Returns the converter's result (``.summary()`` lists what was written and measured).
    """
    info = get_format(fmt)
    info.check_options(options)
    if not name or Path(name).name != name or name.startswith("."):
        raise UserInputError(f"the artifact name must be a plain file name without folders, got {name!r}.")
    for suffix in info.suffixes:  # "rlfn_x4.ort" -> "rlfn_x4"
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    path = Path(out_dir) / f"{name}{info.suffix}"
    if config is not None:
        kw["config"] = config
    return info.load_converter()(model, path, options, **kw)


# ---- converters of the INT8 formats -------------------------------------------------------------------


INT8_METHODS = ("minmax", "percentile", "entropy", "mse")


@dataclass(frozen=True)
class Int8Budget:
    """What INT8 may cost and how it is calibrated, on every INT8 path (ONNX Runtime QDQ, OpenVINO/NNCF,
    TensorRT Q/DQ).

    method: activation range method (``--calib-method``): minmax, percentile, entropy or mse (None: the path's
        default; `edgesr.export.calibration` documents them; NNCF maps them onto its range estimators).
    max_drop_db: the most Y-PSNR the INT8 model may lose against the FP32 model on the validation set
        (``--int8-max-drop``; images held out from calibration, `edgesr.export.int8_validation`); layers are
        kept in float, most sensitive first, until the drop is within it. None: the path's default target.
    max_float: the most layers (nodes) kept in float to meet it (``--int8-max-float``).
    val_dataset: the validation images the drop is measured on (``--int8-val``: a dataset folder or a name
        under shared/datasets such as Set14); None: images held out from the calibration folder.
    """

    method: str | None = None
    max_drop_db: float | None = None
    max_float: int | None = None
    val_dataset: str | None = None

    def check(self, methods: tuple[str, ...] = INT8_METHODS) -> "Int8Budget":
        if self.method is not None and self.method not in methods:
            raise UserInputError(f"--calib-method {self.method!r} is not available here; choose one of "
                                 f"{', '.join(methods)}.")
        if self.max_drop_db is not None and not (self.max_drop_db >= 0 and self.max_drop_db < 100):
            raise UserInputError(f"--int8-max-drop must be a number of dB >= 0, got {self.max_drop_db!r}.")
        if self.max_float is not None and self.max_float < 0:
            raise UserInputError(f"--int8-max-float must be >= 0, got {self.max_float}.")
        if self.val_dataset is not None:
            from edgesr.data import resolve_dataset

            resolve_dataset(self.val_dataset)  # a missing dataset fails before any work
        return self

    def onnx_kwargs(self) -> dict[str, Any]:
        """`edgesr.export.quantize.quantize_onnx` keyword arguments of this budget (only those that are set)."""
        kw: dict[str, Any] = {}
        if self.method is not None:
            kw["method"] = self.method
        if self.max_drop_db is not None:
            kw["max_drop_db"] = self.max_drop_db
        if self.max_float is not None:
            kw["max_excluded"] = self.max_float
        if self.val_dataset is not None:
            kw["val_images"] = self.val_dataset
        return kw


def default_calibration_folder(calib_images: str | Path | None) -> Path:
    """`calib_images`, or shared/datasets/DIV2K_test_LR_x4 when None; a missing/empty folder is a
    UserInputError."""
    from edgesr.export.calibration import calibration_files
    from edgesr.paths import shared_dir

    if calib_images is None:
        default = shared_dir() / "datasets" / "DIV2K_test_LR_x4"
        if not default.is_dir():
            raise UserInputError("INT8 needs calibration images: pass --calib-images DIR (LR images, e.g. DIV2K "
                                 "LR crops).")
        calib_images = default
    calibration_files(calib_images)
    return Path(calib_images)


@dataclass(frozen=True)
class Int8Options:
    """The calibration and quality-budget options every INT8 format takes (``--calib-images``,
    ``--calib-count``, ``--calib-method``, ``--int8-max-drop``, ``--int8-max-float``, ``--int8-val``), and
    the `Int8Budget` they make."""

    calib_images: Path | None = None
    calib_count: int | None = None
    calib_method: str | None = None
    int8_max_drop: float | None = None
    int8_max_float: int | None = None
    int8_val: str | None = None

    def budget(self) -> Int8Budget:
        return Int8Budget(method=self.calib_method, max_drop_db=self.int8_max_drop, max_float=self.int8_max_float,
                          val_dataset=self.int8_val)


@dataclass(frozen=True)
class Int8Config(Int8Options):
    """Options of the INT8 formats (onnx-int8, ort-int8): the LR images to calibrate on (default:
    shared/datasets/DIV2K_test_LR_x4), how many crops of them (default 32), and the quality budget
    (`Int8Budget`: range method, largest Y-PSNR drop, most nodes kept in float)."""

    name_suffix = "_int8"

    def prepare(self, options: "ExportOptions") -> "ExportOptions":
        if self.calib_count is not None and self.calib_count < 1:
            raise UserInputError(f"--calib-count must be >= 1, got {self.calib_count}.")
        self.budget().check()
        _quantize_kwargs({"calib_images": self.calib_images}, options)  # a missing/empty folder fails now
        return options

    def kwargs(self) -> dict[str, Any]:
        return {"calib_images": self.calib_images, "calib_count": self.calib_count, **self.budget().onnx_kwargs()}


@dataclass
class Int8ExportResult:
    """`onnx-int8`: the FP32 export's report, then the quantization's."""

    path: Path
    onnx_summary: list[str] = field(default_factory=list)
    quantize: Any = None

    def summary(self) -> list[str]:
        return list(self.onnx_summary) + (self.quantize.summary() if self.quantize is not None else [])


def _quantize_kwargs(kw: dict[str, Any], options: "ExportOptions") -> tuple[Path, dict[str, Any]]:
    kw = dict(kw)
    calib = default_calibration_folder(kw.pop("calib_images", None))  # fails now, before the FP32 export
    if kw.get("calib_count") is None:
        kw.pop("calib_count", None)
    kw.setdefault("threads", options.threads)
    kw.setdefault("exclude", "auto")
    return Path(calib), kw


def export_onnx_int8(model: "nn.Module", path: str | Path, options: "ExportOptions", config: Int8Config | None = None,
                     **kw: Any) -> Int8ExportResult:
    """FP32 ONNX export (in a temporary folder), then `quantize_onnx` to `path` with its sidecar."""
    from edgesr.export.onnx_export import export_onnx
    from edgesr.export.quantize import quantize_onnx
    from edgesr.utils.atomic import check_writable

    path = Path(path)
    if options.half:
        raise UserInputError("INT8 and FP16 exclude each other: INT8 is quantized from the FP32 export. Drop --fp16.")
    calib, qkw = _quantize_kwargs({**(config.kwargs() if config else {}), **kw}, options)
    for out in get_format("onnx-int8").outputs(path.parent, path.stem):
        check_writable(out, options.force)
    with tempfile.TemporaryDirectory(prefix="edgesr-int8-export-") as tmp:
        fp32 = Path(tmp) / (path.stem.removesuffix("_int8") + ".onnx")
        onnx_result = export_onnx(model, fp32, replace(options, force=True))
        q = quantize_onnx(fp32, path, calib, force=options.force, **qkw)
    lines = [line for line in onnx_result.summary() if not line.startswith("wrote ")]
    return Int8ExportResult(path=path, onnx_summary=lines, quantize=q)


def export_ort_int8(model: "nn.Module", path: str | Path, options: "ExportOptions", config: Int8Config | None = None,
                    **kw: Any) -> Any:
    """`export_ort` with INT8 quantization (``.ort`` of the QDQ graph)."""
    from edgesr.export.ort_mobile import export_ort

    kw = {**(config.kwargs() if config else {}), **kw}
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
                           "ONNX QDQ INT8 (static, calibrated on real images) + sidecar", accepts_fp16=False,
                           config="edgesr.export.formats:Int8Config"))
register_format(FormatInfo("ort-int8", "edgesr.export.formats:export_ort_int8",
                           (".ort", ".required_operators.config"),
                           "ONNX Runtime mobile format of the QDQ INT8 graph", accepts_fp16=False,
                           config="edgesr.export.formats:Int8Config"))
register_format(FormatInfo("trt", "edgesr.export.tensorrt.pipeline:export_trt", (".engine",),
                           "TensorRT engine (NVIDIA GPU + edgesr[tensorrt]) built from the ONNX export, + sidecar",
                           config="edgesr.export.tensorrt.pipeline:TrtConfig"))
register_format(FormatInfo("ncnn", "edgesr.export.ncnn:export_ncnn", (".param", ".bin"), "ncnn param/bin via pnnx (edgesr[mobile]) + sidecar, verified in ncnn"))  # noqa: E501
register_format(FormatInfo("openvino", "edgesr.export.openvino:export_openvino", (".xml", ".bin"),
                           "OpenVINO IR .xml/.bin (edgesr[openvino]; --fp16: f16 weights, --int8: NNCF) + sidecar, "
                           "verified in OpenVINO", config="edgesr.export.openvino:OpenVINOConfig"))
register_format(FormatInfo("executorch", "edgesr.export.executorch:export_executorch", (".pte",), "ExecuTorch .pte, XNNPACK (edgesr[executorch]) + sidecar", accepts_fp16=False))  # noqa: E501
