"""Upscale image files: colour modes in, the same kind of image out, written atomically."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgesr.inference.predict import SRFunction, upscale_array

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N"}


@dataclass
class UpscaleReport:
    input_shape: tuple[int, int]
    output_shape: tuple[int, int]
    grayscale: bool
    alpha: bool
    tiles: int


def _is_grayscale_file(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            return img.mode in _GRAY_MODES
    except Exception:  # noqa: BLE001 - read_image reports unreadable files properly
        return False


def _resize_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Alpha is not what SR models learn: bicubic-resize it on its own."""
    h, w = alpha.shape
    return np.asarray(Image.fromarray(alpha, mode="L").resize((w * scale, h * scale), Image.BICUBIC))


def upscale_file(fn: SRFunction, src: str | Path, dst: str | Path, scale: int, *, force: bool = False,
                 tile: int = 0, halo: int = 16, min_size: int = 1, self_ensemble: bool = False,
                 progress: bool = False) -> UpscaleReport:
    """Read `src` (RGB, grayscale, RGBA, palette, 16-bit), upscale, write `dst`.

    Grayscale inputs are written back as grayscale, RGBA keeps a (bicubic-upscaled) alpha.
    The output is checked for overwrite before any compute and written atomically.
    """
    from edgesr.data.image_io import read_image_with_alpha, write_image
    from edgesr.utils.atomic import check_writable

    src, dst = Path(src), Path(dst)
    check_writable(dst, force)
    rgb, alpha = read_image_with_alpha(src)
    gray = _is_grayscale_file(src)
    sr = upscale_array(fn, rgb, scale, tile=tile, halo=halo, min_size=min_size,
                       self_ensemble=self_ensemble, progress=progress)
    if gray:
        # Equal input channels give nearly equal output channels; their mean is the luminance.
        sr = np.repeat(np.round(sr.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8), 3, axis=2)
    sr_alpha = _resize_alpha(alpha, scale) if alpha is not None else None
    _write(dst, sr, sr_alpha, gray, force)
    n_tiles = 1
    if tile:
        n_tiles = -(-rgb.shape[0] // tile) * -(-rgb.shape[1] // tile)
    return UpscaleReport(rgb.shape[:2], sr.shape[:2], gray, alpha is not None, n_tiles)


def _write(dst: Path, sr: np.ndarray, alpha: np.ndarray | None, gray: bool, force: bool) -> None:
    from edgesr.data.image_io import write_image

    if gray and alpha is None and dst.suffix.lower() in (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".webp"):
        from edgesr.data.image_io import WRITE_FORMATS
        from edgesr.utils.atomic import atomic_path

        with atomic_path(dst, force) as tmp:
            Image.fromarray(sr[:, :, 0], mode="L").save(tmp, format=WRITE_FORMATS[dst.suffix.lower()])
        return
    write_image(dst, sr, alpha=alpha, force=force)
