"""RDN: Residual Dense Network for Image Super-Resolution (Zhang et al., CVPR 2018).

Follows sanghyun-son/EDSR-PyTorch ``src/model/rdn.py`` so its checkpoints load strictly with unchanged
keys::

    SFENet1, SFENet2                            shallow feature extraction convs (3 -> G0, G0 -> G0)
    RDBs.{d}.convs.{c}.conv.0                   dense layer c of block d: conv (G0 + c G) -> G, then ReLU
    RDBs.{d}.LFF                                local feature fusion, 1x1 (G0 + C G) -> G0
    GFF.0, GFF.1                                global feature fusion: 1x1 (D G0) -> G0, 3x3 G0 -> G0
    UPNet.{0,2}         (x2, x3)                conv G0 -> G r^2, PixelShuffle(r), conv G -> 3
    UPNet.{0,2,4}       (x4)                    two (conv -> 4 G, PixelShuffle(2)) stages, conv G -> 3

Like the official EDSR-PyTorch RDN it has no MeanShift and works on 0..255 (``rgb_range=255``); edgesr's
0..1 convention is met by `to_native` / `from_native` (`ValueScale`, no parameters). The global residual
``GFF(...) + F_-1`` is out of place (the official code adds in place), which changes nothing numerically.

Configurations (paper / EDSR-PyTorch ``RDNconfig``): A = (D 20, C 6, G 32), B = (D 16, C 8, G 64), G0 = 64.
Parameters at x4, config B: 22,271,107 (paper: ~22 M).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgesr.errors import UserInputError
from edgesr.layers.scale import ValueScale
from edgesr.models.edsr import SUPPORTED_SCALES, build_variant, check_scale
from edgesr.models.detect import Candidate, Shapes, pixel_shuffle_scale, ranked, register_detector
from edgesr.models.registry import register_model

_PAPER = "Zhang et al., Residual Dense Network for Image Super-Resolution, CVPR 2018 (arXiv:1802.08797)"

#: EDSR-PyTorch's ``RDNconfig`` table: (D blocks, C conv layers per block, G growth rate).
RDN_CONFIGS: dict[str, tuple[int, int, int]] = {"A": (20, 6, 32), "B": (16, 8, 64)}


def _conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2, stride=1)


class RDBConv(nn.Module):
    """One dense layer: ``cat(x, relu(conv(x)))`` (official ``RDB_Conv``; key ``conv.0``)."""

    def __init__(self, in_channels: int, growth: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(in_channels, growth, kernel_size), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.conv(x)), 1)


class RDB(nn.Module):
    """Residual dense block: C dense layers, 1x1 local feature fusion, local residual."""

    def __init__(self, g0: int, growth: int, n_layers: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[RDBConv(g0 + c * growth, growth, kernel_size) for c in range(n_layers)])
        self.LFF = nn.Conv2d(g0 + n_layers * growth, g0, 1, padding=0, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LFF(self.convs(x)) + x


class RDN(nn.Module):
    """RDN. Takes and returns RGB in 0..1 (NCHW); works on 0..`rgb_range` inside.

    Args:
        scale: upscaling factor (2, 3 or 4).
        G0: feature channels between blocks (64).
        D, C, G: residual dense blocks, dense layers per block, growth rate (config B: 16, 8, 64).
        kernel_size: conv kernel size (3).
        rgb_range: native value range (255, as EDSR-PyTorch trains RDN).
    """

    default_loss = "l1"

    def __init__(self, scale: int = 4, G0: int = 64, D: int = 16, C: int = 8, G: int = 64,  # noqa: N803
                 kernel_size: int = 3, rgb_range: float = 255.0) -> None:
        super().__init__()
        self.scale = r = check_scale(scale)
        if min(G0, D, C, G) < 1:
            raise UserInputError(f"RDN needs G0, D, C, G >= 1, got {G0}, {D}, {C}, {G}.")
        self.D = D
        self.to_native = ValueScale(rgb_range)
        self.SFENet1 = _conv(3, G0, kernel_size)
        self.SFENet2 = _conv(G0, G0, kernel_size)
        self.RDBs = nn.ModuleList([RDB(G0, G, C, kernel_size) for _ in range(D)])
        self.GFF = nn.Sequential(nn.Conv2d(D * G0, G0, 1, padding=0, stride=1), _conv(G0, G0, kernel_size))
        if r in (2, 3):
            self.UPNet = nn.Sequential(_conv(G0, G * r * r, kernel_size), nn.PixelShuffle(r),
                                       _conv(G, 3, kernel_size))
        else:  # r == 4
            self.UPNet = nn.Sequential(_conv(G0, G * 4, kernel_size), nn.PixelShuffle(2),
                                       _conv(G, G * 4, kernel_size), nn.PixelShuffle(2),
                                       _conv(G, 3, kernel_size))
        self.from_native = ValueScale(1.0 / rgb_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_1 = self.SFENet1(self.to_native(x))
        x = self.SFENet2(f_1)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        x = self.GFF(torch.cat(outs, 1)) + f_1
        return self.from_native(self.UPNet(x))

    @staticmethod
    def remap_state_dict(sd: dict[str, Any]) -> dict[str, Any]:
        """EDSR-PyTorch RDN checkpoints use these keys: identity."""
        return dict(sd)


@register_model("rdn", scales=SUPPORTED_SCALES, input_range=255.0, paper=_PAPER,
                description="RDN config B: 16 RDBs x 8 dense layers, growth 64, G0 64 (22.3 M params at x4)")
def rdn(scale: int, **cfg: Any) -> RDN:
    return build_variant(RDN, DEFAULTS["rdn"], scale, cfg)


rdn.tiny_cfg = {"G0": 8, "D": 2, "C": 2, "G": 4}  # for fast tests

DEFAULTS = {"rdn": {"G0": 64, **dict(zip("DCG", RDN_CONFIGS["B"])), "kernel_size": 3}}


@register_detector("rdn")
def detect(shapes: Shapes) -> list[Candidate]:
    growth = shapes.dim("RDBs.0.convs.0.conv.0.weight", 0)
    if not growth:
        return []
    config = {"G0": shapes.dim("SFENet1.weight", 0), "D": shapes.count("RDBs.{}.LFF.weight"),
              "C": shapes.count("RDBs.0.convs.{}.conv.0.weight"), "G": growth,
              "kernel_size": shapes.dim("SFENet1.weight", 2)}
    scale = 4 if "UPNet.4.weight" in shapes else pixel_shuffle_scale(shapes.dim("UPNet.0.weight", 0), growth)
    return ranked(config, scale, DEFAULTS) if scale else []
