"""Tiled upscaling straight into the final integer image, with hard or feathered seams.

`tiled_forward` returns the whole float32 output; for a 4000x3000 input at x4 that alone is 2.3 GB,
and clipping/rounding it costs as much again (~38 bytes per output pixel were measured). Here each
tile's output is quantized (clip, scale, round) as soon as it exists and written into a preallocated
uint8/uint16 array, so the output costs 3 (RGB uint8) or 6 (uint16) bytes per pixel and the float work
follows the tile, not the image. Tile inputs are cut from the integer source in host memory and
converted one at a time.

Seams (`blend`, LR pixels):

* ``0`` (hard crop): each tile contributes exactly its core; numerically identical to quantizing
  `tiled_forward`'s output.
* ``> 0`` (feathered): neighbouring tiles overlap by `blend` pixels around each core boundary and are
  mixed with linear weights that sum to one (a partition of unity, separable in y and x), which hides
  the small jumps ESA models show at tile borders. Overlapping rows are accumulated in a float32 band
  one tile row high (plus the overlap), so the extra memory is ``band_rows x width x channels x 4`` bytes.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from edgesr.errors import UserInputError
from edgesr.inference.tiling import Tile, TilingConfig, mirror_pad, plan_tiles, run_padded

#: Called with each tile before it runs (two-pass attention uses it to know the window).
TileHook = Callable[[Tile], None]


def max_value(dtype: np.dtype) -> float:
    """Full-scale value of an integer image dtype (255 for uint8, 65535 for uint16)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.uint16):
        raise UserInputError(f"images must be uint8 or uint16, got {dtype}.")
    return float(np.iinfo(dtype).max)


def quantize(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float 0..1 -> integer image of `dtype`: clip, scale, round half to even (the evaluation protocol)."""
    top = max_value(dtype)
    return np.round(np.clip(y, 0.0, 1.0) * top).astype(dtype)


def _ramp(length: int, lead: int, trail: int) -> np.ndarray:
    """Weights along one axis of a tile's contribution of `length` output pixels: a linear rise over the
    first `lead` pixels, 1 inside, a linear fall over the last `trail` (pixel centres, so a rise and the
    neighbour's fall over the same pixels sum to exactly one)."""
    w = np.ones(length, dtype=np.float32)
    if lead:
        w[:lead] = (np.arange(lead, dtype=np.float32) + 0.5) / lead
    if trail:
        w[length - trail:] = 1.0 - (np.arange(trail, dtype=np.float32) + 0.5) / trail
    return w


def _validate_blend(config: TilingConfig, blend: int, tiles: list[Tile]) -> None:
    if blend < 0:
        raise UserInputError(f"blend must be >= 0, got {blend}.")
    if not blend:
        return
    if config.border != "clip":
        raise UserInputError("blended seams need border='clip' tiling.")
    if blend > 2 * config.halo:
        raise UserInputError(f"a blend of {blend} px needs a halo of at least {math.ceil(blend / 2)} px "
                             f"(each tile must compute half the overlap beyond its core); got halo {config.halo}.")
    smallest = min(min(t.y1 - t.y0, t.x1 - t.x0) for t in tiles)
    if len(tiles) > 1 and blend > smallest:
        raise UserInputError(f"a blend of {blend} px is wider than the smallest tile core ({smallest} px); "
                             "use a smaller --blend or larger tiles.")


def upscale_tiled(fn: Callable[[np.ndarray], np.ndarray], lr: np.ndarray, scale: int, config: TilingConfig, *,
                  blend: int = 0, gray_out: bool = False, progress: bool = False,
                  on_tile: TileHook | None = None) -> np.ndarray:
    """Upscale integer images `lr` (HxWxC or NxHxWxC, uint8 or uint16, values 0..max) through `fn`
    (float32 NCHW 0..1 -> NCHW 0..1), tile by tile, into an output of the same dtype and layout.

    `gray_out` averages the (rounded) output channels into one, for grayscale inputs run as RGB.
    """
    config.validate()
    single = lr.ndim == 3
    if single:
        lr = lr[None]
    if lr.ndim != 4:
        raise UserInputError(f"expected an HxWxC or NxHxWxC image array, got shape {lr.shape}.")
    dtype, top = lr.dtype, max_value(lr.dtype)
    n, h, w, c = lr.shape
    tiles = plan_tiles(h, w, config)
    _validate_blend(config, blend, tiles)
    src = lr.transpose(0, 3, 1, 2)  # NCHW view, no copy
    offset = 0
    if config.border == "mirror" and config.tile:
        src, offset = mirror_pad(src, config.halo), config.halo
    out = np.empty((n, h * scale, w * scale, 1 if gray_out else c), dtype=dtype)

    def finish(y: np.ndarray) -> np.ndarray:  # NCHW float -> NHWC integer (optionally one grey channel)
        q = quantize(y, dtype).transpose(0, 2, 3, 1)
        if gray_out:
            q = np.round(q.astype(np.float32).mean(axis=3, keepdims=True)).astype(dtype)
        return q

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tiles), desc="tiles", unit="tile", leave=False)
    radius = blend * scale // 2  # output pixels of feathering on each side of an inner core boundary
    band: np.ndarray | None = None
    band_start = 0  # output row where `band` begins
    try:  # the bar is cleared on failure too, so an Error: line starts its own line
        for t in tiles:
            if on_tile is not None:
                on_tile(t)
            window = src[:, :, t.iy0:t.iy1, t.ix0:t.ix1].astype(np.float32) / top
            y = run_padded(fn, window, scale, config.align, config.min_size)
            # where the tile's core starts inside its output
            oy, ox = (t.y0 + offset - t.iy0) * scale, (t.x0 + offset - t.ix0) * scale
            if not radius or len(tiles) == 1:
                out[:, t.y0 * scale: t.y1 * scale, t.x0 * scale: t.x1 * scale] = \
                    finish(y[:, :, oy: oy + (t.y1 - t.y0) * scale, ox: ox + (t.x1 - t.x0) * scale])
            else:
                top_r = radius if t.y0 > 0 else 0
                bot_r = radius if t.y1 < h else 0
                left_r = radius if t.x0 > 0 else 0
                right_r = radius if t.x1 < w else 0
                ya, yb = t.y0 * scale - top_r, t.y1 * scale + bot_r
                xa, xb = t.x0 * scale - left_r, t.x1 * scale + right_r
                part = y[:, :, oy - top_r: oy - top_r + (yb - ya), ox - left_r: ox - left_r + (xb - xa)]
                weights = _ramp(yb - ya, 2 * top_r, 2 * bot_r)[:, None] * _ramp(xb - xa, 2 * left_r, 2 * right_r)[None]
                if band is None:
                    rows = max(tt.y1 - tt.y0 for tt in tiles) * scale + 2 * radius
                    band = np.zeros((n, c, rows, w * scale), dtype=np.float32)
                band[:, :, ya - band_start: yb - band_start, xa:xb] += part * weights
                if t.x1 == w:  # last tile of its row: rows above the next row's feathering are final
                    done = yb if t.y1 == h else t.y1 * scale - radius
                    out[:, band_start:done] = finish(band[:, :, : done - band_start])
                    carry = yb - done
                    band[:, :, :carry] = band[:, :, done - band_start: yb - band_start]
                    band[:, :, carry:] = 0.0
                    band_start = done
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out[0] if single else out
