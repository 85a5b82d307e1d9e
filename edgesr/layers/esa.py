"""Enhanced Spatial Attention (ESA), as in RFANet and used by RFDN and RLFN.

Both official variants are here: RLFN's light ESA (conv2 -> maxpool -> conv3) and RFDN's
(conv2 -> maxpool -> conv_max -> conv3 -> conv3_). Parameter names follow the official code.
The attention map needs the stride-2 conv output to be at least 7 pixels, so inputs must be
at least `ESA_MIN_INPUT` pixels on each side.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ESA_MIN_INPUT = 15


class ESA(nn.Module):
    """x * sigmoid(conv4(up(pooled branch) + conv_f(conv1(x))))."""

    def __init__(self, esa_channels: int, n_feats: int, variant: str = "rlfn") -> None:
        super().__init__()
        if variant not in ("rlfn", "rfdn"):
            raise ValueError(f"unknown ESA variant {variant!r}")
        f = esa_channels
        self.variant = variant
        self.conv1 = nn.Conv2d(n_feats, f, kernel_size=1)
        self.conv_f = nn.Conv2d(f, f, kernel_size=1)
        if variant == "rfdn":
            self.conv_max = nn.Conv2d(f, f, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(f, f, kernel_size=3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, kernel_size=3, padding=1)
        if variant == "rfdn":
            self.conv3_ = nn.Conv2d(f, f, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, kernel_size=1)
        self.sigmoid = nn.Sigmoid()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        v_max = F.max_pool2d(c1, kernel_size=7, stride=3)
        if self.variant == "rfdn":
            v_range = self.relu(self.conv_max(v_max))
            c3 = self.relu(self.conv3(v_range))
            c3 = self.conv3_(c3)
        else:
            c3 = self.conv3(v_max)
        c3 = F.interpolate(c3, size=(x.size(2), x.size(3)), mode="bilinear", align_corners=False)
        cf = self.conv_f(c1_)
        c4 = self.conv4(c3 + cf)
        return x * self.sigmoid(c4)
