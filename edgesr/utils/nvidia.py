"""The NVIDIA driver on this machine, read without importing torch or TensorRT.

Shared by the benchmark's environment record and the TensorRT engine compatibility check, which
both name the driver an engine or a result comes from.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["driver_version"]


def driver_version() -> str | None:
    """The NVIDIA kernel driver version (e.g. "550.54.15"), or None without one."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", text)
        if match:
            return match.group(1)
    except OSError:
        pass
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10).stdout.strip().splitlines()
            return out[0].strip() if out else None
        except (OSError, subprocess.SubprocessError):
            return None
    return None
