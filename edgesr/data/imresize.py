"""MATLAB-compatible bicubic ``imresize``.

SR benchmarks define their LR inputs as MATLAB ``imresize(hr, 1/s, 'bicubic')`` (antialiased),
and PIL/OpenCV/torch bicubic all differ from it by several dB of PSNR. This is a port of
MATLAB's algorithm: cubic kernel (a = -0.5), kernel widened by 1/scale when downscaling,
MATLAB's sample positions, 'symmetric' borders, and the dimension with the smaller scale
resized first.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from edgesr.data.image_io import modcrop
from edgesr.errors import UserInputError

_KERNEL_WIDTH = 4.0  # support of the cubic kernel, in input pixels


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    return (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1) + (
        -0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0
    ) * ((absx > 1) & (absx <= 2))


def _contributions(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based input indices (both out_length x P) of MATLAB's `contributions`."""
    kernel_width = _KERNEL_WIDTH
    antialias = scale < 1
    if antialias:
        kernel_width = kernel_width / scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # output pixel centre, in input coordinates (1-based)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    dist = u[:, None] - indices
    weights = scale * _cubic(scale * dist) if antialias else _cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # 'symmetric' padding: mirror with the edge pixel repeated (1..n, n..1, periodic).
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, mirror.size)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _resize_axis(img: np.ndarray, axis: int, out_length: int, scale: float) -> np.ndarray:
    """Resize float64 `img` along `axis` (0 = rows, 1 = columns)."""
    weights, indices = _contributions(img.shape[axis], out_length, scale)
    moved = np.moveaxis(img, axis, 0)
    out = np.zeros((out_length,) + moved.shape[1:], dtype=np.float64)
    bcast = (slice(None),) + (None,) * (moved.ndim - 1)
    for k in range(weights.shape[1]):  # a few taps; each step is a vectorised gather + axpy
        out += weights[:, k][bcast] * moved[indices[:, k]]
    return np.moveaxis(out, 0, axis)


def _plan(in_hw: tuple[int, int], scale: float | Sequence[float] | None,
          output_shape: Sequence[int] | None) -> tuple[tuple[float, float], tuple[int, int]]:
    """Per-dimension scale factors and output size, as MATLAB derives them."""
    if (scale is None) == (output_shape is None):
        raise UserInputError("imresize: give exactly one of `scale` or `output_shape`.")
    if output_shape is not None:
        shape = tuple(output_shape)
        if len(shape) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
                                      for n in shape):
            raise UserInputError(f"imresize: output_shape must be two positive ints (H, W), got {output_shape!r}.")
        out_hw = (int(shape[0]), int(shape[1]))
        return (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1]), out_hw
    scales = (scale, scale) if np.isscalar(scale) else tuple(scale)  # type: ignore[arg-type]
    if len(scales) != 2 or not all(isinstance(s, (int, float, np.number)) and math.isfinite(s) and s > 0
                                   for s in scales):
        raise UserInputError(f"imresize: scale must be a positive number or a pair of them, got {scale!r}.")
    # MATLAB: ceil(scale * size). The tolerance keeps 1/3 * 252 = 83.99999999999999 at 84.
    out_hw = tuple(max(1, int(math.ceil(float(s) * n - 1e-9))) for s, n in zip(scales, in_hw))
    return (float(scales[0]), float(scales[1])), out_hw  # type: ignore[return-value]


def imresize(img: np.ndarray, scale: float | Sequence[float] | None = None,
             output_shape: Sequence[int] | None = None) -> np.ndarray:
    """Resize an HxW or HxWxC image like MATLAB ``imresize(img, scale, 'bicubic')``.

    Give either `scale` (a factor, or an (H, W) pair of factors; output size is
    ceil(scale * size) like MATLAB) or `output_shape` (H, W). uint8 input returns uint8,
    rounded half away from zero and saturated like MATLAB; float input returns the same
    float dtype, unclipped. Computation is in float64.
    """
    if not isinstance(img, np.ndarray):
        raise UserInputError(f"imresize expects a numpy array, got {type(img).__name__}.")
    if img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise UserInputError(f"imresize expects an HxW or HxWxC image, got shape {img.shape}.")
    if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
        raise UserInputError(f"imresize supports uint8 and float images, got {img.dtype}.")
    scales, out_hw = _plan((img.shape[0], img.shape[1]), scale, output_shape)

    out = img.astype(np.float64)
    # MATLAB resizes first along the dimension with the smaller scale (stable sort: rows on ties).
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        if out.shape[axis] != out_hw[axis] or scales[axis] != 1.0:
            out = _resize_axis(out, axis, out_hw[axis], scales[axis])

    if img.dtype == np.uint8:
        # np.round is half-to-even; MATLAB rounds half away from zero (values here are >= 0 after clip).
        return np.floor(np.clip(out, 0.0, 255.0) + 0.5).astype(np.uint8)
    return out.astype(img.dtype, copy=False)


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """The benchmark LR: MATLAB bicubic ``imresize(modcrop(hr, scale), 1/scale)``."""
    hr = modcrop(hr, scale)
    return imresize(hr, output_shape=(hr.shape[0] // scale, hr.shape[1] // scale))
