"""The SR function type every backend is wrapped as, and running one on a whole image.

numpy only: runtimes and exporters use `SRFunction` without importing torch.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

SRFunction = Callable[[np.ndarray], np.ndarray]
"""float32 NCHW RGB in 0..1 -> its upscaled array, same layout and range."""


def upscale_array(fn: SRFunction, lr: np.ndarray, scale: int, *, tile: int = 0, halo: int = 16,
                  align: int = 1, min_size: int = 1, self_ensemble: bool = False, blend: int = 0,
                  progress: bool = False) -> np.ndarray:
    """Integer HxWx3 (or NxHxWx3) LR -> SR of the same dtype (uint8 or uint16; clamped, rounded) through `fn`,
    optionally tiled (`blend` > 0 feathers the seams) and self-ensembled.

    The output is assembled tile by tile in its final dtype (see `edgesr.inference.stitch`).
    """
    from edgesr.inference.ensemble import self_ensemble as ensemble
    from edgesr.inference.stitch import upscale_tiled
    from edgesr.inference.tiling import TilingConfig

    if lr.dtype not in (np.uint8, np.uint16) or lr.ndim not in (3, 4) or lr.shape[-1] != 3:
        raise ValueError(f"expected HxWx3 (or NxHxWx3) uint8/uint16, got {lr.dtype} {lr.shape}")
    run = ensemble(fn) if self_ensemble else fn
    return upscale_tiled(run, lr, scale, TilingConfig(tile, halo, align, min_size), blend=blend, progress=progress)
