"""EDSR: Enhanced Deep Residual Networks for Single Image Super-Resolution (Lim et al., CVPRW 2017).

Follows sanghyun-son/EDSR-PyTorch (``src/model/edsr.py`` and ``common.py``) so its checkpoints load
strictly with unchanged keys::

    sub_mean.{weight,bias}                      frozen MeanShift (rgb_range 255, DIV2K mean)
    head.0                                      conv 3 -> n_feats
    body.{i}.body.{0,2}                         ResBlock convs, i < n_resblocks
    body.{n_resblocks}                          last body conv
    tail.0.{0,2,...}                            Upsampler convs (x2: .0; x3: .0; x4: .0 and .2)
    tail.1                                      conv n_feats -> 3
    add_mean.{weight,bias}                      frozen MeanShift, sign +1

The official network works on 0..255 RGB. edgesr's public convention is 0..1, so the model multiplies
its input by 255 first (`to_native`) and divides its output at the end (`from_native`); these
`ValueScale` modules hold no parameters, so the state-dict keys are unchanged.

Differences from the official code that do not change the state dict or the function: ReLUs are not
in-place and the residual additions are out of place (``body(x) * res_scale + x``), which keeps the graph
autograd-safe and torch.fx-traceable for the pruning/fold passes.

Parameter counts at x4 (trainable, i.e. without the 2 x 12 frozen MeanShift values):
``edsr_baseline`` 1,517,571 (paper: 1.5 M), ``edsr`` 43,089,923 (paper: 43 M).
"""
from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn

from edgesr.errors import UserInputError
from edgesr.layers.mean_shift import DIV2K_RGB_MEAN, MeanShift
from edgesr.layers.scale import ValueScale
from edgesr.models.detect import Candidate, Shapes, ranked, register_detector
from edgesr.models.registry import register_model

SUPPORTED_SCALES = (2, 3, 4)
_PAPER = ("Lim et al., Enhanced Deep Residual Networks for Single Image Super-Resolution, CVPRW 2017 "
          "(arXiv:1707.02921)")


def default_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    """EDSR-PyTorch's ``common.default_conv``: stride 1, padding kernel_size // 2."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


def check_scale(scale: int, supported: tuple[int, ...] = SUPPORTED_SCALES) -> int:
    """Validate an upscaling factor for direct (non-registry) construction."""
    if scale not in supported:
        raise UserInputError(f"unsupported scale {scale!r}; supported scales: "
                             f"{', '.join(str(s) for s in supported)}.")
    return int(scale)


class Upsampler(nn.Sequential):
    """EDSR-PyTorch's ``common.Upsampler`` without BN/activation: conv + PixelShuffle stages.

    Scale 2^n: n stages of (conv n_feats -> 4 n_feats, PixelShuffle(2)), so x4 has convs at indices
    0 and 2; scale 3: one stage (conv n_feats -> 9 n_feats, PixelShuffle(3)).
    """

    def __init__(self, scale: int, n_feats: int, bias: bool = True) -> None:
        layers: list[nn.Module] = []
        if scale >= 2 and scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [default_conv(n_feats, 4 * n_feats, 3, bias), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [default_conv(n_feats, 9 * n_feats, 3, bias), nn.PixelShuffle(3)]
        else:
            raise UserInputError(f"the EDSR upsampler supports scales 2^n and 3, got {scale!r}.")
        super().__init__(*layers)


class ResBlock(nn.Module):
    """conv-ReLU-conv with a residual scaled by the plain float `res_scale` (official key ``body.{0,2}``)."""

    def __init__(self, n_feats: int, kernel_size: int = 3, res_scale: float = 1.0, bias: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            default_conv(n_feats, n_feats, kernel_size, bias),
            nn.ReLU(),
            default_conv(n_feats, n_feats, kernel_size, bias),
        )
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.res_scale + x

    def extra_repr(self) -> str:
        return f"res_scale={self.res_scale:g}"


class MeanShiftResidualSR(nn.Module):
    """EDSR-PyTorch skeleton shared by EDSR and RCAN: sub_mean -> head -> body (+ long skip) -> tail -> add_mean.

    Subclasses build their body blocks and call `_build_skeleton`; attribute names are the
    official ones so EDSR-PyTorch checkpoints load with unchanged keys.
    """

    def _build_skeleton(self, blocks: list[nn.Module], scale: int, n_feats: int, kernel_size: int,
                        rgb_range: float, rgb_mean: tuple[float, float, float]) -> None:
        self.to_native = ValueScale(rgb_range)
        self.sub_mean = MeanShift(rgb_range, rgb_mean, sign=-1)
        self.head = nn.Sequential(default_conv(3, n_feats, kernel_size))
        self.body = nn.Sequential(*blocks, default_conv(n_feats, n_feats, kernel_size))
        self.tail = nn.Sequential(Upsampler(scale, n_feats), default_conv(n_feats, 3, kernel_size))
        self.add_mean = MeanShift(rgb_range, rgb_mean, sign=1)
        self.from_native = ValueScale(1.0 / rgb_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sub_mean(self.to_native(x))
        x = self.head(x)
        res = self.body(x) + x
        x = self.tail(res)
        return self.from_native(self.add_mean(x))

    @staticmethod
    def remap_state_dict(sd: dict[str, Any]) -> dict[str, Any]:
        """Official EDSR-PyTorch / RCAN checkpoints are plain state dicts with these keys: identity."""
        return dict(sd)


class EDSR(MeanShiftResidualSR):
    """EDSR / EDSR-baseline. Takes and returns RGB in 0..1 (NCHW); works on 0..`rgb_range` inside.

    Args:
        scale: upscaling factor (2, 3 or 4).
        n_resblocks: number of residual blocks (16 baseline, 32 full).
        n_feats: feature channels (64 baseline, 256 full).
        res_scale: residual scaling inside each ResBlock (1.0 baseline, 0.1 full).
        kernel_size: conv kernel size (3).
        rgb_range: native value range of the official weights (255).
        rgb_mean: mean subtracted by `sub_mean` (DIV2K).
    """

    default_loss = "l1"

    def __init__(self, scale: int = 4, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0,
                 kernel_size: int = 3, rgb_range: float = 255.0,
                 rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN) -> None:
        super().__init__()
        self.scale = check_scale(scale)
        if n_resblocks < 0 or n_feats < 1:
            raise UserInputError(f"EDSR needs n_resblocks >= 0 and n_feats >= 1, "
                                 f"got {n_resblocks}, {n_feats}.")
        blocks = [ResBlock(n_feats, kernel_size, res_scale) for _ in range(n_resblocks)]
        self._build_skeleton(blocks, scale, n_feats, kernel_size, rgb_range, rgb_mean)


def build_variant(cls: type[nn.Module], defaults: dict[str, Any], scale: int,
                  cfg: dict[str, Any]) -> nn.Module:
    """Registered defaults overridden by the caller's hyper-parameters (timm style)."""
    return cls(scale=scale, **{**defaults, **cfg})


def read_upsampler_scale(shapes: Shapes, prefix: str, n_feats: int | None) -> int | None:
    """The scale of an EDSR-style `Upsampler` at `prefix`: one conv to 9 n_feats (x3), or n convs to
    4 n_feats (x2^n)."""
    first = shapes.dim(f"{prefix}.0.weight", 0)
    if not n_feats or first is None:
        return None
    if first == 9 * n_feats:
        return 3
    stages = len(shapes.indices(re.escape(prefix) + r"\.(\d+)\.weight"))
    return 2 ** stages if first == 4 * n_feats else None


@register_model("edsr_baseline", scales=SUPPORTED_SCALES, input_range=255.0, paper=_PAPER,
                description="EDSR baseline: 16 ResBlocks, 64 features, res_scale 1 (1.5 M params at x4)")
def edsr_baseline(scale: int, **cfg: Any) -> EDSR:
    return build_variant(EDSR, DEFAULTS["edsr_baseline"], scale, cfg)


edsr_baseline.tiny_cfg = {"n_resblocks": 2, "n_feats": 8}  # for fast tests


@register_model("edsr", scales=SUPPORTED_SCALES, input_range=255.0, paper=_PAPER,
                description="EDSR: 32 ResBlocks, 256 features, res_scale 0.1 (43 M params at x4)")
def edsr(scale: int, **cfg: Any) -> EDSR:
    return build_variant(EDSR, DEFAULTS["edsr"], scale, cfg)


edsr.tiny_cfg = {"n_resblocks": 2, "n_feats": 8}  # for fast tests

#: The registered EDSR variants' hyper-parameters (their builders' defaults).
DEFAULTS = {"edsr_baseline": {"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0, "kernel_size": 3},
            "edsr": {"n_resblocks": 32, "n_feats": 256, "res_scale": 0.1, "kernel_size": 3}}


@register_detector("edsr")
def detect(shapes: Shapes) -> list[Candidate]:
    """`res_scale` is not in the weights: 0.1 for the wide (>= 256 features) model, as the paper trains it."""
    n_feats = shapes.dim("head.0.weight", 0)
    config = {"n_resblocks": shapes.count("body.{}.body.0.weight"), "n_feats": n_feats,
              "res_scale": 0.1 if (n_feats or 0) >= 256 else 1.0, "kernel_size": shapes.dim("head.0.weight", 2)}
    scale = read_upsampler_scale(shapes, "tail.0", n_feats)
    return ranked(config, scale, DEFAULTS) if scale else []
