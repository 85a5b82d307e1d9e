"""The environment a benchmark ran in, without personal information (no hostname, user or paths).

`collect_env()` returns a JSON-serialisable dict: CPU model, cores/threads, ISA flags that
matter for inference (AVX2, AVX-512, AMX, VNNI, BF16/FP16, NEON/SVE), GPU name/capability/
memory/driver, and the versions of Python and the inference packages (read from package
metadata, so no backend is imported). `env_slug()` is a short name for result files, e.g.
``cpu-xeon-8480-2t`` or ``gpu-h100-80gb-hbm3``.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from edgesr.utils.nvidia import driver_version

X86_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")
ARM_FLAGS = ("asimd", "asimdhp", "asimddp", "sve", "sve2", "bf16", "i8mm")
PACKAGES = ("torch", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxsim", "onnxscript", "openvino",
            "tensorrt", "polygraphy", "ncnn", "executorch", "edgesr")


def _cpuinfo() -> list[dict[str, str]]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    blocks = []
    for block in text.strip().split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        if entry:
            blocks.append(entry)
    return blocks


def _cpu_model(blocks: list[dict[str, str]]) -> str:
    for entry in blocks:
        for key in ("model name", "Model", "Hardware", "cpu model"):
            if entry.get(key):
                return entry[key]
    if platform.system() == "Darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip() or platform.machine()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _physical_cores(blocks: list[dict[str, str]]) -> int | None:
    pairs = {(b.get("physical id"), b.get("core id")) for b in blocks if "core id" in b}
    if pairs:
        return len(pairs)
    cores = [b.get("cpu cores") for b in blocks if b.get("cpu cores")]
    return int(cores[0]) if cores else None


def cpu_info() -> dict[str, Any]:
    blocks = _cpuinfo()
    flags: set[str] = set()
    for entry in blocks[:1]:
        flags.update((entry.get("flags") or entry.get("Features") or "").split())
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count()
    return {
        "model": _cpu_model(blocks),
        "vendor": blocks[0].get("vendor_id") if blocks else None,
        "arch": platform.machine(),
        "physical_cores": _physical_cores(blocks),
        "logical_cpus": os.cpu_count(),
        "available_cpus": available,
        "isa": {flag: flag in flags for flag in (ARM_FLAGS if "asimd" in flags else X86_FLAGS)},
    }


def gpu_info() -> list[dict[str, Any]]:
    """CUDA GPUs seen by torch (empty without CUDA). Initialises CUDA when there is a GPU."""
    import torch

    if not torch.cuda.is_available():
        return []
    driver = driver_version()
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        gpus.append({"name": props.name, "capability": f"{props.major}.{props.minor}",
                     "memory_gb": round(props.total_memory / 1024 ** 3, 1),
                     "multiprocessors": props.multi_processor_count, "driver": driver})
    return gpus


def package_versions() -> dict[str, str | None]:
    """Installed versions from package metadata (nothing is imported); None when absent."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def collect_env(threads: int | None = None, *, gpu: bool = True) -> dict[str, Any]:
    """Everything about the machine and software a benchmark result depends on (JSON-serialisable).
    `threads`: the thread count the benchmark used (default: torch's current setting)."""
    import torch

    env: dict[str, Any] = {
        "os": {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
               "libc": "-".join(platform.libc_ver()).strip("-") or None},
        "cpu": cpu_info(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "versions": package_versions(),
        "torch_build": {"cuda": torch.version.cuda, "cudnn": None, "mkldnn": torch.backends.mkldnn.is_available(),
                        "debug": torch.version.debug},
        "gpus": gpu_info() if gpu else [],
    }
    if env["gpus"]:
        env["torch_build"]["cudnn"] = torch.backends.cudnn.version()
    return env


_DROP = re.compile(
    r"\(r\)|\(tm\)|®|™|\bintel\b|\bamd\b|\bnvidia\b|\bgenuine\b|\bprocessor\b|\bcpu\b|\bplatinum\b|\bgold\b|"
    r"\bsilver\b|\bbronze\b|\b\d+(?:th|st|nd|rd)\s+gen\b|\b\d+-core\b|@.*$|\bwith\b.*$|"
    r"\bgeforce\b|\btesla\b|\bcorporation\b")


def slugify_device(name: str) -> str:
    """'Intel(R) Xeon(R) Platinum 8480+' -> 'xeon-8480'; 'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3'."""
    text = _DROP.sub(" ", name.lower())
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return re.sub(r"-{2,}", "-", text) or "unknown"


def env_slug(env: dict[str, Any] | None = None, *, device: str = "cpu", threads: int | None = None) -> str:
    """A short file-name-safe name of the machine: ``cpu-<model>-<threads>t`` or ``gpu-<model>``."""
    if device.startswith("cuda") or device.startswith("gpu"):
        gpus = (env or {}).get("gpus") if env is not None else gpu_info()
        if not gpus:
            return "gpu-unknown"
        index = int(device.split(":")[1]) if ":" in device else 0
        return f"gpu-{slugify_device(gpus[min(index, len(gpus) - 1)]['name'])}"
    if env is None:
        env = {"cpu": {"model": _cpu_model(_cpuinfo())}}
    if threads is None:
        threads = env.get("threads")
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return f"cpu-{slugify_device(env['cpu']['model'])}-{threads}t"
