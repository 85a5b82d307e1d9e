"""What TensorRT needs from the machine, checked before any work: the package, a GPU, a matching engine.

`import_tensorrt()` imports the `tensorrt` package or raises MissingDependencyError naming the extra
(``pip install edgesr[tensorrt]``) and the NVIDIA GPU + driver it needs. `require_gpu()` finds the CUDA GPU
(through torch when it is a CUDA build, else ``nvidia-smi``) or fails the same way. `check_engine_compat()`
compares an engine's sidecar with the TensorRT and GPU at hand and names both sides on a mismatch.
`ort_tensorrt_provider_options()` builds the options dict of ONNX Runtime's TensorRT execution provider.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

from edgesr.errors import MissingDependencyError, UserInputError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install edgesr[tensorrt]"
NEEDS = ("an NVIDIA GPU with a CUDA driver (TensorRT builds and runs engines only there; on a CPU-only machine "
         "run the .onnx file with onnxruntime or openvino, and `edgesr trt-check` checks an ONNX for TensorRT "
         "without a GPU)")


def import_tensorrt(trt: ModuleType | None = None) -> ModuleType:
    """The `tensorrt` module (or `trt` when given: tests inject fakes), else MissingDependencyError."""
    if trt is not None:
        return trt
    try:
        import tensorrt  # noqa: F401 - the real package, imported only here and in the runner
    except ImportError as exc:  # also a stub wheel whose libraries did not install
        raise MissingDependencyError(
            f"TensorRT is not installed ({exc}). Install it with: {INSTALL_HINT}. It needs {NEEDS}.") from exc
    except OSError as exc:  # the Python package is there but libnvinfer cannot be loaded
        raise MissingDependencyError(
            f"the tensorrt package is installed but its libraries cannot be loaded ({exc}). Reinstall with: "
            f"{INSTALL_HINT}. It needs {NEEDS}.") from exc
    import tensorrt

    return tensorrt


def trt_version(trt: ModuleType) -> str:
    return str(getattr(trt, "__version__", "unknown"))


def trt_major(trt_or_version: ModuleType | str) -> int:
    text = trt_or_version if isinstance(trt_or_version, str) else trt_version(trt_or_version)
    m = re.match(r"(\d+)", text)
    return int(m.group(1)) if m else 0


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.9"
    index: int = 0
    memory_gb: float | None = None
    driver: str | None = None
    source: str = "torch"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "compute_capability": self.compute_capability, "index": self.index,
                "memory_gb": self.memory_gb, "driver": self.driver}


def _torch_gpu(index: int) -> GpuInfo | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        return None
    p = torch.cuda.get_device_properties(index)
    from edgesr.utils.nvidia import driver_version

    return GpuInfo(p.name, f"{p.major}.{p.minor}", index, round(p.total_memory / 1024 ** 3, 1), driver_version())


def _smi_gpu(index: int) -> GpuInfo | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name,compute_cap,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    if index >= len(out):
        return None
    parts = [p.strip() for p in out[index].split(",")]
    if len(parts) < 4:
        return None
    mem = re.match(r"([\d.]+)", parts[2])
    return GpuInfo(parts[0], parts[1], index, round(float(mem.group(1)) / 1024, 1) if mem else None, parts[3],
                   "nvidia-smi")


def find_gpu(index: int = 0) -> GpuInfo | None:
    return _torch_gpu(index) or _smi_gpu(index)


def require_gpu(index: int = 0, what: str = "TensorRT") -> GpuInfo:
    """The CUDA GPU `index`, or MissingDependencyError saying that an NVIDIA GPU + driver is needed."""
    gpu = find_gpu(index)
    if gpu is None:
        raise MissingDependencyError(
            f"{what} needs an NVIDIA GPU with a CUDA driver, and none was found here (GPU {index}: torch sees no "
            f"CUDA device and nvidia-smi reports none). Run on a machine with an NVIDIA GPU and driver and "
            f"{INSTALL_HINT}; on this machine run the .onnx file with onnxruntime or openvino, or check it with "
            "`edgesr trt-check`.")
    return gpu


def preflight(trt: ModuleType | None = None, gpu_index: int = 0) -> tuple[ModuleType, GpuInfo]:
    """Fail fast, before any export work: TensorRT importable and a GPU present."""
    module = import_tensorrt(trt)
    return module, require_gpu(gpu_index)


# ---- engine <-> machine compatibility ---------------------------------------------------------------
class EngineCompatibilityError(UserInputError):
    """The engine was built for another TensorRT version or GPU."""


def _cc_tuple(cc: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", str(cc))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def check_engine_compat(built: Mapping[str, Any], runtime_version: str, gpu: GpuInfo | None,
                        engine_name: str = "the engine") -> list[str]:
    """Compare the sidecar's ``tensorrt`` block (`built`) with this machine; raise EngineCompatibilityError
    naming both TensorRT versions / compute capabilities when the engine cannot run here. Returns warnings
    (e.g. a different GPU model with the same compute capability).

    Rules (TensorRT's): an engine runs only with the TensorRT version that built it (major.minor.patch; the
    build number may differ), unless built version-compatible; and only on GPUs of the same compute
    capability, unless built hardware-compatible (AMPERE_PLUS: any compute capability >= 8.0, or
    SAME_COMPUTE_CAPABILITY).
    """
    warnings: list[str] = []
    built_version = str(built.get("version") or "")
    options = built.get("builder_options") or {}
    if built_version and runtime_version:
        want, have = built_version.split(".")[:3], runtime_version.split(".")[:3]
        if want != have and not options.get("version_compatible"):
            raise EngineCompatibilityError(
                f"{engine_name} was built with TensorRT {built_version} but this is TensorRT {runtime_version}: "
                "serialized engines only load in the TensorRT version that built them. Rebuild it here "
                f"(edgesr export MODEL --format trt ...) or install tensorrt=={built_version}.")
    built_gpu = built.get("gpu") or {}
    built_cc = str(built_gpu.get("compute_capability") or "")
    if gpu is not None and built_cc:
        level = str(options.get("hardware_compatibility_level") or "NONE").upper()
        have_cc = gpu.compute_capability
        if level == "AMPERE_PLUS":
            if _cc_tuple(have_cc) < (8, 0):
                raise EngineCompatibilityError(
                    f"{engine_name} was built hardware-compatible for Ampere and newer (compute capability >= 8.0, "
                    f"built on {built_gpu.get('name')} {built_cc}) but this GPU, {gpu.name}, has compute capability "
                    f"{have_cc}. Rebuild it on this GPU.")
        elif _cc_tuple(have_cc) != _cc_tuple(built_cc):
            raise EngineCompatibilityError(
                f"{engine_name} was built for compute capability {built_cc} ({built_gpu.get('name')}) but this GPU, "
                f"{gpu.name}, has compute capability {have_cc}: TensorRT engines are tied to the GPU architecture. "
                "Rebuild it on this GPU, or build with --hardware-compat (Ampere and newer).")
        elif built_gpu.get("name") and built_gpu.get("name") != gpu.name:
            warnings.append(f"{engine_name} was built on {built_gpu.get('name')} and runs on {gpu.name} (same compute "
                            f"capability {have_cc}): it works, but its tactics were timed on the other GPU.")
    return warnings


# ---- ONNX Runtime's TensorRT execution provider -----------------------------------------------------
def ort_tensorrt_provider_options(*, fp16: bool = False, engine_cache: str | Path | None = None,
                                  timing_cache: str | Path | None = None, workspace_mb: int | None = None,
                                  opt_level: int | None = None, device_id: int = 0,
                                  profile: Any = None, input_name: str = "input") -> dict[str, str]:
    """Options for ``TensorrtExecutionProvider`` (pass as the onnxruntime runner's `provider_options`).

    fp16: ``trt_fp16_enable`` (the provider's own weak-typing switch: TensorRT 10.x only); engine_cache:
    folder for ``trt_engine_cache_path`` (engines reused across sessions); timing_cache: folder for
    ``trt_timing_cache_path``; profile: a `ProfileShapes` for ``trt_profile_min/opt/max_shapes``.
    """
    opts: dict[str, str] = {"device_id": str(int(device_id))}
    if fp16:
        opts["trt_fp16_enable"] = "True"
    if engine_cache is not None:
        opts["trt_engine_cache_enable"] = "True"
        opts["trt_engine_cache_path"] = str(engine_cache)
    if timing_cache is not None:
        opts["trt_timing_cache_enable"] = "True"
        opts["trt_timing_cache_path"] = str(timing_cache)
    if workspace_mb is not None:
        if workspace_mb < 1:
            raise UserInputError(f"workspace must be >= 1 MB, got {workspace_mb}.")
        opts["trt_max_workspace_size"] = str(int(workspace_mb) << 20)
    if opt_level is not None:
        if not 0 <= opt_level <= 5:
            raise UserInputError(f"builder optimization level must be 0..5, got {opt_level}.")
        opts["trt_builder_optimization_level"] = str(int(opt_level))
    if profile is not None:
        for key in ("min", "opt", "max"):
            dims = getattr(profile, key)
            opts[f"trt_profile_{key}_shapes"] = f"{input_name}:" + "x".join(str(int(d)) for d in dims)
    return opts
