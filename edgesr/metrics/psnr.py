"""Peak signal-to-noise ratio: the benchmark metric on uint8 images and a general float one."""
from __future__ import annotations

import math

import numpy as np
import torch

from edgesr.errors import UserInputError
from edgesr.metrics._prepare import prepare_pair


def format_psnr(value: float | None, none: str = "inf (identical)") -> str:
    """``"38.21 dB"`` for reports; inf reads "inf (identical)", and so does None by default, because
    sidecars store an infinite PSNR as JSON null (pass `none` where None means "not measured")."""
    if value is None:
        return none
    return "inf (identical)" if math.isinf(value) else f"{value:.2f} dB"


def _psnr_from_mse(mse: float, data_range: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(data_range * data_range / mse)


def psnr(sr: np.ndarray, hr: np.ndarray, crop_border: int, test_y_channel: bool = True) -> float:
    """PSNR in dB (data range 255) between two uint8 HxWx3 RGB images; inf when identical.

    `crop_border` pixels are shaved from every side first (the benchmark uses the scale).
    With `test_y_channel` the MSE is taken on float Y (BT.601, 16..235), else over all RGB values.
    """
    planes = prepare_pair(sr, hr, crop_border, test_y_channel)
    mse = float(np.mean([np.mean((a - b) ** 2) for a, b in planes]))
    return _psnr_from_mse(mse, 255.0)


def _as_float64(x: object, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    if isinstance(x, np.ndarray):
        return x.astype(np.float64, copy=False)
    raise UserInputError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}.")


def psnr_between(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, data_range: float) -> float:
    """PSNR in dB between two same-shaped float tensors/arrays (e.g. FP16 vs FP32 model outputs).

    No rounding, cropping or colour conversion: it measures how far `a` is from `b` on the
    scale `data_range` (1.0 or 255.0). inf when identical.
    """
    if not (isinstance(data_range, (int, float)) and data_range > 0):
        raise UserInputError(f"data_range must be a positive number, got {data_range!r}.")
    a64, b64 = _as_float64(a, "a"), _as_float64(b, "b")
    if a64.shape != b64.shape:
        raise UserInputError(f"shapes differ: {a64.shape} vs {b64.shape}.")
    if a64.size == 0:
        raise UserInputError("cannot compute PSNR of empty arrays.")
    return _psnr_from_mse(float(np.mean((a64 - b64) ** 2)), float(data_range))
