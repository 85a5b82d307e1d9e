"""Sidecar validation in one place: static bounds, consistency, memory, and cross-checks against the artifact.

A sidecar steers how much memory a runner allocates (inputs are padded to ``min_size`` and ``alignment``) and
how values are converted, so a hostile or wrong one must be refused before any work, with a message naming the
file and the field. Three levels:

* `validate_sidecar` (run by `Sidecar.from_dict`): every field within its published bounds (the same as the
  JSON Schema, ``sidecar.schema.json``), fields consistent with each other (a uint8 tensor is 0..255, ``io``
  agrees with the value ranges, a profile is min <= opt <= max), and the smallest input the sidecar demands
  fits the machine's memory.
* `check_against_artifact` (run by a runner once it has loaded the artifact): the input name exists in the
  artifact, the dtypes agree, a fixed input size satisfies ``min_size`` / ``alignment``.
* `check_scale` (run on a runner's outputs, so the first call is the probe): the output is ``scale`` x the input.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

from edgesr.errors import InvalidSidecarError
from edgesr.utils.memory import available_memory_bytes

if TYPE_CHECKING:
    from edgesr.artifacts.sidecar import Sidecar

# Published bounds (mirrored by sidecar.schema.json; tests keep them equal).
SCALE_RANGE = (1, 16)
ALIGNMENT_RANGE = (1, 1024)
MIN_SIZE_RANGE = (1, 4096)
HALO_RANGE = (0, 1024)
MAX_DIM = 65536
MAX_TENSORS = 16
MAX_NAME = 256
DTYPES = ("float32", "float16", "uint8")
LAYOUTS = ("NCHW", "NHWC")
COLORS = ("RGB",)
IO_KINDS = ("float01", "float255", "uint8")
IO_RANGE_MAX = {"float01": 1.0, "float255": 255.0, "uint8": 255.0}
PRECISIONS = ("fp32", "fp16", "int8")
FORMATS = ("onnx", "ort", "ncnn", "executorch", "tensorrt", "openvino")
VALUE_RANGES = ([0.0, 1.0], [0.0, 255.0])
MEMORY_FRACTION = 0.25  # the smallest input the sidecar demands, and its output, must fit in this much memory
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def smallest_input(min_size: int, alignment: int) -> int:
    """The smallest height/width an artifact takes: `min_size` rounded up to a multiple of `alignment`."""
    return -(-max(1, min_size) // max(1, alignment)) * max(1, alignment)


def validate_sidecar(s: "Sidecar", *, where: str = "sidecar", memory_bytes: int | None = None) -> None:
    """Raise InvalidSidecarError naming `where` and the first bad field (and how many more there are)."""
    problems = _problems(s)
    if not problems:
        problems = _memory_problems(s, memory_bytes if memory_bytes is not None else available_memory_bytes())
    if problems:
        more = f" ({len(problems) - 1} more problem(s): {'; '.join(problems[1:3])})" if len(problems) > 1 else ""
        raise InvalidSidecarError(f"{where} is invalid: {problems[0]}{more}. Fix it, or re-export the artifact.")


def _in(value: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]


def _plain_name(name: str) -> bool:
    return bool(name) and len(name) <= MAX_NAME and "/" not in name and "\\" not in name and name not in (".", "..") \
        and "\x00" not in name


def _problems(s: "Sidecar") -> list[str]:
    out: list[str] = []
    art = s.artifact
    if not _plain_name(art.file):
        out.append(f"artifact.file {art.file!r} must be a plain file name beside the sidecar")
    if art.format not in FORMATS:
        out.append(f"artifact.format {art.format!r} is not one of {', '.join(FORMATS)}")
    if not (isinstance(art.bytes, int) and art.bytes >= 0):
        out.append(f"artifact.bytes {art.bytes!r} must be a size >= 0")
    if art.sha256 and not _HEX64.match(art.sha256):
        out.append("artifact.sha256 must be 64 lower-case hex digits")
    seen: set[str] = set()
    for i, rec in enumerate(s.files):
        if not _plain_name(rec.file) or rec.file in seen:
            out.append(f"files[{i}].file {rec.file!r} must be a plain file name, listed once")
        seen.add(rec.file)
        if not (isinstance(rec.bytes, int) and rec.bytes >= 0) or not _HEX64.match(rec.sha256 or ""):
            out.append(f"files[{i}] ({rec.file}) needs bytes >= 0 and a sha256 of 64 hex digits")
    if s.files and s.files[0].file != art.file:
        out.append(f"files[0] must be the artifact {art.file!r}, got {s.files[0].file!r}")
    for name, value, bounds in (("scale", s.scale, SCALE_RANGE), ("alignment", s.alignment, ALIGNMENT_RANGE),
                                ("min_size", s.min_size, MIN_SIZE_RANGE), ("halo", s.halo, HALO_RANGE)):
        if not _in(value, bounds):
            out.append(f"{name} {value!r} is outside {bounds[0]}..{bounds[1]}")
    io = s.export.io
    if io is not None and io not in IO_KINDS:
        out.append(f"export.io {io!r} is not one of {', '.join(IO_KINDS)}")
        io = None
    if s.export.precision not in PRECISIONS:
        out.append(f"export.precision {s.export.precision!r} is not one of {', '.join(PRECISIONS)}")
    if not _in(s.export.opset, (0, 1000)):
        out.append(f"export.opset {s.export.opset!r} is outside 0..1000")
    for kind, tensors in (("inputs", s.inputs), ("outputs", s.outputs)):
        if not 1 <= len(tensors) <= MAX_TENSORS:
            out.append(f"{kind} must list 1..{MAX_TENSORS} tensors, got {len(tensors)}")
        for i, t in enumerate(tensors[:MAX_TENSORS]):
            out.extend(f"{kind}[{i}].{p}" for p in _tensor_problems(t, io))
    if s.shape_profile is not None:
        dims = {}
        for key in ("min", "opt", "max"):
            value = getattr(s.shape_profile, key)
            if len(value) != 4 or not all(_in(d, (1, MAX_DIM)) for d in value):
                out.append(f"shape_profile.{key} {value!r} must be 4 integers in 1..{MAX_DIM} ([N, C, H, W])")
            else:
                dims[key] = value
        if len(dims) == 3 and not all(a <= b <= c for a, b, c in zip(dims["min"], dims["opt"], dims["max"])):
            out.append(f"shape_profile must have min <= opt <= max, got {dims['min']}, {dims['opt']}, {dims['max']}")
    return out


def _tensor_problems(t: Any, io: str | None) -> list[str]:
    out = []
    if not isinstance(t.name, str) or not 1 <= len(t.name) <= MAX_NAME:
        out.append(f"name must be 1..{MAX_NAME} characters")
    if t.dtype not in DTYPES:
        out.append(f"dtype {t.dtype!r} is not one of {', '.join(DTYPES)}")
    if t.layout not in LAYOUTS:
        out.append(f"layout {t.layout!r} is not one of {', '.join(LAYOUTS)}")
    if t.color not in COLORS:
        out.append(f"color {t.color!r} is not one of {', '.join(COLORS)}")
    rng = [float(v) for v in t.value_range] if all(isinstance(v, (int, float)) for v in t.value_range) else None
    if rng not in VALUE_RANGES:
        out.append(f"value_range {t.value_range!r} is not [0, 1] or [0, 255]")
    elif t.dtype == "uint8" and rng[1] != 255.0:
        out.append("value_range of a uint8 tensor must be [0, 255]")
    elif io is not None and rng[1] != IO_RANGE_MAX[io]:
        out.append(f"value_range {t.value_range!r} contradicts export.io {io!r} (0..{IO_RANGE_MAX[io]:g})")
    if io == "uint8" and t.dtype != "uint8" or io not in (None, "uint8") and t.dtype == "uint8":
        out.append(f"dtype {t.dtype!r} contradicts export.io {io!r}")
    if len(t.shape) != 4 or not all((isinstance(d, str) and 0 < len(d) <= 64) or _in(d, (1, MAX_DIM))
                                    for d in t.shape):
        out.append(f"shape {t.shape!r} must be 4 dimensions (ints in 1..{MAX_DIM} or names)")
    return out


def _memory_problems(s: "Sidecar", memory: int | None) -> list[str]:
    if memory is None:
        return []
    side = smallest_input(s.min_size, s.alignment)
    channels = 3
    need = channels * side * side * 4 * (1 + s.scale * s.scale)  # float32 input + output of the smallest input
    if need > MEMORY_FRACTION * memory:
        return [f"min_size {s.min_size} with alignment {s.alignment} and scale {s.scale} demands {side}x{side} "
                f"inputs ({need / 2**30:.1f} GiB with the output), more than {MEMORY_FRACTION:.0%} of this "
                f"machine's {memory / 2**30:.1f} GiB available memory"]
    return []


def check_against_artifact(s: "Sidecar", *, where: str, input_names: Sequence[str] | None = None,
                           input_dtype: str | None = None, output_dtype: str | None = None,
                           fixed_hw: tuple[int | None, int | None] | None = None) -> None:
    """Compare the sidecar with what the loaded artifact declares; InvalidSidecarError on a contradiction.

    `input_names`: the artifact's input names (ONNX inputs, ncnn input blobs, ...); `input_dtype` /
    `output_dtype`: its declared element types ("float32", "float16", "uint8"; None when it does not declare
    them); `fixed_hw`: its fixed input height/width (None entries: dynamic).
    """
    problems = []
    name = s.input.name
    if input_names is not None and name not in input_names:
        problems.append(f"its input {name!r} does not exist in the artifact (inputs: {', '.join(map(repr, input_names))})")
    for what, declared, spec in (("input", input_dtype, s.input), ("output", output_dtype, s.output)):
        if declared is not None and declared != spec.dtype:
            problems.append(f"it says the {what} is {spec.dtype} but the artifact declares {declared}")
    for axis, size in zip("HW", fixed_hw or ()):
        if size is None:
            continue
        if size < s.min_size:
            problems.append(f"its min_size {s.min_size} exceeds the artifact's fixed input {axis}={size}")
        if size % s.alignment:
            problems.append(f"its alignment {s.alignment} does not divide the artifact's fixed input {axis}={size}")
    if problems:
        raise InvalidSidecarError(f"{where} contradicts {s.artifact.file}: {'; '.join(problems)}. Fix the "
                                  "sidecar, or re-export the artifact.")


def check_scale(scale: int, in_hw: tuple[int, int], out_hw: tuple[int, int], *, where: str, artifact: str) -> None:
    """The measured output size must be `scale` x the input's (`where` names the sidecar that gave `scale`)."""
    if (out_hw[0], out_hw[1]) != (in_hw[0] * scale, in_hw[1] * scale):
        measured = out_hw[0] / in_hw[0] if in_hw[0] else float("nan")
        raise InvalidSidecarError(
            f"{where} is invalid: it says scale {scale}, but {artifact} turns a {in_hw[0]}x{in_hw[1]} input into "
            f"{out_hw[0]}x{out_hw[1]} (scale {measured:g}). Fix the sidecar's scale, or re-export the artifact.")
