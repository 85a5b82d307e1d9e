"""Image-quality metrics with the SR benchmark conventions (Y channel, shaved borders, uint8 input)."""
from __future__ import annotations

from edgesr.metrics.color import rgb_to_y
from edgesr.metrics.psnr import format_psnr, psnr, psnr_between
from edgesr.metrics.ssim import ssim

__all__ = ["format_psnr", "rgb_to_y", "psnr", "psnr_between", "ssim"]
