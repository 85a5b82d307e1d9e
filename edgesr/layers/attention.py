"""Channel attention (squeeze-and-excitation) as used by RCAN.

RCAN's official ``CALayer``: global average pool, 1x1 conv down by `reduction`, ReLU, 1x1 conv up,
sigmoid, then rescale the input channels. The attribute name `conv_du` (and its indices 0 and 2)
is kept so official checkpoints load with unchanged keys (``...body.3.conv_du.0.weight``).
"""
from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """``x * sigmoid(W2 relu(W1 avgpool(x)))``; RCAN's ``CALayer``.

    The multiply broadcasts a [N, C, 1, 1] gate over H, W: it couples nothing across channels
    except through the two 1x1 convs (the gate's output channels are x's channels).
    """

    def __init__(self, channels: int, reduction: int = 16, bias: bool = True) -> None:
        super().__init__()
        if reduction < 1 or channels // reduction < 1:
            raise ValueError(f"channel attention needs channels // reduction >= 1, "
                             f"got channels={channels}, reduction={reduction}")
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, padding=0, bias=bias),
            nn.ReLU(),
            nn.Conv2d(channels // reduction, channels, 1, padding=0, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))
