"""Geometric self-ensemble (EDSR's "+"): average the model over the 8 flips/rotations."""
from __future__ import annotations

import numpy as np

from edgesr.inference.predict import SRFunction


def _transform(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    if flip:
        x = x[..., ::-1]
    return np.rot90(x, k, axes=(-2, -1))


def _inverse(y: np.ndarray, k: int, flip: bool) -> np.ndarray:
    y = np.rot90(y, -k, axes=(-2, -1))
    if flip:
        y = y[..., ::-1]
    return y


def self_ensemble(fn: SRFunction) -> SRFunction:
    """Wrap `fn` so it returns the mean of its 8 geometric variants (8x the compute)."""

    def ensembled(x: np.ndarray) -> np.ndarray:
        acc: np.ndarray | None = None
        for flip in (False, True):
            for k in range(4):
                y = _inverse(fn(np.ascontiguousarray(_transform(x, k, flip))), k, flip)
                acc = y.astype(np.float64) if acc is None else acc + y
        assert acc is not None
        return (acc / 8.0).astype(np.float32)

    if hasattr(fn, "locate_nonfinite"):  # NaN/Inf diagnosis runs the plain model
        ensembled.locate_nonfinite = fn.locate_nonfinite  # type: ignore[attr-defined]
    return ensembled
