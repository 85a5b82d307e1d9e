"""SSIM against an independent implementation (scipy 2-D 'valid' convolution)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import convolve2d

from edgesr.errors import UserInputError
from edgesr.metrics import rgb_to_y, ssim


def _reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. SSIM, written directly from the definition in docs/reference.md."""
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    window = np.outer(g, g)
    window /= window.sum()

    def f(img):
        return convolve2d(img, window, mode="valid")

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = f(a), f(b)
    s_a, s_b, s_ab = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_a + s_b + c2))
    return float(m.mean())


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    noise = rng.integers(-25, 26, hr.shape)
    sr = np.clip(hr.astype(int) + noise, 0, 255).astype(np.uint8)
    return sr, hr


def test_identical_is_one(pair):
    _, hr = pair
    assert ssim(hr, hr.copy(), crop_border=4) == pytest.approx(1.0, abs=1e-12)


def test_matches_independent_implementation_y(pair):
    sr, hr = pair
    c = 4
    expected = _reference_ssim(rgb_to_y(sr[c:-c, c:-c]), rgb_to_y(hr[c:-c, c:-c]))
    assert 0.2 < expected < 0.99
    assert ssim(sr, hr, crop_border=c) == pytest.approx(expected, abs=1e-6)


def test_matches_independent_implementation_rgb(pair):
    sr, hr = pair
    expected = np.mean([_reference_ssim(sr[:, :, i].astype(float), hr[:, :, i].astype(float)) for i in range(3)])
    assert ssim(sr, hr, crop_border=0, test_y_channel=False) == pytest.approx(expected, abs=1e-6)


def test_crop_border_crops(pair):
    _, hr = pair
    damaged = hr.copy()
    damaged[:2] = 0
    damaged[:, :2] = 255
    assert ssim(damaged, hr, crop_border=2) == pytest.approx(1.0, abs=1e-12)
    assert ssim(damaged, hr, crop_border=1) < 0.9999  # only windows touching the kept damaged line


def test_errors(pair):
    sr, hr = pair
    with pytest.raises(UserInputError, match="shapes differ"):
        ssim(sr[:, :-1], hr, 4)
    with pytest.raises(UserInputError, match="too small"):
        ssim(sr, hr, 15)  # 40 - 30 = 10 rows < the 11x11 window
    with pytest.raises(UserInputError, match="uint8"):
        ssim(sr / 255.0, hr / 255.0, 4)
