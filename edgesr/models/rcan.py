"""RCAN: Image Super-Resolution Using Very Deep Residual Channel Attention Networks (Zhang et al., ECCV 2018).

Follows sanghyun-son/EDSR-PyTorch ``src/model/rcan.py`` (the same layout as yulunzhang/RCAN), so its
checkpoints load strictly with unchanged keys::

    sub_mean / add_mean                         frozen MeanShift (rgb_range 255, DIV2K mean)
    head.0                                      conv 3 -> n_feats
    body.{g}.body.{b}.body.{0,2}                RCAB convs, g < n_resgroups, b < n_resblocks
    body.{g}.body.{b}.body.3.conv_du.{0,2}      channel attention 1x1 convs
    body.{g}.body.{n_resblocks}                 last conv of residual group g
    body.{n_resgroups}                          last body conv
    tail.0.{0,2,...}, tail.1                    Upsampler convs, conv n_feats -> 3

As in the official code, RCAB has no residual scaling (the official RCAB takes a ``res_scale`` argument but
never applies it; edgesr's has none).
0..1 in/out via `to_native` / `from_native` (`ValueScale`, no parameters). ReLUs are not in-place and
residual additions are out of place (fx-traceable, autograd-safe); the state dict is unchanged.

Parameters at x4 with the paper's configuration (10 groups x 20 RCAB, 64 features, reduction 16):
15,592,355 trainable (paper: ~16 M).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgesr.errors import UserInputError
from edgesr.layers.attention import ChannelAttention
from edgesr.layers.mean_shift import DIV2K_RGB_MEAN
from edgesr.models.detect import Candidate, Shapes, ranked, register_detector
from edgesr.models.edsr import (SUPPORTED_SCALES, MeanShiftResidualSR, build_variant, check_scale, default_conv,
                                read_upsampler_scale)
from edgesr.models.registry import register_model

_PAPER = ("Zhang et al., Image Super-Resolution Using Very Deep Residual Channel Attention Networks, "
          "ECCV 2018 (arXiv:1807.02758)")


class RCAB(nn.Module):
    """Residual channel attention block: conv-ReLU-conv-CA plus identity (keys ``body.{0,2,3}``)."""

    def __init__(self, n_feats: int, kernel_size: int = 3, reduction: int = 16, bias: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            default_conv(n_feats, n_feats, kernel_size, bias),
            nn.ReLU(),
            default_conv(n_feats, n_feats, kernel_size, bias),
            ChannelAttention(n_feats, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ResidualGroup(nn.Module):
    """`n_resblocks` RCABs and a conv, with a group-level skip (keys ``body.{0..n}``)."""

    def __init__(self, n_feats: int, kernel_size: int, reduction: int, n_resblocks: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = [RCAB(n_feats, kernel_size, reduction) for _ in range(n_resblocks)]
        blocks.append(default_conv(n_feats, n_feats, kernel_size))
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class RCAN(MeanShiftResidualSR):
    """RCAN. Takes and returns RGB in 0..1 (NCHW); works on 0..`rgb_range` inside.

    Args:
        scale: upscaling factor (2, 3 or 4).
        n_resgroups: residual groups (10).
        n_resblocks: RCABs per group (20).
        n_feats: feature channels (64).
        reduction: channel-attention reduction (16); needs n_feats // reduction >= 1.
        kernel_size: conv kernel size (3).
        rgb_range, rgb_mean: native value range and the mean removed by `sub_mean`.
    """

    default_loss = "l1"

    def __init__(self, scale: int = 4, n_resgroups: int = 10, n_resblocks: int = 20, n_feats: int = 64,
                 reduction: int = 16, kernel_size: int = 3, rgb_range: float = 255.0,
                 rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN) -> None:
        super().__init__()
        self.scale = check_scale(scale)
        if n_resgroups < 0 or n_resblocks < 0 or n_feats < 1:
            raise UserInputError("RCAN needs n_resgroups >= 0, n_resblocks >= 0 and n_feats >= 1.")
        if reduction < 1 or n_feats // reduction < 1:
            raise UserInputError(f"RCAN needs n_feats // reduction >= 1, got n_feats={n_feats}, "
                                 f"reduction={reduction}.")
        blocks = [ResidualGroup(n_feats, kernel_size, reduction, n_resblocks) for _ in range(n_resgroups)]
        self._build_skeleton(blocks, scale, n_feats, kernel_size, rgb_range, rgb_mean)


@register_model("rcan", scales=SUPPORTED_SCALES, input_range=255.0, paper=_PAPER,
                description="RCAN: 10 residual groups x 20 RCAB, 64 features, reduction 16 "
                            "(15.6 M params at x4)")
def rcan(scale: int, **cfg: Any) -> RCAN:
    return build_variant(RCAN, DEFAULTS["rcan"], scale, cfg)


# Channel attention keeps 8 hidden channels: with only 1-2 they can all be dead ReLUs at init.
rcan.tiny_cfg = {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 2}  # for fast tests

DEFAULTS = {"rcan": {"n_resgroups": 10, "n_resblocks": 20, "n_feats": 64, "reduction": 16, "kernel_size": 3}}


@register_detector("rcan")
def detect(shapes: Shapes) -> list[Candidate]:
    n_feats = shapes.dim("head.0.weight", 0)
    hidden = shapes.dim("body.0.body.0.body.3.conv_du.0.weight", 0)
    if not n_feats or not hidden:
        return []
    config = {"n_resgroups": shapes.count("body.{}.body.0.body.0.weight"),
              "n_resblocks": shapes.count("body.0.body.{}.body.0.weight"), "n_feats": n_feats,
              "reduction": n_feats // hidden, "kernel_size": shapes.dim("head.0.weight", 2)}
    scale = read_upsampler_scale(shapes, "tail.0", n_feats)
    return ranked(config, scale, DEFAULTS) if scale else []
