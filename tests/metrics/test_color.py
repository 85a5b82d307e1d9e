"""Y channel: MATLAB rgb2ycbcr (BT.601, 16..235), kept in float."""
from __future__ import annotations

import numpy as np
import pytest

from edgesr.errors import UserInputError
from edgesr.metrics import rgb_to_y


def test_known_pixels():
    img = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    y = rgb_to_y(img)
    assert y.dtype == np.float64 and y.shape == (1, 5)
    np.testing.assert_allclose(y[0], [235.0, 16.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-10)


def test_not_rounded_and_float_input_is_0_to_1():
    img = np.array([[[10, 20, 30]]], np.uint8)
    expected = 16 + (65.481 * 10 + 128.553 * 20 + 24.966 * 30) / 255
    assert rgb_to_y(img)[0, 0] == pytest.approx(expected, abs=1e-12)
    assert rgb_to_y(img.astype(np.float64) / 255)[0, 0] == pytest.approx(expected, abs=1e-12)
    assert expected != round(expected)


def test_rejects_bad_input():
    with pytest.raises(UserInputError):
        rgb_to_y(np.zeros((4, 4), np.uint8))
    with pytest.raises(UserInputError):
        rgb_to_y(np.zeros((4, 4, 3), np.int32))
