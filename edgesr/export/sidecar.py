"""The artifact sidecar: a JSON file beside every exported model that says how to run it.

``DIR/<name>.onnx`` is always accompanied by ``DIR/<name>.json``. C++/Android/Python consumers read the
sidecar instead of guessing value ranges, shapes or tiling parameters; nothing is glued into the model
file itself, so plain ONNX/TensorRT loaders keep working. All numbers are plain JSON (no NaN/Infinity:
an infinite PSNR, i.e. bit-identical outputs, is written as ``null``).

Schema (``schema_version`` "1.0"; a consumer must refuse a different major version and ignore keys it
does not know, which later minor versions may add):

``schema_version``  str, "MAJOR.MINOR".
``kind``            "edgesr-artifact".
``created``         ISO-8601 UTC time of the export.
``artifact``        the model file: ``file`` (name, relative to the sidecar's folder), ``format`` ("onnx"),
                    ``bytes`` (file size), ``sha256`` (hex digest of the file).
``scale``           integer upscaling factor: output H, W = ``scale`` x input H, W.
``model``           ``name`` (registry name, e.g. "rlfn"), ``variant`` (pretrained variant, e.g. "rlfn_x4",
                    or null), ``params`` (parameter count of the PyTorch
                    model), ``weights_path`` (checkpoint the weights came from, or null for random init),
                    ``weights_sha256`` (its hex digest, or null).
``inputs`` / ``outputs``  one entry per graph tensor, in graph order:
                    ``name`` ("input" / "output"), ``dtype`` ("float32" | "float16" | "uint8"), ``shape``
                    (ints for fixed dims, strings for dynamic ones, e.g. ["batch", 3, "height", "width"]),
                    ``layout`` ("NCHW"), ``color`` ("RGB"), ``value_range`` ([low, high]: 0..1 for io
                    "float01", 0..255 for "float255" and "uint8"), ``clamped`` (true when the graph itself
                    clamps and rounds to the range: only uint8 outputs; float outputs can overshoot the range
                    slightly and must be clamped by the consumer before converting to 8-bit).
                    Output height/width are exactly ``scale`` x the input's.
``shape_profile``   recommended optimisation profile for the input (e.g. a TensorRT profile): ``min``, ``opt``,
                    ``max``, each [N, C, H, W]. The ONNX graph itself accepts any batch and any H, W that are
                    >= ``min_size`` and multiples of ``alignment``.
``alignment``       input H and W must be multiples of this (pad, e.g. by mirroring, and crop the output).
``min_size``        smallest input H and W the network accepts (15 for ESA models): pad smaller inputs.
``halo``            recommended context, in input pixels, around each tile when tiling large images
                    (32 for ESA models: its pooled attention looks far).
``export``          how it was made: ``exporter`` ("dynamo" | "torchscript"), ``exporter_note`` (why the
                    fallback exporter was used, or null), ``opset``, ``precision`` ("fp32" | "fp16": the
                    arithmetic inside the graph), ``fp16_io`` (I/O tensors are float16), ``io``
                    ("float01" | "float255" | "uint8"), ``simplified`` (onnxsim ran successfully),
                    ``reparam`` {``applied``, ``passes`` (names of the fold passes applied), ``report``
                    (their human-readable report), ``details`` (machine-readable report, when available)}.
``parity``          measured agreement, on real images: ``reference`` (what the ONNX model was compared with),
                    ``runtime``, ``value_scale`` ("0..255": all differences are in 8-bit levels),
                    ``entries``: per input size {``height``, ``width``, ``image`` (source), ``max_abs_diff``
                    and ``psnr_db`` (ONNX FP32 graph vs PyTorch), ``fp16_max_abs_diff`` and ``fp16_psnr_db``
                    (the FP16 artifact in ONNX Runtime CPU vs the FP32 graph), ``fp16_emulated_psnr_db`` (the
                    FP32 graph with weights and every activation rounded to float16, as GPU FP16 engines
                    store them, vs the FP32 graph: ONNX Runtime CPU computes most FP16 nodes in float32, so
                    this is the figure to expect on a GPU), ``fp16_peak`` (largest |activation| in that
                    emulation: the headroom to the float16 maximum 65504); the fp16 keys are null for FP32
                    exports}, and over all sizes ``max_abs_diff``, ``min_psnr_db``, ``fp16_min_psnr_db``,
                    ``fp16_emulated_min_psnr_db``, ``fp16_peak``.
``graph``           ``nodes`` and ``op_counts`` (node count per op type) of the artifact; ``nodes_exported`` and
                    ``op_counts_exported`` straight from the exporter, before simplification; ``initializers``
                    and ``initializer_bytes``.
``versions``        {package: version} of edgesr, torch, onnx, onnxruntime, onnxsim and python.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from edgesr.errors import UserInputError

SCHEMA_VERSION = "1.0"
KIND = "edgesr-artifact"


@dataclass
class TensorSpec:
    """One graph input or output."""

    name: str
    dtype: str
    shape: list[Union[int, str]]
    value_range: list[float]
    layout: str = "NCHW"
    color: str = "RGB"
    clamped: bool = False


@dataclass
class ShapeProfile:
    """Recommended [N, C, H, W] shapes for an optimisation profile (the graph accepts more)."""

    min: list[int]
    opt: list[int]
    max: list[int]


@dataclass
class ArtifactInfo:
    file: str
    format: str
    bytes: int
    sha256: str


@dataclass
class ModelInfo:
    name: str
    variant: Optional[str] = None
    params: int = 0
    weights_path: Optional[str] = None
    weights_sha256: Optional[str] = None


@dataclass
class ReparamInfo:
    applied: bool = False
    passes: list[str] = field(default_factory=list)
    report: Optional[str] = None
    details: Optional[dict[str, Any]] = None


@dataclass
class ExportInfo:
    exporter: str
    opset: int
    precision: str = "fp32"
    fp16_io: bool = False
    io: str = "float01"
    simplified: bool = True
    exporter_note: Optional[str] = None
    reparam: ReparamInfo = field(default_factory=ReparamInfo)


@dataclass
class ParityEntry:
    height: int
    width: int
    image: str
    max_abs_diff: float
    psnr_db: Optional[float]
    fp16_max_abs_diff: Optional[float] = None
    fp16_psnr_db: Optional[float] = None
    fp16_emulated_psnr_db: Optional[float] = None
    fp16_peak: Optional[float] = None


@dataclass
class ParityInfo:
    reference: str
    runtime: str
    value_scale: str = "0..255"
    entries: list[ParityEntry] = field(default_factory=list)
    max_abs_diff: Optional[float] = None
    min_psnr_db: Optional[float] = None
    fp16_min_psnr_db: Optional[float] = None
    fp16_emulated_min_psnr_db: Optional[float] = None
    fp16_peak: Optional[float] = None


@dataclass
class GraphStats:
    nodes: int
    op_counts: dict[str, int]
    nodes_exported: int = 0
    op_counts_exported: dict[str, int] = field(default_factory=dict)
    initializers: int = 0
    initializer_bytes: int = 0


@dataclass
class Sidecar:
    """Everything a consumer needs to run an exported artifact correctly."""

    artifact: ArtifactInfo
    model: ModelInfo
    scale: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    shape_profile: ShapeProfile
    export: ExportInfo
    parity: ParityInfo
    graph: GraphStats
    alignment: int = 1
    min_size: int = 1
    halo: int = 16
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    schema_version: str = SCHEMA_VERSION
    kind: str = KIND

    def to_dict(self) -> dict[str, Any]:
        data = _clean(dataclasses.asdict(self))
        # schema_version and kind first: they are what a reader checks before anything else
        return {"schema_version": data.pop("schema_version"), "kind": data.pop("kind"), **data}

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Sidecar":
        if not isinstance(data, dict):
            raise UserInputError(f"sidecar must be a JSON object, got {type(data).__name__}.")
        version = str(data.get("schema_version", ""))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise UserInputError(
                f"unsupported sidecar schema_version {version or 'missing'!r}: this edgesr reads "
                f"{SCHEMA_VERSION.split('.')[0]}.x."
            )
        if data.get("kind", KIND) != KIND:
            raise UserInputError(f"not an edgesr sidecar (kind {data.get('kind')!r}).")
        return _build(cls, data, "sidecar")

    @classmethod
    def from_json(cls, text: str) -> "Sidecar":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"sidecar is not valid JSON: {exc}") from exc
        return cls.from_dict(data)


def sidecar_path_for(artifact: str | Path) -> Path:
    """``DIR/<name>.json`` for ``DIR/<name>.onnx``."""
    return Path(artifact).with_suffix(".json")


def read_sidecar(path: str | Path) -> Sidecar:
    """Read a sidecar from its own path or from its artifact's path."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        path = sidecar_path_for(path)
    if not path.is_file():
        raise UserInputError(f"sidecar not found: {path}")
    return Sidecar.from_json(path.read_text(encoding="utf-8"))


def _clean(value: Any) -> Any:
    """Non-finite floats become null (strict JSON), tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _build(tp: Any, value: Any, where: str) -> Any:
    """Rebuild `value` (parsed JSON) as type `tp`, recursing into dataclasses and containers."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return _build(arg, value, where)
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserInputError(f"sidecar field {where!r} must be an object, got {type(value).__name__}.")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _build(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserInputError(f"sidecar is missing the required field {where}.{f.name}.")
        return tp(**kwargs)
    if origin is list:
        if not isinstance(value, list):
            raise UserInputError(f"sidecar field {where!r} must be a list, got {type(value).__name__}.")
        (arg,) = typing.get_args(tp) or (Any,)
        return [_build(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value
