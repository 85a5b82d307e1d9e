"""The candidates of a search: model variant x precision x runtime, and why the others are skipped.

Runtimes are rows of `RUNTIMES`; each names the runner backend (`edgesr.runtimes` registry) and the export
format (`edgesr.export.formats` registry) it runs, so a format registered later (e.g. ``openvino`` IR, with its
INT8 path) is picked up without code here: `openvino` runs its own IR when that format is registered, else the
ONNX export. A candidate's precision is either the artifact's (``fp16`` export, the format's INT8 variant) or
the runtime's arithmetic on an FP32 artifact (OpenVINO's bf16/f16 inference precision hint, torch bf16).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from edgesr.errors import UserInputError, suggest
from edgesr.optimize.targets import Machine, TargetProfile

PRECISIONS = ("fp32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class Runtime:
    """A runtime a candidate can run on: `backend` (runner registry name), `fmt` the export format of its FP32
    artifact (None: the in-memory module), `runner` options every candidate of it gets, `devices` it runs on."""

    name: str
    backend: str
    fmt: str | None
    precisions: tuple[str, ...]
    runner: tuple[tuple[str, Any], ...] = ()
    devices: tuple[str, ...] = ("cpu", "cuda")


RUNTIMES: tuple[Runtime, ...] = (
    Runtime("torch", "torch", None, ("fp32", "bf16", "fp16")),
    Runtime("torch.compile", "torch", None, ("fp32", "bf16", "fp16"), runner=(("compile", True),)),
    Runtime("onnxruntime", "onnxruntime", "onnx", ("fp32", "fp16", "int8")),
    Runtime("openvino", "openvino", "onnx", ("fp32", "bf16", "fp16", "int8"), devices=("cpu",)),
    Runtime("ncnn", "ncnn", "ncnn", ("fp32", "fp16", "int8"), devices=("cpu",)),
    Runtime("executorch", "executorch", "executorch", ("fp32", "fp16", "int8"), devices=("cpu",)),
    Runtime("ort", "onnxruntime", "ort", ("fp32", "fp16", "int8"), devices=("cpu",)),
    Runtime("tensorrt", "tensorrt", "trt", ("fp32", "fp16", "int8"), devices=("cuda",)),
)
BASELINE = ("torch", "fp32")
# Build order under a time bound: runtimes that usually give the fastest deployable CPU artifact first,
# torch.compile (minutes of compiling on a small CPU) last.
BUILD_ORDER = ("openvino", "onnxruntime", "ncnn", "executorch", "ort", "tensorrt", "torch", "torch.compile")  # eager PyTorch FP32: the reference for speed-up and quality drop


@dataclass(frozen=True)
class Candidate:
    """One thing to build and measure. `fmt`/`fp16`: the artifact to export (None: the torch module itself);
    `runner`: `create_runner` options (threads come from the target)."""

    variant: str
    runtime: str
    backend: str
    precision: str
    fmt: str | None = None
    fp16: bool = False
    runner: dict[str, Any] = field(default_factory=dict)
    int8: bool = False  # an INT8 artifact (the format's INT8 variant, or its own ``int8`` option)

    @property
    def key(self) -> str:
        return f"{self.variant}:{self.runtime}:{self.precision}"

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"

    @property
    def deployable(self) -> bool:
        """An exported artifact with a sidecar (torch rows are references: there is no file to ship)."""
        return self.fmt is not None

    @property
    def is_baseline(self) -> bool:
        return (self.runtime, self.precision) == BASELINE

    @property
    def artifact_key(self) -> str:
        """Candidates with equal keys share one export (OpenVINO f32 and bf16 run one FP32 file)."""
        return f"{self.variant}|{self.fmt}|{'fp16' if self.fp16 else 'int8' if self.int8 else 'fp32'}"


@dataclass(frozen=True)
class Skipped:
    """A candidate that is not built, and why (a missing extra, no bf16/AMX, no GPU, the time budget...)."""

    variant: str
    runtime: str
    precision: str
    reason: str

    @property
    def key(self) -> str:
        return f"{self.variant}:{self.runtime}:{self.precision}"


def parse_backends(names: Sequence[str]) -> list[str]:
    """Runtime names from --backends (comma separated or repeated; runner backend names and aliases work too:
    ``ov`` -> openvino; ``onnxruntime`` selects ONNX Runtime on .onnx only, ``ort`` the .ort file)."""
    from edgesr.runtimes import get_backend

    known = [r.name for r in RUNTIMES]
    out: list[str] = []
    for item in names:
        for raw in str(item).split(","):
            name = raw.strip().lower()
            if not name:
                continue
            if name in ("eager", "pytorch"):
                name = "torch"
            elif name in ("compile", "torch-compile", "torch_compile"):
                name = "torch.compile"
            elif name == "trt":
                name = "tensorrt"
            elif name not in known:
                try:
                    name = get_backend(name).name
                except UserInputError:
                    raise UserInputError(f"unknown runtime {raw.strip()!r} in --backends.{suggest(name, known)} "
                                         f"Runtimes: {', '.join(known)}.") from None
            if name not in out:
                out.append(name)
    return out


def _format_of(runtime: Runtime) -> str | None:
    """The runtime's FP32 export format; OpenVINO runs its own IR as soon as that format is registered."""
    from edgesr.export.formats import list_formats

    if runtime.backend == "openvino" and "openvino" in list_formats():
        return "openvino"
    return runtime.fmt


def _int8_format(fmt: str) -> str | None:
    """The format the INT8 artifact of `fmt` is exported as (its INT8 variant, or `fmt` itself when INT8 is one
    of its own options); None: no INT8 path."""
    from edgesr.export.formats import get_format

    info = get_format(fmt)
    if info.int8_variant:
        return info.int8_variant
    return fmt if "int8" in info.config_fields() else None


def _plan(runtime: Runtime, precision: str, variant: str, target: TargetProfile, machine: Machine,
          ) -> Candidate | str:
    """The candidate, or why it cannot run here."""
    from edgesr.runtimes import get_backend

    info = get_backend(runtime.backend)
    if target.device not in runtime.devices:
        return ("TensorRT builds engines for NVIDIA GPUs: --target cuda only" if runtime.backend == "tensorrt"
                else f"{runtime.name} runs on the CPU only")
    if info.package and not info.is_available():
        return f"missing extra: {info.missing_message()}"
    cpu = target.device == "cpu"
    if precision == "bf16" and cpu:
        if not target.low_precision_float:
            return f"the {target.name} target has no bf16/AMX"
        if not machine.bf16:
            return machine.bf16_reason()
    if precision == "fp16" and cpu and machine.x86 and not target.low_precision_float:
        return f"the {target.name} target has no bf16/AMX (fp16 arithmetic on x86 is AMX-FP16 / AVX-512 FP16)"
    runner: dict[str, Any] = dict(runtime.runner)
    fmt = _format_of(runtime)
    fp16 = False
    if runtime.backend == "torch":
        if precision == "int8":
            return "PyTorch INT8 is not an edgesr path"
        if precision == "fp16" and cpu and not machine.fp16:
            return machine.fp16_reason()
        runner.update(precision=precision, device=target.device)
        return Candidate(variant, runtime.name, runtime.backend, precision, None, False, runner)
    assert fmt is not None
    if precision == "int8":
        int8 = _int8_format(fmt)
        if int8 is None and runtime.backend == "openvino":
            int8 = _int8_format("onnx")  # OpenVINO runs the QDQ ONNX graph in INT8 too
        if int8 is None:
            return f"the {fmt} format has no INT8 path in edgesr"
        if runtime.backend == "openvino":
            runner["precision"] = "bf16" if cpu and machine.bf16 and target.low_precision_float else "f32"
        return Candidate(variant, runtime.name, runtime.backend, precision, int8, False, runner, int8=True)
    if runtime.backend == "openvino":  # one FP32 artifact, the arithmetic from the inference precision hint
        if precision == "fp16" and not machine.fp16:
            return machine.fp16_reason()
        runner["precision"] = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[precision]
        return Candidate(variant, runtime.name, runtime.backend, precision, fmt, False, runner)
    if precision == "fp16":
        from edgesr.export.formats import get_format

        if not get_format(fmt).accepts_fp16:
            return f"the {fmt} format has no FP16 export"
        if cpu and machine.x86:
            return (f"{runtime.name} on an x86 CPU computes an FP16 graph through casts to FP32 (no FP16 kernels): "
                    "never faster than its FP32 candidate")
        fp16 = True
        if runtime.backend == "ncnn":
            runner["fp16"] = True
    elif precision != "fp32":
        return f"{runtime.name} has no {precision} path"
    if runtime.backend == "onnxruntime" and target.device == "cuda":
        runner["provider"] = "cuda"
    return Candidate(variant, runtime.name, runtime.backend, precision, fmt, fp16, runner)


def enumerate_candidates(variants: Sequence[str], target: TargetProfile, machine: Machine,
                         runtimes: Sequence[str] | None = None,
                         precisions: Sequence[str] = PRECISIONS) -> tuple[list[Candidate], list[Skipped]]:
    """Every (variant, runtime, precision) the target asks for: the candidates this machine can build, and the
    skipped ones with their reason. Eager PyTorch FP32 of each variant is always a candidate (the baseline).
    The baseline comes first, then by `BUILD_ORDER`, INT8 (whose calibration is the slowest export) last, so a
    time-bounded search spends its time where the fast deployable forms usually are."""
    chosen = set(runtimes) if runtimes else None
    cands: list[Candidate] = []
    skipped: list[Skipped] = []
    for variant in variants:
        for runtime in RUNTIMES:
            for precision in runtime.precisions:
                is_base = (runtime.name, precision) == BASELINE
                if not is_base and (precision not in precisions or (chosen is not None and runtime.name not in chosen)):
                    continue
                planned = _plan(runtime, precision, variant, target, machine)
                if isinstance(planned, Candidate):
                    cands.append(planned)
                else:
                    skipped.append(Skipped(variant, runtime.name, precision, planned))
    cands.sort(key=lambda c: (not c.is_baseline, c.precision == "int8", BUILD_ORDER.index(c.runtime)))
    return cands, skipped
