"""16-bit PNG files, which PIL reads as 8-bit RGB (it keeps the high byte) and cannot write in colour.

pypng (pure Python) reads and writes every PNG colour type at 16 bits; rows are streamed, so writing
never holds a second copy of the image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgesr.errors import ImageError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bit_depth(path: str | Path) -> int | None:
    """Bits per sample from a PNG's IHDR chunk (None when `path` is not a PNG)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24]


def read_png16(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(HxWx3 uint16 RGB, HxW uint16 alpha or None, grayscale?) of a 16-bit PNG, values 0..65535."""
    import png

    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        arr = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except (png.Error, OSError, ValueError) as exc:
        raise ImageError(f"cannot read image {path}: corrupt or truncated PNG ({exc}).") from None
    if info.get("bitdepth") != 16:  # asDirect rescales sBIT; other depths are read by PIL
        arr = (arr.astype(np.uint32) * 65535 // ((1 << info["bitdepth"]) - 1)).astype(np.uint16)
    planes = info["planes"]
    arr = arr.reshape(height, width, planes)
    gray = bool(info["greyscale"])
    alpha = arr[:, :, -1].copy() if info["alpha"] else None
    colour = arr[:, :, :1] if gray else arr[:, :, :3]
    rgb = np.repeat(colour, 3, axis=2) if gray else np.ascontiguousarray(colour)
    return rgb, alpha, gray


def write_png16(path: str | Path, image: np.ndarray) -> None:
    """Write HxWxC uint16 (C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) as a 16-bit PNG, row by row."""
    import png

    if image.dtype != np.uint16 or image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected HxWxC uint16 with C in 1..4, got {image.dtype} {image.shape}")
    h, w, c = image.shape
    writer = png.Writer(width=w, height=h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=16, compression=6)
    flat = image.reshape(h, w * c)
    with open(path, "wb") as f:
        writer.write(f, (row for row in flat))
