"""The SR function type every backend is wrapped as, and running one on a whole image.

numpy only: runtimes and exporters use `SRFunction` without importing torch.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

SRFunction = Callable[[np.ndarray], np.ndarray]
"""float32 NCHW RGB in 0..1 -> its upscaled array, same layout and range."""


def upscale_array(fn: SRFunction, lr: np.ndarray, scale: int, *, tile: int = 0, halo: int = 16,
                  align: int = 1, min_size: int = 1, self_ensemble: bool = False,
                  progress: bool = False) -> np.ndarray:
    """uint8 HxWx3 LR -> uint8 HxWx3 SR (clamped, rounded) through `fn`, optionally tiled/ensembled."""
    from edgesr.inference.ensemble import self_ensemble as ensemble
    from edgesr.inference.tiling import TilingConfig, tiled_forward

    from edgesr.utils.memory import check_fits_in_memory

    if lr.dtype != np.uint8 or lr.ndim != 3 or lr.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8, got {lr.dtype} {lr.shape}")
    h, w = lr.shape[:2]
    # the float input, the float output and its uint8 copy are held at once
    check_fits_in_memory(4 * 3 * h * w * (1 + 2 * scale * scale), f"upscaling a {w}x{h} image x{scale}",
                         "Use a smaller image.")
    x = (lr.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    run = ensemble(fn) if self_ensemble else fn
    y = tiled_forward(run, np.ascontiguousarray(x), scale, TilingConfig(tile, halo, align, min_size), progress)
    y = np.clip(y[0].transpose(1, 2, 0), 0.0, 1.0) * 255.0
    return np.round(y).astype(np.uint8)
