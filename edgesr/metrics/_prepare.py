"""Shared input handling for the image-quality metrics: validate, shave borders, pick channels."""
from __future__ import annotations

import numpy as np

from edgesr.errors import UserInputError
from edgesr.metrics.color import rgb_to_y


def _check(img: object, name: str) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        kind = img.dtype if isinstance(img, np.ndarray) else type(img).__name__
        raise UserInputError(
            f"{name} must be a uint8 HxWx3 array (0..255), got {kind}; round model output with "
            "edgesr.data.to_uint8 first, as the evaluation protocol does."
        )
    if img.ndim != 3 or img.shape[2] != 3:
        raise UserInputError(f"{name} must have shape HxWx3, got {img.shape}.")
    return img


def prepare_pair(sr: np.ndarray, hr: np.ndarray, crop_border: int, test_y_channel: bool,
                 min_size: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """Float64 (sr, hr) planes to compare: the Y plane, or each RGB plane, after shaving borders."""
    sr, hr = _check(sr, "sr"), _check(hr, "hr")
    if sr.shape != hr.shape:
        raise UserInputError(
            f"sr and hr shapes differ: {sr.shape} vs {hr.shape} (was the HR modcropped to the scale?)."
        )
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise UserInputError(f"crop_border must be a non-negative integer, got {crop_border!r}.")
    h, w = sr.shape[0] - 2 * crop_border, sr.shape[1] - 2 * crop_border
    if h < min_size or w < min_size:
        raise UserInputError(
            f"image of size {sr.shape[1]}x{sr.shape[0]} is too small for crop_border={crop_border} "
            f"(needs at least {min_size}x{min_size} pixels left)."
        )
    c = int(crop_border)
    sr, hr = sr[c:c + h, c:c + w], hr[c:c + h, c:c + w]
    if test_y_channel:
        return [(rgb_to_y(sr), rgb_to_y(hr))]
    sr64, hr64 = sr.astype(np.float64), hr.astype(np.float64)
    return [(sr64[:, :, i], hr64[:, :, i]) for i in range(3)]
