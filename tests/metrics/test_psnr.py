"""PSNR on uint8 images (benchmark protocol) and between float tensors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgesr.errors import UserInputError
from edgesr.metrics import psnr, psnr_between


@pytest.fixture
def img() -> np.ndarray:
    return np.random.default_rng(0).integers(10, 200, (32, 40, 3), dtype=np.uint8)


def test_identical_is_inf(img):
    assert psnr(img, img.copy(), crop_border=4) == math.inf
    assert psnr(img, img.copy(), crop_border=0, test_y_channel=False) == math.inf


def test_constant_offset_analytic(img):
    shifted = img + np.uint8(1)  # no overflow: values are < 200
    # every RGB value +1 -> Y moves by (65.481 + 128.553 + 24.966) / 255 = 219 / 255
    dy = (65.481 + 128.553 + 24.966) / 255
    assert psnr(shifted, img, crop_border=4) == pytest.approx(10 * math.log10(255**2 / dy**2), abs=1e-9)
    assert psnr(shifted, img, 4) == pytest.approx(49.4527, abs=1e-4)
    # on RGB values the MSE is exactly 1
    assert psnr(shifted, img, 4, test_y_channel=False) == pytest.approx(20 * math.log10(255), abs=1e-12)


def test_crop_border_crops(img):
    other = img.copy()
    other[:3] = 0
    other[:, -3:] = 255
    assert psnr(other, img, crop_border=3) == math.inf
    assert psnr(other, img, crop_border=2) < 40
    # exact MSE over the shaved region only: one changed row of 36 pixels left with crop_border=2
    other2 = img.copy()
    other2[2, 2:-2] += 1
    expected_mse = (219 / 255) ** 2 * 36 / (28 * 36)  # 36 of the 28x36 shaved pixels moved
    assert psnr(other2, img, crop_border=2) == pytest.approx(10 * math.log10(255**2 / expected_mse), abs=1e-9)


def test_errors(img):
    with pytest.raises(UserInputError, match="shapes differ"):
        psnr(img[:-1], img, 4)
    with pytest.raises(UserInputError, match="uint8"):
        psnr(img.astype(np.float32), img.astype(np.float32), 4)
    with pytest.raises(UserInputError, match="too small"):
        psnr(img, img, 20)
    with pytest.raises(UserInputError, match="crop_border"):
        psnr(img, img, -1)


def test_psnr_between_tensors_and_arrays():
    a = torch.zeros(1, 3, 8, 8)
    assert psnr_between(a, a.clone(), 1.0) == math.inf
    assert psnr_between(a, a + 0.1, 1.0) == pytest.approx(20.0, abs=1e-5)
    assert psnr_between(a.half(), (a + 0.1).half(), 1.0) == pytest.approx(20.0, abs=0.01)
    assert psnr_between(np.zeros(5), np.full(5, 2.55), 255.0) == pytest.approx(40.0, abs=1e-9)
    with pytest.raises(UserInputError, match="shapes"):
        psnr_between(a, torch.zeros(1, 3, 8, 9), 1.0)
    with pytest.raises(UserInputError, match="data_range"):
        psnr_between(a, a, 0)
