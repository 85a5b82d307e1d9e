"""Upscale image files: colour modes in, the same kind of image out, written atomically.

What a file brings is kept: grayscale stays grayscale, grey+alpha stays grey+alpha, RGBA keeps a
(bicubic-upscaled) alpha, EXIF orientation is applied (opt-out), and 16-bit PNGs may stay 16-bit.
Everything that can be refused is refused before any compute: the output path (extension, existing
file, DST equal to SRC) and the image size (from the header, before decoding).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np
from PIL import Image

from edgesr.errors import UserInputError
from edgesr.inference.predict import SRFunction
from edgesr.inference.stitch import TileHook

#: Per-image set-up of a tile hook: given the LR image (HxWx3 uint8/uint16), a context within which the
#: image is upscaled, yielding the hook each tile is announced to (two-pass ESA tiling is one).
ImageHook = Callable[[np.ndarray], ContextManager[TileHook]]

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"}


@dataclass
class UpscaleOptions:
    """How `upscale_file` runs: tiling, seams, ensemble, and what it keeps from the input file."""

    tile: int = 0
    halo: int = 16
    min_size: int = 1
    blend: int = 0
    self_ensemble: bool = False
    keep_16bit: bool = False  #: 16-bit PNG in -> 16-bit PNG out (else 8-bit)
    exif_orientation: bool = True  #: rotate/flip as the EXIF Orientation tag says
    max_megapixels: float | None = None  #: None: from the machine's free memory
    progress: bool = False
    on_image: ImageHook | None = field(default=None, repr=False)  #: e.g. two-pass attention


@dataclass
class UpscaleReport:
    input_shape: tuple[int, int]
    output_shape: tuple[int, int]
    grayscale: bool
    alpha: bool
    tiles: int
    bit_depth: int = 8


def check_output(src: Path, dst: Path, force: bool, keep_16bit: bool = False) -> None:
    """Refuse a bad output before any compute: unknown extension, DST equal to SRC (even with --force:
    the input would be destroyed), an existing file without --force."""
    from edgesr.data.image_io import WRITE_FORMATS
    from edgesr.utils.atomic import check_writable

    ext = dst.suffix.lower()
    if ext not in WRITE_FORMATS:
        raise UserInputError(f"cannot write {dst}: unknown image extension {dst.suffix!r}; use one of "
                             f"{', '.join(sorted(WRITE_FORMATS))}.")
    if _same_file(src, dst):
        raise UserInputError(f"the output {dst} is the input file itself; write to another path "
                             "(--force never overwrites the input).")
    check_writable(dst, force)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.exists() and a.samefile(b))
    except OSError:
        return False


_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 1)[::-1],
           8: lambda a: np.rot90(a, 1)}


def _exif_orientation(path: Path) -> int:
    try:
        with Image.open(path) as img:
            return int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block is no reason to refuse the pixels
        return 1


def read_source(path: Path, options: UpscaleOptions, scale: int) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(HxWx3 RGB uint8/uint16, alpha or None, grayscale?) of `path`, refused by size from its header first."""
    from edgesr.data.image_io import read_header, read_image_with_alpha
    from edgesr.data.png16 import png_bit_depth, read_png16
    from edgesr.inference.guard import check_image_size

    width, height, mode = read_header(path)
    check_image_size(path, width, height, scale, options.max_megapixels)
    if options.keep_16bit and png_bit_depth(path) == 16:
        rgb, alpha, gray = read_png16(path)
        if options.exif_orientation:
            turn = _ORIENT.get(_exif_orientation(path))
            if turn is not None:
                rgb = np.ascontiguousarray(turn(rgb))
                alpha = None if alpha is None else np.ascontiguousarray(turn(alpha))
        return rgb, alpha, gray
    rgb, alpha = read_image_with_alpha(path, exif_orientation=options.exif_orientation)
    return rgb, alpha, mode in _GRAY_MODES


def _resize_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Alpha is not what SR models learn: bicubic-resize it on its own (float for 16-bit alpha)."""
    h, w = alpha.shape
    if alpha.dtype == np.uint8:
        return np.asarray(Image.fromarray(alpha, mode="L").resize((w * scale, h * scale), Image.BICUBIC))
    big = Image.fromarray(alpha.astype(np.float32), mode="F").resize((w * scale, h * scale), Image.BICUBIC)
    return np.clip(np.round(np.asarray(big)), 0, 65535).astype(np.uint16)


def upscale_file(fn: SRFunction, src: str | Path, dst: str | Path, scale: int, *, force: bool = False,
                 options: UpscaleOptions | None = None, **legacy: object) -> UpscaleReport:
    """Read `src` (RGB, grayscale, grey+alpha, RGBA, palette, 16-bit), upscale, write `dst` atomically.

    `options` (or its fields as keyword arguments) say how; see `UpscaleOptions`.
    """
    from edgesr.inference.stitch import upscale_tiled
    from edgesr.inference.ensemble import self_ensemble
    from edgesr.inference.tiling import TilingConfig, plan_tiles

    options = options or UpscaleOptions(**legacy)  # type: ignore[arg-type]
    src, dst = Path(src), Path(dst)
    check_output(src, dst, force, options.keep_16bit)
    rgb, alpha, gray = read_source(src, options, scale)
    deep = rgb.dtype == np.uint16
    if deep and dst.suffix.lower() != ".png":
        raise UserInputError(f"16-bit output needs a .png file, got {dst.name}; drop --keep-16bit for 8-bit.")
    run = self_ensemble(fn) if options.self_ensemble else fn
    config = TilingConfig(options.tile, options.halo, 1, options.min_size)
    with (options.on_image(rgb) if options.on_image is not None else contextlib.nullcontext()) as on_tile:
        sr = upscale_tiled(run, rgb, scale, config, blend=options.blend, gray_out=gray, progress=options.progress,
                           on_tile=on_tile)
    del rgb
    sr_alpha = _resize_alpha(alpha, scale) if alpha is not None else None
    _write(dst, sr, sr_alpha, force)
    lr_shape = (sr.shape[0] // scale, sr.shape[1] // scale)
    return UpscaleReport(lr_shape, sr.shape[:2], gray, alpha is not None, len(plan_tiles(*lr_shape, config)),
                         16 if deep else 8)


def _write(dst: Path, sr: np.ndarray, alpha: np.ndarray | None, force: bool) -> None:
    """Write HxWx1 (grey) or HxWx3 `sr` plus optional alpha in the file's format, atomically."""
    from edgesr.data.image_io import WRITE_FORMATS, write_image
    from edgesr.utils.atomic import atomic_path

    fmt = WRITE_FORMATS[dst.suffix.lower()]
    if sr.dtype == np.uint16:
        from edgesr.data.png16 import write_png16

        image = sr if alpha is None else np.dstack([sr, alpha])
        with atomic_path(dst, force) as tmp:
            write_png16(tmp, image)
        return
    if sr.shape[2] == 3:
        write_image(dst, sr, alpha=alpha, force=force)
        return
    grey = sr[:, :, 0]
    if alpha is not None and fmt not in ("JPEG", "BMP"):
        img = Image.fromarray(np.dstack([grey, alpha]), mode="LA")
    else:
        img = Image.fromarray(grey, mode="L")
    del sr, grey
    with atomic_path(dst, force) as tmp:
        img.save(tmp, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
