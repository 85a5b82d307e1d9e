"""Structural similarity exactly as the SR benchmark protocol computes it (Wang et al. 2004).

Gaussian window 11x11, sigma 1.5, 'valid' filtering, C1 = (0.01*255)^2, C2 = (0.03*255)^2,
mean of the SSIM map; float64 throughout.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgesr.metrics._prepare import prepare_pair

_WINDOW = 11
_SIGMA = 1.5
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2


def _gaussian_1d(size: int = _WINDOW, sigma: float = _SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


_G = _gaussian_1d()


def _filter_valid(img: np.ndarray) -> np.ndarray:
    """2-D Gaussian filter, 'valid' region only. The window is separable (outer(g, g)), so two
    1-D passes give the same result as one 11x11 pass at a fraction of the cost."""
    rows = sliding_window_view(img, _WINDOW, axis=0) @ _G  # (H-10) x W
    return sliding_window_view(rows, _WINDOW, axis=1) @ _G  # (H-10) x (W-10)


def _ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    mu_a2, mu_b2, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = _filter_valid(a * a) - mu_a2
    var_b = _filter_valid(b * b) - mu_b2
    cov = _filter_valid(a * b) - mu_ab
    ssim_map = ((2 * mu_ab + _C1) * (2 * cov + _C2)) / ((mu_a2 + mu_b2 + _C1) * (var_a + var_b + _C2))
    return float(ssim_map.mean())


def ssim(sr: np.ndarray, hr: np.ndarray, crop_border: int, test_y_channel: bool = True) -> float:
    """SSIM between two uint8 HxWx3 RGB images (data range 255); 1.0 when identical.

    `crop_border` pixels are shaved from every side first. With `test_y_channel` it is computed on
    float Y (BT.601, 16..235); otherwise per RGB channel and averaged.
    """
    planes = prepare_pair(sr, hr, crop_border, test_y_channel, min_size=_WINDOW)
    return float(np.mean([_ssim_plane(a, b) for a, b in planes]))
