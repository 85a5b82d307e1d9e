"""Tiled inference shared by every runtime.

The image is cut into cores of `tile` LR pixels; each core is run with `halo` extra pixels of
real context on every side (clipped at the image border, where the model sees exactly what
it sees untiled), and only the core of each output is kept. Tiles come from host memory one at
a time, so peak device memory follows the tile size, not the image size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from edgesr.errors import UserInputError


@dataclass(frozen=True)
class TilingConfig:
    """tile: core size in LR pixels (0 = no tiling); halo: context pixels on each side;
    align: tile inputs are padded (mirror) to a multiple of this; min_size: smallest input the
    model accepts (mirror-padded up to it)."""

    tile: int = 0
    halo: int = 16
    align: int = 1
    min_size: int = 1

    def validate(self) -> None:
        if self.tile < 0 or self.halo < 0 or self.align < 1 or self.min_size < 1:
            raise UserInputError(f"invalid tiling {self}: tile/halo must be >= 0, align/min_size >= 1.")
        if self.tile and self.tile < self.halo:
            raise UserInputError(
                f"tile size {self.tile} is smaller than the halo {self.halo}: each tile would be mostly "
                "context. Use a tile of at least the halo (typically 4x it) or a smaller halo."
            )


def _spans(length: int, tile: int) -> Iterator[tuple[int, int]]:
    n = max(1, math.ceil(length / tile))
    # Equal-sized cores avoid a sliver at the end that would run at a poor efficiency.
    step = math.ceil(length / n)
    for i in range(n):
        start = i * step
        yield start, min(length, start + step)


def pad_to(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Mirror-pad NCHW `x` at the bottom/right to at least height x width."""
    ph, pw = max(0, height - x.shape[-2]), max(0, width - x.shape[-1])
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "symmetric"
    while ph > 0 or pw > 0:  # reflect needs pad < size; repeat for tiny inputs
        sh, sw = min(ph, x.shape[-2] - (mode == "reflect")), min(pw, x.shape[-1] - (mode == "reflect"))
        x = np.pad(x, ((0, 0), (0, 0), (0, sh), (0, sw)), mode=mode)
        ph, pw = ph - sh, pw - sw
    return x


def run_padded(fn, x: np.ndarray, scale: int, align: int = 1, min_size: int = 1) -> np.ndarray:
    """Run `fn` on `x` mirror-padded to the model's alignment/minimum size, crop the result back."""
    h, w = x.shape[-2:]
    th = max(min_size, math.ceil(h / align) * align)
    tw = max(min_size, math.ceil(w / align) * align)
    y = fn(pad_to(x, th, tw))
    if y.shape[-2] != th * scale or y.shape[-1] != tw * scale:
        raise RuntimeError(f"model returned {tuple(y.shape)} for input {(th, tw)} at scale {scale}")
    return y[..., : h * scale, : w * scale]


def tiled_forward(fn, x: np.ndarray, scale: int, config: TilingConfig, progress: bool = False) -> np.ndarray:
    """Upscale NCHW float32 `x` with `fn`, tile by tile; equals `fn(x)` up to the halo's effect."""
    config.validate()
    n, c, h, w = x.shape
    if not config.tile or (h <= config.tile and w <= config.tile):
        return run_padded(fn, x, scale, config.align, config.min_size)
    out: np.ndarray | None = None
    spans = [(ys, xs) for ys in _spans(h, config.tile) for xs in _spans(w, config.tile)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(spans), desc="tiles", unit="tile", leave=False)
    for (y0, y1), (x0, x1) in spans:
        iy0, iy1 = max(0, y0 - config.halo), min(h, y1 + config.halo)
        ix0, ix1 = max(0, x0 - config.halo), min(w, x1 + config.halo)
        y = run_padded(fn, np.ascontiguousarray(x[..., iy0:iy1, ix0:ix1]), scale, config.align, config.min_size)
        if out is None:
            out = np.empty((n, y.shape[1], h * scale, w * scale), dtype=y.dtype)
        oy, ox = (y0 - iy0) * scale, (x0 - ix0) * scale
        out[..., y0 * scale: y1 * scale, x0 * scale: x1 * scale] = \
            y[..., oy: oy + (y1 - y0) * scale, ox: ox + (x1 - x0) * scale]
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    assert out is not None
    return out
