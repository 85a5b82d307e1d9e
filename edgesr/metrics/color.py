"""RGB -> Y (luma) the way SR papers measure it: MATLAB ``rgb2ycbcr``, BT.601, studio range."""
from __future__ import annotations

import numpy as np

from edgesr.errors import UserInputError

#: MATLAB rgb2ycbcr's Y row, for R, G, B in 0..1; Y = 16 + this . (R, G, B) lies in 16..235.
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y channel (float64 HxW in 16..235, not rounded) of an HxWx3 RGB image.

    uint8 input is read as 0..255; float input as 0..1 (MATLAB's convention). Y is kept in
    float because the project's reference figures use float Y (rounding it shifts PSNR by
    up to ~0.09 dB).
    """
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        got = getattr(img, "shape", type(img).__name__)
        raise UserInputError(f"rgb_to_y expects an HxWx3 RGB array, got {got}.")
    if img.dtype == np.uint8:
        rgb = img.astype(np.float64) / 255.0
    elif np.issubdtype(img.dtype, np.floating):
        rgb = img.astype(np.float64)
    else:
        raise UserInputError(f"rgb_to_y expects uint8 (0..255) or float (0..1) input, got {img.dtype}.")
    return rgb @ _Y_WEIGHTS + 16.0
