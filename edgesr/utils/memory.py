"""How much memory this machine has, so that a request too big for it is refused before allocating.

A huge size (``bench --size 100000x100000``, a 20000x20000 image at x4) would otherwise fail deep inside
numpy with a MemoryError, or get the process killed by the kernel, after minutes of work.
"""
from __future__ import annotations

import os
from pathlib import Path

from edgesr.errors import UserInputError

_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def total_memory_bytes() -> int | None:
    """Physical memory, or the container's cgroup limit when lower; None when unknown."""
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    for limit in _CGROUP_LIMITS:
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            sizes.append(int(text))
    return min(sizes) if sizes else None


def available_memory_bytes() -> int | None:
    """Memory the OS can give new allocations without swapping (Linux MemAvailable, else free physical
    pages); None when unknown. Read fresh each call: it changes while a long job runs."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2 ** 30:.1f} GiB"


def check_fits_in_memory(nbytes: float, what: str, hint: str = "") -> None:
    """Raise UserInputError when `nbytes` (what `what` needs at least) exceeds this machine's memory."""
    total = total_memory_bytes()
    if total is not None and nbytes > total:
        raise UserInputError(f"{what} needs at least {_gib(nbytes)} of memory, more than this machine has "
                             f"({_gib(total)}); nothing was computed.{' ' + hint if hint else ''}")


def image_bytes(height: int, width: int, scale: int, channels: int = 3) -> int:
    """float32 bytes of an LR input and its SR output, the least any runtime holds at once."""
    return 4 * channels * height * width * (1 + scale * scale)
