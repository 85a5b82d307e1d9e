"""What a benchmark runs: a model on a backend, described by a short spec string.

Backend specs: ``torch`` (eager fp32), ``torch:channels_last``, ``torch:compile``, ``torch:fp16``,
``torch:cuda`` / ``torch:cuda,fp16``, ``onnxruntime`` (= ``ort``), ``ort:fp16``, ``ort:cuda``,
``openvino`` (f32), ``openvino:bf16``, ``tensorrt``, ``ncnn``, ``executorch``. Options after the colon
are comma separated. Non-torch backends run edgesr's fused ONNX export of the model, made once per
model and precision and kept in the benchmark's work folder.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from edgesr.errors import UserInputError

log = logging.getLogger(__name__)

_TORCH_FLAGS = {"eager", "channels_last", "compile", "fp32", "fp16", "bf16", "cuda", "cpu"}
_ORT_FLAGS = {"fp32", "fp16", "cpu", "cuda", "tensorrt", "trt"}
_OV_FLAGS = {"f32", "fp32", "bf16", "f16", "fp16"}


@dataclass(frozen=True)
class BackendSpec:
    backend: str
    flags: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "BackendSpec":
        from edgesr.runtimes import get_backend

        name, _, rest = text.strip().partition(":")
        backend = get_backend(name).name
        flags = tuple(f.strip().lower() for f in rest.split(",") if f.strip())
        allowed = {"torch": _TORCH_FLAGS, "onnxruntime": _ORT_FLAGS, "openvino": _OV_FLAGS}.get(backend, {"fp32", "fp16"})
        bad = [f for f in flags if f not in allowed]
        if bad:
            raise UserInputError(f"unknown option(s) {', '.join(bad)} for backend {backend} in {text!r}; "
                                 f"allowed: {', '.join(sorted(allowed))}.")
        return cls(backend, flags)

    @property
    def label(self) -> str:
        return self.backend + (":" + ",".join(self.flags) if self.flags else "")

    @property
    def precision(self) -> str:
        for p in ("fp16", "bf16", "f16"):
            if p in self.flags:
                return "fp16" if p == "f16" else p
        return "fp32"

    @property
    def device(self) -> str:
        return "cuda" if ("cuda" in self.flags or self.backend == "tensorrt" or "tensorrt" in self.flags
                          or "trt" in self.flags) else "cpu"

    def runner_options(self, threads: int | None) -> dict[str, Any]:
        f = set(self.flags)
        if self.backend == "torch":
            return {"device": self.device, "precision": self.precision, "channels_last": "channels_last" in f,
                    "compile": "compile" in f, "threads": threads}
        if self.backend == "onnxruntime":
            provider = "tensorrt" if f & {"tensorrt", "trt"} else ("cuda" if "cuda" in f else "cpu")
            return {"provider": provider, "threads": threads}
        if self.backend == "openvino":
            return {"precision": "bf16" if "bf16" in f else ("f16" if f & {"f16", "fp16"} else "f32"),
                    "threads": threads}
        return {"threads": threads} if threads else {}


@dataclass
class BenchTarget:
    """One thing to time: `artifact` is an nn.Module (torch) or a file (other backends)."""

    label: str
    spec: BackendSpec
    artifact: Any
    scale: int
    model_name: str = ""
    stage: str = "original"
    reference_model: nn.Module | None = None
    min_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    precision_hint: str | None = None

    @property
    def precision(self) -> str:
        """The artifact's own precision (from its sidecar, e.g. int8) wins over the backend flags."""
        return self.precision_hint or self.spec.precision


def export_for_benchmark(model: nn.Module, work_dir: Path, fp16: bool = False, force: bool = False) -> Path:
    """edgesr's fused ONNX export of `model` (reused if already in `work_dir`)."""
    from edgesr.export import ExportOptions, default_artifact_name, export_onnx

    name = default_artifact_name(getattr(model, "edgesr_name", "model"), getattr(model, "scale", 4), fp16=fp16)
    stage = getattr(model, "edgesr_stage", "original")
    path = Path(work_dir) / f"{name}{'' if stage == 'original' else '_' + stage}.onnx"
    if path.exists() and not force:
        log.info("reusing %s", path)
        return path
    from edgesr.utils.atomic import ensure_folder

    ensure_folder(work_dir)
    export_onnx(model, path, ExportOptions(fp16=fp16, force=True, parity_sizes=((64, 64),)))
    return path


def targets_for_model(model: nn.Module, specs: list[BackendSpec], work_dir: Path, stage: str = "original",
                      label: str | None = None) -> list[BenchTarget]:
    """A target per backend spec for one in-memory model (exporting ONNX where a backend needs it)."""
    name = label or f"{getattr(model, 'edgesr_name', type(model).__name__)}_x{getattr(model, 'scale', '?')}"
    min_size = getattr(model, "min_input_size", 1)
    targets: list[BenchTarget] = []
    for spec in specs:
        if spec.backend == "torch":
            artifact: Any = model
        elif spec.backend in ("onnxruntime", "openvino"):
            artifact = export_for_benchmark(model, work_dir, fp16=spec.backend == "onnxruntime" and spec.precision == "fp16")
        else:
            raise UserInputError(f"benchmarking a model name on {spec.backend} needs an artifact of that format; "
                                 f"export it first and pass the file (e.g. --engine / --artifact).")
        targets.append(BenchTarget(label=name, spec=spec, artifact=artifact, scale=model.scale, model_name=name,
                                   stage=stage, reference_model=model, min_size=min_size))
    return targets


def target_for_artifact(path: Path, backend: str | None = None, flags: tuple[str, ...] = ()) -> BenchTarget:
    """A target for an exported file; scale/min size come from its sidecar when there is one."""
    from edgesr.artifacts.sidecar import Sidecar
    from edgesr.runtimes import get_backend
    from edgesr.runtimes.registry import backend_for_path

    path = Path(path)
    if not path.exists():
        raise UserInputError(f"artifact not found: {path}")
    sidecar = Sidecar.for_artifact(path)
    chosen = sidecar.recommended_runtime() if sidecar is not None and not backend and not flags else None
    if chosen is not None and path.suffix.lower() in get_backend(chosen[0]).extensions:
        backend, flags = chosen[0], _flags_of(chosen[0], chosen[1])  # what edgesr optimize chose it with
    info = get_backend(backend) if backend else backend_for_path(path)
    spec = BackendSpec(info.name, flags)
    scale = sidecar.scale if sidecar is not None else 4
    precision = sidecar.export.precision if sidecar is not None else None
    return BenchTarget(label=path.stem, spec=spec, artifact=path, scale=int(scale), model_name=path.stem,
                       stage="artifact", min_size=sidecar.min_size if sidecar is not None else 1,
                       precision_hint=precision)


def _flags_of(backend: str, options: dict[str, Any]) -> tuple[str, ...]:
    """The backend-spec flags that give a runner these options (the inverse of `BackendSpec.runner_options`)."""
    flags: list[str] = []
    precision = str(options.get("precision", "")).lower()
    if backend == "openvino" and precision in ("bf16", "f16"):
        flags.append(precision)
    elif backend == "torch":
        flags += [p for p in ("bf16", "fp16") if p == precision]
        flags += [f for f in ("compile", "channels_last") if options.get(f)]
        if str(options.get("device", "cpu")).startswith("cuda"):
            flags.append("cuda")
    elif backend == "onnxruntime" and options.get("provider") in ("cuda", "tensorrt"):
        flags.append(str(options["provider"]))
    return tuple(flags)
