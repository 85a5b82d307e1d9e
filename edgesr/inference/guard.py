"""Refuse inputs whose upscaled output would not fit in memory, before any large allocation.

A 236 KB PNG can declare 81 megapixels (below PIL's decompression-bomb limit of ~89 MP); at x4 its
output has 1.3 gigapixels. The guard reads the size from the file header and compares the memory the
upscale would need with what the machine has free.
"""
from __future__ import annotations

from pathlib import Path

from edgesr.errors import UserInputError
from edgesr.utils.memory import available_memory_bytes

#: Peak bytes per output pixel of `upscale_file`: the output array (3 B RGB uint8, 6 B uint16) plus the
#: encoder's copy (PIL keeps RGB as 4 B/pixel) plus an alpha plane and its merge, rounded up.
OUTPUT_BYTES_PER_PIXEL = 12
#: Per input pixel: the decoded file (PIL, 4 B) and its RGB array (3 B; uint16: 6 B), rounded up.
INPUT_BYTES_PER_PIXEL = 10
#: Share of the machine's available memory the default limit lets one upscale use.
DEFAULT_MEMORY_SHARE = 0.5
_GIB = 1024.0 ** 3


def bytes_needed(width: int, height: int, scale: int) -> int:
    """Estimated peak memory (bytes) to upscale a `width` x `height` image by `scale` (tiled)."""
    pixels = width * height
    return pixels * INPUT_BYTES_PER_PIXEL + pixels * scale * scale * OUTPUT_BYTES_PER_PIXEL


def default_max_megapixels(scale: int, available: int | None = None) -> float | None:
    """Largest input (megapixels) whose upscale fits `DEFAULT_MEMORY_SHARE` of the available memory;
    None when the available memory is unknown (no limit)."""
    available = available_memory_bytes() if available is None else available
    if not available:
        return None
    per_pixel = INPUT_BYTES_PER_PIXEL + scale * scale * OUTPUT_BYTES_PER_PIXEL
    return available * DEFAULT_MEMORY_SHARE / per_pixel / 1e6


def check_image_size(path: str | Path, width: int, height: int, scale: int,
                     max_megapixels: float | None = None) -> None:
    """Raise UserInputError when `width` x `height` exceeds `max_megapixels` (default: from free memory)."""
    if max_megapixels is not None and max_megapixels <= 0:
        raise UserInputError(f"--max-megapixels must be > 0, got {max_megapixels:g}.")
    source = "--max-megapixels"
    if max_megapixels is None:
        max_megapixels = default_max_megapixels(scale)
        if max_megapixels is None:
            return
        source = (f"the default limit (half of the {(available_memory_bytes() or 0) / _GIB:.1f} GiB of free "
                  "memory)")
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise UserInputError(
            f"{path} is {width}x{height} ({megapixels:.1f} MP): upscaling it x{scale} needs about "
            f"{bytes_needed(width, height, scale) / _GIB:.1f} GiB, more than {source} allows "
            f"({max_megapixels:.1f} MP). Pass a larger --max-megapixels if the machine has the memory, or "
            "split the image first.")
