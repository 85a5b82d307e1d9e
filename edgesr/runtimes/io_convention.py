"""What an artifact takes and returns, and how runners convert to and from the edgesr convention.

At the edge every runner takes and returns float32 NCHW RGB in 0..1. An exported artifact may
use something else (`edgesr export --io uint8|float255`, an FP16 I/O graph, NHWC); its sidecar
JSON says so, and the runner converts on the way in and out, so callers never see the difference.

The sidecar is looked up beside the artifact as ``<file>.json`` (``model.onnx.json``), then
``<stem>.json`` (``model.json``). Its schema belongs to `edgesr.export.sidecar`; this module
reads it defensively and only these keys (missing keys keep the edgesr defaults):

- I/O kind: ``io`` (top level or under ``export``): ``"uint8"`` (uint8 0..255),
  ``"float255"`` (float32 0..255), ``"float01"`` / ``"float32"`` (float32 0..1), ``"float16"``.
- Input description: the first entry of ``inputs`` (a list, or a dict name -> record), else
  ``input``; and top-level ``input_dtype`` / ``input_range`` / ``value_range`` / ``range``.
  In a record: ``dtype``, ``range`` / ``value_range`` / ``input_range``, ``layout``, ``name``.
- Output: the first entry of ``outputs`` / ``output``, top-level ``output_dtype`` / ``output_range``;
  when absent the output uses the input's convention.
- Value ranges may be a number (the maximum, e.g. ``255``), a pair ``[0, 255]`` or a string
  ``"0..255"``; a dict ``normalization`` / ``normalisation`` with ``range`` / ``scale`` also counts.
- Layout: ``layout`` (``"NCHW"`` or ``"NHWC"``).
- Geometry used for input validation and tiling: ``scale``; ``align`` / ``tile_align`` /
  ``alignment``; ``min_size`` / ``min_input_size``; ``halo``; without a min size, the ``min`` shape
  of ``shape_profile`` / ``profile`` / ``shapes`` (``{"min": [1, 3, h, w], "opt": ..., "max": ...}``).
- ``schema_version``: a major version other than 1 is refused (other keys are ignored).

The dtype the artifact itself declares (ONNX input type) wins over the sidecar's when both exist.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgesr.errors import UserInputError

log = logging.getLogger(__name__)

_DTYPES = {
    "float32": np.float32, "float": np.float32, "fp32": np.float32, "f32": np.float32, "tensor(float)": np.float32,
    "float16": np.float16, "half": np.float16, "fp16": np.float16, "f16": np.float16, "tensor(float16)": np.float16,
    "uint8": np.uint8, "u8": np.uint8, "tensor(uint8)": np.uint8,
}
SCHEMA_MAJOR = "1"  # edgesr.export.sidecar's schema; another major version is refused
_IO_KINDS = {
    "uint8": (np.uint8, 255.0), "u8": (np.uint8, 255.0),
    "float255": (np.float32, 255.0),
    "float01": (np.float32, 1.0), "float32": (np.float32, 1.0), "float": (np.float32, 1.0),
    "float16": (np.float16, 1.0), "fp16": (np.float16, 1.0),
}


@dataclass(frozen=True)
class IOConvention:
    """The artifact's native I/O: dtype and value range (max value, 0 is the minimum) and layout."""

    input_dtype: type = np.float32
    input_range: float = 1.0
    output_dtype: type = np.float32
    output_range: float = 1.0
    layout: str = "NCHW"
    source: str = "default"

    @property
    def is_identity(self) -> bool:
        return (np.dtype(self.input_dtype) == np.float32 and self.input_range == 1.0
                and self.output_range == 1.0 and self.layout == "NCHW")

    def to_native(self, x: np.ndarray) -> np.ndarray:
        """float32 NCHW 0..1 -> the artifact's input (rounded and clipped for uint8)."""
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        if np.dtype(self.input_dtype) == np.uint8:
            x = np.clip(np.rint(x * 255.0), 0.0, 255.0).astype(np.uint8)
        else:
            if self.input_range != 1.0:
                x = x * np.float32(self.input_range)
            x = x.astype(self.input_dtype, copy=False)
        return np.ascontiguousarray(x)

    def from_native(self, y: np.ndarray) -> np.ndarray:
        """The artifact's output -> float32 NCHW 0..1 (not clipped: callers clamp, as for torch)."""
        y = np.asarray(y)
        if self.layout == "NHWC":
            y = y.transpose(0, 3, 1, 2)
        y = y.astype(np.float32, copy=False)
        if self.output_range != 1.0:
            y = y * np.float32(1.0 / self.output_range)
        return np.ascontiguousarray(y)

    def describe(self) -> str:
        def one(dtype: type, rng: float) -> str:
            return f"{np.dtype(dtype).name} 0..{rng:g}"

        text = one(self.input_dtype, self.input_range)
        if (self.output_dtype, self.output_range) != (self.input_dtype, self.input_range):
            text += f" -> {one(self.output_dtype, self.output_range)}"
        return f"{text} {self.layout} ({self.source})"


@dataclass(frozen=True)
class ArtifactInfo:
    """What a sidecar says about an artifact, reduced to what runners use."""

    io: IOConvention = field(default_factory=IOConvention)
    scale: int | None = None
    align: int | None = None
    min_size: int | None = None
    halo: int | None = None
    input_name: str | None = None
    sidecar_path: Path | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


def sidecar_path_for(artifact: str | Path) -> Path | None:
    """The sidecar JSON of `artifact` if one exists: ``<file>.json``, else ``<stem>.json``."""
    path = Path(artifact)
    for cand in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if cand != path and cand.is_file():
            return cand
    return None


def read_sidecar(artifact: str | Path) -> dict[str, Any] | None:
    """The parsed sidecar of `artifact`, or None when there is none. A broken one is a user error."""
    side = sidecar_path_for(artifact)
    if side is None:
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read the sidecar {side} of {artifact}: {exc}. Fix or delete it.") from exc
    if not isinstance(data, dict):
        raise UserInputError(f"sidecar {side} is not a JSON object; fix or delete it.")
    return data


def _first_record(meta: Mapping[str, Any], plural: str, singular: str) -> Mapping[str, Any]:
    rec = meta.get(plural, meta.get(singular))
    if isinstance(rec, list) and rec and isinstance(rec[0], Mapping):
        return rec[0]
    if isinstance(rec, Mapping):
        if rec and all(isinstance(v, Mapping) for v in rec.values()):  # {name: record}
            name, first = next(iter(rec.items()))
            return {"name": name, **first}
        return rec
    return {}


def parse_range(value: Any, where: str = "sidecar") -> float | None:
    """255, [0, 255], "0..255", "0-1" -> the maximum; None when absent."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return parse_range(value.get("range", value.get("max", value.get("scale"))), where)
    lo: Any = 0.0
    hi: Any = value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = value
    elif isinstance(value, str):
        parts = [p for p in re.split(r"\s*(?:\.\.|-|,|:)\s*", value.strip().strip("[]()")) if p]
        if len(parts) == 2:
            lo, hi = parts
        elif len(parts) == 1:
            hi = parts[0]
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise UserInputError(f"{where}: cannot read value range {value!r}; expected e.g. 255, [0, 255] or '0..1'.")
    if lo != 0.0 or hi <= 0.0:
        raise UserInputError(f"{where}: value range {value!r} is not supported; only 0..max ranges are.")
    return hi


def parse_dtype(value: Any, where: str = "sidecar") -> type | None:
    if value is None:
        return None
    key = str(value).strip().lower().replace("numpy.", "").replace("torch.", "")
    if key not in _DTYPES:
        raise UserInputError(f"{where}: unsupported I/O dtype {value!r}; supported: float32, float16, uint8.")
    return _DTYPES[key]


def _int(meta: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = meta.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


def artifact_info(meta: Mapping[str, Any] | None, *, model_input_dtype: type | None = None,
                  model_output_dtype: type | None = None, sidecar_path: Path | None = None) -> ArtifactInfo:
    """Combine a sidecar (may be None) with the dtypes the artifact itself declares."""
    meta = dict(meta or {})
    where = f"sidecar {sidecar_path}" if sidecar_path else "sidecar"
    version = meta.get("schema_version")
    if version is not None and str(version).split(".")[0] != SCHEMA_MAJOR:
        raise UserInputError(f"{where} has schema_version {version}; this edgesr reads {SCHEMA_MAJOR}.x. "
                             "Re-export the model with this edgesr version, or upgrade edgesr.")
    export = meta.get("export") if isinstance(meta.get("export"), Mapping) else {}
    inp = _first_record(meta, "inputs", "input")
    out = _first_record(meta, "outputs", "output")
    norm = meta.get("normalization", meta.get("normalisation"))

    kind = meta.get("io", export.get("io"))
    kind_dtype, kind_range = None, None
    if isinstance(kind, str):
        key = kind.strip().lower()
        if key not in _IO_KINDS:
            raise UserInputError(f"{where}: unknown io {kind!r}; known: {', '.join(sorted(_IO_KINDS))}.")
        kind_dtype, kind_range = _IO_KINDS[key]

    in_dtype = parse_dtype(inp.get("dtype", meta.get("input_dtype")), where) or kind_dtype
    in_range = parse_range(next((v for v in (inp.get("range"), inp.get("value_range"), inp.get("input_range"),
                                             meta.get("input_range"), meta.get("value_range"), meta.get("range"),
                                             norm) if v is not None), None), where) or kind_range
    out_dtype = parse_dtype(out.get("dtype", meta.get("output_dtype")), where)
    out_range = parse_range(next((v for v in (out.get("range"), out.get("value_range"), out.get("output_range"),
                                              meta.get("output_range")) if v is not None), None), where)

    for declared, name in ((model_input_dtype, "input"), (model_output_dtype, "output")):
        side = in_dtype if name == "input" else out_dtype
        if declared is not None and side is not None and np.dtype(declared) != np.dtype(side):
            log.warning("%s says the %s is %s but the model declares %s; using the model's",
                        where, name, np.dtype(side).name, np.dtype(declared).name)
    in_dtype = model_input_dtype or in_dtype or np.float32
    out_dtype = model_output_dtype or out_dtype or in_dtype
    if in_range is None:
        in_range = 255.0 if np.dtype(in_dtype) == np.uint8 else 1.0
    if out_range is None:
        out_range = 255.0 if np.dtype(out_dtype) == np.uint8 else in_range  # an `--io` choice covers both ends
    layout = str(inp.get("layout", meta.get("layout", "NCHW"))).upper()
    if layout not in ("NCHW", "NHWC"):
        raise UserInputError(f"{where}: unsupported layout {layout!r}; supported: NCHW, NHWC.")

    min_size = _int(meta, "min_size", "min_input_size")
    profile = meta.get("shape_profile", meta.get("profile", meta.get("shapes")))
    if min_size is None and isinstance(profile, Mapping) and isinstance(profile.get("min"), (list, tuple)):
        dims = [d for d in profile["min"] if isinstance(d, int)]
        if len(dims) == 4:  # a profile is a recommendation; only used when min_size is not given
            hw = dims[1:3] if layout == "NHWC" else dims[2:4]
            min_size = min(hw)

    source = "sidecar" if meta else ("model" if model_input_dtype is not None else "default")
    io = IOConvention(in_dtype, float(in_range), out_dtype, float(out_range), layout, source)
    return ArtifactInfo(io=io, scale=_int(meta, "scale"), align=_int(meta, "align", "tile_align", "alignment"),
                        min_size=min_size, halo=_int(meta, "halo"), input_name=inp.get("name"),
                        sidecar_path=sidecar_path, raw=meta)


def load_artifact_info(artifact: str | Path, *, model_input_dtype: type | None = None,
                       model_output_dtype: type | None = None, use_sidecar: bool = True) -> ArtifactInfo:
    """Read `artifact`'s sidecar (if any and `use_sidecar`) and combine it with the model's dtypes."""
    side = sidecar_path_for(artifact) if use_sidecar else None
    meta = read_sidecar(artifact) if side is not None else None
    return artifact_info(meta, model_input_dtype=model_input_dtype, model_output_dtype=model_output_dtype,
                         sidecar_path=side)


def edge_shape(shape: list[Any], layout: str) -> tuple[int | None, ...]:
    """Model input shape (ints, symbols or None) -> NCHW with None for dynamic dimensions."""
    dims = tuple(d if isinstance(d, int) and d > 0 else None for d in shape)
    if len(dims) != 4:
        return (None, None, None, None)
    return (dims[0], dims[3], dims[1], dims[2]) if layout == "NHWC" else dims
