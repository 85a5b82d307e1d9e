"""Convolution helpers and the pixel-shuffle reconstruction used by most efficient SR nets."""
from __future__ import annotations

from torch import nn


def conv_layer(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
               bias: bool = True) -> nn.Conv2d:
    """Conv with 'same' padding for odd kernels (the official RLFN/RFDN `conv_layer`)."""
    padding = (kernel_size - 1) // 2
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=padding, bias=bias)


class PixelShuffleUpsampler(nn.Sequential):
    """conv3x3 to out*r^2 channels, then PixelShuffle(r). Index 0 is the conv (official key `upsampler.0`)."""

    def __init__(self, in_channels: int, out_channels: int, upscale: int, kernel_size: int = 3) -> None:
        super().__init__(
            conv_layer(in_channels, out_channels * upscale**2, kernel_size),
            nn.PixelShuffle(upscale),
        )
