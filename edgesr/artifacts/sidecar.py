"""The artifact sidecar: one JSON file beside every exported model that says how to run it.

``DIR/rlfn_x4.onnx`` is accompanied by ``DIR/rlfn_x4.onnx.json``: the sidecar's name is the artifact's full
file name plus ``.json`` (`sidecar_path_for`), so the ``.onnx``, ``.ort``, ``.param`` and ``.pte`` of one model
share a folder without sharing a sidecar. `Sidecar` is the one reader, writer and validator for every format;
exporters build one, runners read one (`Sidecar.for_artifact`). Its JSON Schema ships with the package
(`schema_path()`, ``edgesr/artifacts/sidecar.schema.json``) for consumers in other languages.

Schema (``schema_version`` "1.1"; a consumer must refuse a different major version and ignore keys it does not
know, which later minor versions may add). Required: ``schema_version``, ``kind``, ``artifact``, ``scale``,
``inputs``, ``outputs``; the rest has the defaults below, so a hand-written sidecar for a model from elsewhere
may hold only those.

``schema_version``  str, "MAJOR.MINOR".
``kind``            "edgesr-artifact".
``created``         ISO-8601 UTC time of the export.
``artifact``        the model file: ``file`` (name, relative to the sidecar's folder), ``format`` ("onnx", "ort",
                    "ncnn", "executorch", "tensorrt", "openvino"), ``bytes`` (file size), ``sha256`` (hex digest).
``files``           every file of the artifact (the model file first, then e.g. the ncnn ``.bin``), each with
                    ``file``, ``role``, ``bytes`` and ``sha256``. The sidecar is written last; a reader checks
                    these before loading (`edgesr.artifacts.store.verify_files`), so files of two exports are
                    never run together.
``scale``           integer upscaling factor (1..16): output H, W = ``scale`` x input H, W.
``model``           ``name`` (registry name, e.g. "rlfn"), ``variant`` (pretrained variant, e.g. "rlfn_x4", or
                    null), ``params`` (parameter count of the PyTorch model), ``weights_path`` (checkpoint the
                    weights came from, or null for random init), ``weights_sha256`` (its hex digest, or null).
``inputs`` / ``outputs``  one entry per graph tensor, in graph order: ``name``, ``dtype`` ("float32" |
                    "float16" | "uint8"), ``shape`` (ints for fixed dims, strings for dynamic ones, e.g.
                    ["batch", 3, "height", "width"]), ``layout`` ("NCHW" | "NHWC"), ``color`` ("RGB"),
                    ``value_range`` ([0, 1] or [0, 255]; uint8 is always [0, 255]), ``clamped`` (true when the
                    graph itself clamps and rounds to the range: only uint8 outputs; float outputs can
                    overshoot the range slightly and must be clamped by the consumer).
``shape_profile``   recommended optimisation profile for the input (e.g. a TensorRT profile): ``min``, ``opt``,
                    ``max``, each [N, C, H, W]. The graph itself may accept more (see ``min_size``).
``alignment``       input H and W must be multiples of this (1..1024; pad, e.g. by mirroring, and crop).
``min_size``        smallest input H and W the network accepts (1..4096; 15 for ESA models): pad smaller inputs.
``halo``            recommended context, in input pixels, around each tile when tiling (0..1024; 32 for ESA).
``export``          how it was made: ``exporter``, ``exporter_note``, ``opset`` (0 for non-ONNX formats),
                    ``precision`` ("fp32" | "fp16" | "int8"), ``fp16_io``, ``io`` ("float01" | "float255" |
                    "uint8"), ``simplified``, ``reparam`` {``applied``, ``passes``, ``report``, ``details``}.
``parity``          measured agreement, on real images: ``reference``, ``runtime``, ``value_scale`` ("0..255"),
                    ``entries`` (per input size: ``height``, ``width``, ``image``, ``max_abs_diff``, ``psnr_db``
                    and the fp16 figures ``fp16_max_abs_diff``, ``fp16_psnr_db``, ``fp16_emulated_psnr_db``,
                    ``fp16_peak``) and over all sizes ``max_abs_diff``, ``min_psnr_db``, ``fp16_min_psnr_db``,
                    ``fp16_emulated_min_psnr_db``, ``fp16_peak``. An infinite PSNR (identical) is ``null``.
``graph``           ``nodes``, ``op_counts``, ``nodes_exported``, ``op_counts_exported``, ``initializers``,
                    ``initializer_bytes``.
``versions``        {package: version} of the tools that made it.
``optimize``        optional, on the artifact `edgesr optimize` chose: ``decision``, ``chosen``, ``target``,
                    ``runtime`` {``backend``, ``options``, ``threads``} (what runners default to for this
                    artifact: `recommended_runtime`) and ``evidence`` (quality drop, latency, speed-up, report).
format blocks       one object per format with what only that format needs: ``ort``, ``ncnn``, ``executorch``,
                    ``quantization``, ``tensorrt`` (documented by their exporters), kept in `Sidecar.blocks`.

All numbers are plain JSON (no NaN/Infinity).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from edgesr.errors import InvalidSidecarError, UserInputError
from edgesr.utils.jsonable import to_jsonable

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.1"
SCHEMA_MAJOR = SCHEMA_VERSION.split(".")[0]
KIND = "edgesr-artifact"
SIDECAR_SUFFIX = ".json"
MAX_SIDECAR_BYTES = 16 << 20  # a sidecar with the engine inspector's layer JSON is ~1 MB; more is not ours
FORMAT_OF_SUFFIX = {".onnx": "onnx", ".ort": "ort", ".param": "ncnn", ".pte": "executorch", ".engine": "tensorrt",
                    ".plan": "tensorrt", ".xml": "openvino"}


@dataclass
class TensorSpec:
    """One graph input or output."""

    name: str
    dtype: str = "float32"
    shape: list[Union[int, str]] = field(default_factory=lambda: ["batch", 3, "height", "width"])
    value_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    layout: str = "NCHW"
    color: str = "RGB"
    clamped: bool = False


@dataclass
class ShapeProfile:
    """Recommended [N, C, H, W] shapes for an optimisation profile (the graph may accept more)."""

    min: list[int]
    opt: list[int]
    max: list[int]


@dataclass
class ArtifactFile:
    """The model file the sidecar describes."""

    file: str
    format: str
    bytes: int = 0
    sha256: str = ""


@dataclass
class FileRecord:
    """One file of a (possibly multi-file) artifact, as written."""

    file: str
    bytes: int
    sha256: str
    role: str = "model"


@dataclass
class ModelInfo:
    name: str = "unknown"
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
    exporter: str = "unknown"
    opset: int = 0
    precision: str = "fp32"
    fp16_io: bool = False
    io: Optional[str] = None  # None (hand-written sidecars): from the input's dtype and value range
    simplified: bool = False
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
    reference: str = ""
    runtime: str = ""
    value_scale: str = "0..255"
    entries: list[ParityEntry] = field(default_factory=list)
    max_abs_diff: Optional[float] = None
    min_psnr_db: Optional[float] = None
    fp16_min_psnr_db: Optional[float] = None
    fp16_emulated_min_psnr_db: Optional[float] = None
    fp16_peak: Optional[float] = None


@dataclass
class GraphStats:
    nodes: int = 0
    op_counts: dict[str, int] = field(default_factory=dict)
    nodes_exported: int = 0
    op_counts_exported: dict[str, int] = field(default_factory=dict)
    initializers: int = 0
    initializer_bytes: int = 0


@dataclass
class Sidecar:
    """Everything a consumer needs to run an exported artifact correctly (see the module docstring)."""

    artifact: ArtifactFile
    scale: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    model: ModelInfo = field(default_factory=ModelInfo)
    shape_profile: Optional[ShapeProfile] = None
    export: ExportInfo = field(default_factory=ExportInfo)
    parity: ParityInfo = field(default_factory=ParityInfo)
    graph: GraphStats = field(default_factory=GraphStats)
    alignment: int = 1
    min_size: int = 1
    halo: int = 16
    files: list[FileRecord] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    blocks: dict[str, Any] = field(default_factory=dict)  # per-format blocks: "ncnn", "ort", "tensorrt", ...
    schema_version: str = SCHEMA_VERSION
    kind: str = KIND
    source_path: Optional[Path] = field(default=None, repr=False, compare=False)  # the file it was read from

    # ---- conveniences ---------------------------------------------------------------------------------------
    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    @property
    def output(self) -> TensorSpec:
        return self.outputs[0]

    @property
    def io(self) -> str:
        """The value convention: "float01", "float255" or "uint8" (`export.io`, else from the input tensor)."""
        if self.export.io:
            return self.export.io
        spec = self.inputs[0]
        if spec.dtype == "uint8":
            return "uint8"
        return "float255" if spec.value_range and spec.value_range[-1] == 255 else "float01"

    def block(self, name: str) -> dict[str, Any]:
        """The format block `name` ({} when absent)."""
        value = self.blocks.get(name)
        return value if isinstance(value, dict) else {}

    def recommended_runtime(self) -> tuple[str, dict[str, Any]] | None:
        """(backend, runner options) that `edgesr optimize` measured and chose this artifact with (its
        ``optimize`` block), or None. Options are plain values (threads excluded: the caller's machine decides)."""
        runtime = self.block("optimize").get("runtime")
        if not isinstance(runtime, dict) or not isinstance(runtime.get("backend"), str) or not runtime["backend"]:
            return None
        options = runtime.get("options") if isinstance(runtime.get("options"), dict) else {}
        plain = {str(k): v for k, v in options.items()
                 if k != "threads" and isinstance(v, (str, int, float, bool)) and not isinstance(v, dict)}
        return runtime["backend"], plain

    def copy(self) -> "Sidecar":
        """A deep copy (exporters derive one artifact's sidecar from another's)."""
        return Sidecar.from_dict(self.to_dict(), validate=False)

    # ---- (de)serialisation ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = _clean(dataclasses.asdict(self))
        blocks = data.pop("blocks")
        data.pop("source_path")
        if data["shape_profile"] is None:
            data.pop("shape_profile")
        # schema_version and kind first: they are what a reader checks before anything else
        head = {"schema_version": data.pop("schema_version"), "kind": data.pop("kind")}
        return {**head, **data, **{k: v for k, v in blocks.items() if k not in data and k not in head}}

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "sidecar", validate: bool = True) -> "Sidecar":
        """Build (and by default `validate`) a sidecar from parsed JSON; InvalidSidecarError names the field."""
        if not isinstance(data, dict):
            raise InvalidSidecarError(f"{where} must be a JSON object, got {type(data).__name__}.")
        version = data.get("schema_version")
        if not isinstance(version, str) or version.split(".")[0] != SCHEMA_MAJOR:
            raise InvalidSidecarError(
                f"{where} has schema_version {version!r}; this edgesr reads {SCHEMA_MAJOR}.x. Re-export the model "
                "with this edgesr version, or upgrade edgesr.")
        if data.get("kind") != KIND:
            raise InvalidSidecarError(f"{where} is not an edgesr sidecar (kind {data.get('kind')!r}, "
                                      f"expected {KIND!r}).")
        known = {f.name for f in dataclasses.fields(cls)} - {"blocks", "source_path"}
        blocks = {k: v for k, v in data.items() if k not in known}
        sidecar = _build(cls, {k: v for k, v in data.items() if k in known}, where)
        sidecar.blocks = blocks
        if validate:
            from edgesr.artifacts.validate import validate_sidecar

            validate_sidecar(sidecar, where=where)
        return sidecar

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "sidecar", validate: bool = True) -> "Sidecar":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidSidecarError(f"{where} is not valid JSON: {exc}") from exc
        return cls.from_dict(data, where=where, validate=validate)

    # ---- files ----------------------------------------------------------------------------------------------
    @classmethod
    def read(cls, path: str | Path, *, validate: bool = True) -> "Sidecar":
        """Read the sidecar file `path` (at most `MAX_SIDECAR_BYTES`)."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > MAX_SIDECAR_BYTES:
                raise InvalidSidecarError(f"sidecar {path} is {size:,} bytes; an edgesr sidecar is at most "
                                          f"{MAX_SIDECAR_BYTES:,}. Fix or delete it.")
            text = path.read_bytes()
        except FileNotFoundError:
            raise UserInputError(f"sidecar not found: {path}") from None
        except OSError as exc:
            raise UserInputError(f"cannot read the sidecar {path}: {exc.strerror or exc}") from exc
        sidecar = cls.from_json(text, where=f"sidecar {path}", validate=validate)
        sidecar.source_path = path
        return sidecar

    @classmethod
    def for_artifact(cls, artifact: str | Path, *, required: bool = False, verify: bool = True,
                     verify_sha256: bool | None = None) -> Optional["Sidecar"]:
        """The validated sidecar of `artifact` (None when it has none, unless `required`).

        Completes an export that was interrupted after its commit point (`edgesr.artifacts.store`), then, with
        `verify`, checks every file the sidecar lists (size, and sha256 unless `verify_sha256` is False or
        ``EDGESR_SKIP_SHA256=1``): a file of another export is refused, naming both files.
        """
        from edgesr.artifacts.store import recover_artifact, verify_files

        artifact = Path(artifact)
        recover_artifact(artifact)
        path = find_sidecar(artifact)
        if path is None:
            if required:
                raise UserInputError(f"{artifact} has no sidecar ({sidecar_path_for(artifact).name} beside it); "
                                     "export it with edgesr or write one.")
            return None
        sidecar = cls.read(path)
        if sidecar.artifact.file != artifact.name:
            raise InvalidSidecarError(f"sidecar {path} describes {sidecar.artifact.file!r}, not {artifact.name!r}; "
                                      "the sidecar belongs to another artifact. Fix or delete it.")
        if verify:
            verify_files(sidecar, path, sha256=verify_sha256)
        return sidecar

    def write(self, payloads: Mapping[Path, bytes], *, force: bool = False,
              roles: Mapping[str, str] | None = None) -> Path:
        """Write the artifact's files (`payloads`, the model file first) and then this sidecar beside them, as
        one transaction (`edgesr.artifacts.store.write_artifact`); returns the sidecar's path."""
        from edgesr.artifacts.store import write_artifact

        return write_artifact(self, payloads, force=force, roles=roles)

    @classmethod
    def minimal(cls, artifact: str | Path, *, scale: int, io: str = "float01", input_name: str = "input",
                output_name: str = "output", layout: str = "NCHW", fmt: str | None = None, min_size: int = 1,
                alignment: int = 1, halo: int = 16) -> "Sidecar":
        """The smallest valid sidecar for `artifact` (e.g. a model exported elsewhere): `io` "float01",
        "float255" or "uint8"; `fmt` from the suffix when None. Write it beside the file with `save`."""
        path = Path(artifact)
        dtype = "uint8" if io == "uint8" else "float32"
        rng = [0.0, 1.0] if io == "float01" else [0.0, 255.0]
        shape: list[int | str] = ["batch", 3, "height", "width"] if layout == "NCHW" else \
            ["batch", "height", "width", 3]
        fmt = fmt or FORMAT_OF_SUFFIX.get(path.suffix.lower(), "onnx")
        return cls(artifact=ArtifactFile(file=path.name, format=fmt), scale=scale,
                   inputs=[TensorSpec(input_name, dtype, shape, rng, layout)],
                   outputs=[TensorSpec(output_name, dtype, list(shape), list(rng), layout, clamped=io == "uint8")],
                   export=ExportInfo(io=io), min_size=min_size, alignment=alignment, halo=halo)

    def save(self, folder: str | Path, *, force: bool = False) -> Path:
        """Write only this sidecar beside its existing artifact in `folder`, recording the artifact's size and
        sha256 as they are now (for a hand-made sidecar; exporters use `write`)."""
        from edgesr.utils.hashing import sha256_file
        from edgesr.artifacts.validate import validate_sidecar
        from edgesr.utils.atomic import write_text_atomic

        file = Path(folder) / self.artifact.file
        if not file.is_file():
            raise UserInputError(f"{file} not found: a sidecar is saved beside its artifact.")
        self.artifact.bytes, self.artifact.sha256 = file.stat().st_size, sha256_file(file)
        self.files = [FileRecord(self.artifact.file, self.artifact.bytes, self.artifact.sha256)]
        validate_sidecar(self, where=f"the sidecar of {file.name}")
        return write_text_atomic(sidecar_path_for(file), self.to_json(), force=force)

    def path_for(self, folder: str | Path) -> Path:
        """This sidecar's path in `folder` (beside its artifact)."""
        return sidecar_path_for(Path(folder) / self.artifact.file)


def sidecar_path_for(artifact: str | Path) -> Path:
    """``DIR/<file>.json`` for ``DIR/<file>``: ``rlfn_x4.onnx`` -> ``rlfn_x4.onnx.json``."""
    path = Path(artifact)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def legacy_sidecar_path(artifact: str | Path) -> Path:
    """``DIR/<stem>.json``: where edgesr before sidecar schema 1.1 wrote it (shared by all formats)."""
    return Path(artifact).with_suffix(SIDECAR_SUFFIX)


def find_sidecar(artifact: str | Path) -> Path | None:
    """The sidecar file of `artifact`: ``<file>.json``; else a legacy ``<stem>.json`` that names `artifact` (with
    a deprecation warning; one of another format's artifact is not taken); else None."""
    artifact = Path(artifact)
    path = sidecar_path_for(artifact)
    if path.is_file():
        return path
    legacy = legacy_sidecar_path(artifact)
    if legacy == artifact or not legacy.is_file():
        return None
    if _names_artifact(legacy, artifact.name):
        message = (f"{legacy.name} is a legacy sidecar name (shared by every format of {artifact.stem}); rename it "
                   f"to {path.name} or re-export.")
        warnings.warn(message, DeprecationWarning, stacklevel=3)
        log.warning("%s", message)
        return legacy
    return None


def _names_artifact(path: Path, name: str) -> bool:
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            return False
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("artifact"), dict) and data["artifact"].get("file") == name


def schema_path() -> Path:
    """The published JSON Schema of the sidecar (package data)."""
    return Path(__file__).with_name("sidecar.schema.json")


def load_schema() -> dict[str, Any]:
    return json.loads(schema_path().read_text(encoding="utf-8"))


def _clean(value: Any) -> Any:
    """Strict JSON data: dataclasses expanded, then `to_jsonable` (non-finite floats -> null, paths, numpy)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return to_jsonable(value)


_SCALARS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _build(tp: Any, value: Any, where: str) -> Any:
    """Rebuild `value` (parsed JSON) as type `tp`, recursing into dataclasses and containers, checking types."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) == 1:
            return _build(args[0], value, where)
        for arg in args:  # Union[int, str]: the first that fits
            try:
                return _build(arg, value, where)
            except InvalidSidecarError:
                continue
        raise InvalidSidecarError(f"{where} has an unexpected value {_short(value)}.")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InvalidSidecarError(f"{where} must be an object, got {_short(value)}.")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _build(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InvalidSidecarError(f"{where} is missing the required field {f.name!r}.")
        return tp(**kwargs)
    if origin is list:
        if not isinstance(value, list):
            raise InvalidSidecarError(f"{where} must be a list, got {_short(value)}.")
        (arg,) = typing.get_args(tp) or (Any,)
        return [_build(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidSidecarError(f"{where} must be an object, got {_short(value)}.")
        return value
    if tp in _SCALARS:
        ok = (isinstance(value, bool) if tp is bool else
              isinstance(value, int) and not isinstance(value, bool) if tp is int else
              isinstance(value, (int, float)) and not isinstance(value, bool) if tp is float else
              isinstance(value, str))
        if tp is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if not ok:
            raise InvalidSidecarError(f"{where} must be {_SCALARS[tp]}, got {_short(value)}.")
        return float(value) if tp is float else value
    return value


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (int, float, str, bool, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."

