"""What an artifact takes and returns, and how runners convert to and from the edgesr convention.

At the edge every runner takes and returns float32 NCHW RGB in 0..1. An exported artifact may
use something else (`edgesr export --io uint8|float255`, an FP16 I/O graph, NHWC); its sidecar
(`edgesr.artifacts.Sidecar`, ``<file>.json`` beside it) says so, and the runner converts on the way in and
out, so callers never see the difference. `load_artifact_info` reads the sidecar (validated, its files
verified), cross-checks it with what the loaded artifact declares (input names, dtypes) and reduces it to
what runners use. Without a sidecar the artifact's own dtypes decide (uint8: 0..255, else 0..1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgesr.artifacts.sidecar import Sidecar
from edgesr.artifacts.validate import check_against_artifact
from edgesr.errors import UserInputError

_DTYPES = {
    "float32": np.float32, "float": np.float32, "tensor(float)": np.float32,
    "float16": np.float16, "tensor(float16)": np.float16,
    "uint8": np.uint8, "tensor(uint8)": np.uint8,
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
    """What a sidecar says about an artifact, reduced to what runners use (`sidecar`: the whole of it)."""

    io: IOConvention = field(default_factory=IOConvention)
    scale: int | None = None
    align: int | None = None
    min_size: int | None = None
    halo: int | None = None
    input_name: str | None = None
    sidecar_path: Path | None = None
    sidecar: Sidecar | None = None

    def block(self, name: str) -> dict[str, Any]:
        """The sidecar's format block `name` ({} without a sidecar or block)."""
        return self.sidecar.block(name) if self.sidecar is not None else {}


def parse_dtype(value: Any, where: str = "artifact") -> type | None:
    """"float32", "tensor(float16)", "uint8", ... -> the numpy type; None for None."""
    if value is None:
        return None
    key = str(value).strip().lower().replace("numpy.", "")
    if key not in _DTYPES:
        raise UserInputError(f"{where}: unsupported I/O dtype {value!r}; supported: float32, float16, uint8.")
    return _DTYPES[key]


def _dtype_name(dtype: type | None) -> str | None:
    return None if dtype is None else np.dtype(dtype).name


def artifact_info(sidecar: Sidecar | None, *, model_input_dtype: type | None = None,
                  model_output_dtype: type | None = None, sidecar_path: Path | None = None) -> ArtifactInfo:
    """Combine a validated sidecar (may be None) with the dtypes the artifact itself declares."""
    if sidecar is None:
        in_dtype = model_input_dtype or np.float32
        out_dtype = model_output_dtype or in_dtype
        in_range = 255.0 if np.dtype(in_dtype) == np.uint8 else 1.0
        out_range = 255.0 if np.dtype(out_dtype) == np.uint8 else in_range
        source = "model" if model_input_dtype is not None else "default"
        return ArtifactInfo(io=IOConvention(in_dtype, in_range, out_dtype, out_range, "NCHW", source))
    inp, out = sidecar.input, sidecar.output
    io = IOConvention(model_input_dtype or parse_dtype(inp.dtype), float(inp.value_range[1]),
                      model_output_dtype or parse_dtype(out.dtype), float(out.value_range[1]), inp.layout, "sidecar")
    return ArtifactInfo(io=io, scale=sidecar.scale, align=sidecar.alignment, min_size=sidecar.min_size,
                        halo=sidecar.halo, input_name=inp.name, sidecar_path=sidecar_path, sidecar=sidecar)


def load_artifact_info(artifact: str | Path, *, model_input_dtype: type | None = None,
                       model_output_dtype: type | None = None, input_names: Sequence[str] | None = None,
                       fixed_hw: tuple[int | None, int | None] | None = None, use_sidecar: bool = True,
                       verify_sha256: bool | None = None, sidecar: Sidecar | None = None) -> ArtifactInfo:
    """Read `artifact`'s sidecar (if any and `use_sidecar`; validated, files verified; or take `sidecar`, read
    before the artifact was loaded), cross-check it with what the loaded artifact declares (`input_names`,
    dtypes, `fixed_hw`) and combine the two."""
    if sidecar is None and use_sidecar:
        sidecar = Sidecar.for_artifact(artifact, verify_sha256=verify_sha256)
    if sidecar is None:
        return artifact_info(None, model_input_dtype=model_input_dtype, model_output_dtype=model_output_dtype)
    path = sidecar.source_path
    check_against_artifact(sidecar, where=f"sidecar {path}", input_names=input_names,
                           input_dtype=_dtype_name(model_input_dtype), output_dtype=_dtype_name(model_output_dtype),
                           fixed_hw=fixed_hw)
    return artifact_info(sidecar, model_input_dtype=model_input_dtype, model_output_dtype=model_output_dtype,
                         sidecar_path=path)


def edge_shape(shape: list[Any], layout: str) -> tuple[int | None, ...]:
    """Model input shape (ints, symbols or None) -> NCHW with None for dynamic dimensions."""
    dims = tuple(d if isinstance(d, int) and d > 0 else None for d in shape)
    if len(dims) != 4:
        return (None, None, None, None)
    return (dims[0], dims[3], dims[1], dims[2]) if layout == "NHWC" else dims


def fixed_hw(shape: Sequence[Any], layout: str = "NCHW") -> tuple[int | None, int | None]:
    """(H, W) of a model input shape where fixed, None where dynamic (for `check_against_artifact`)."""
    dims = edge_shape(list(shape), layout)
    return dims[2], dims[3]
