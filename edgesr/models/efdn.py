"""EFDN: Edge-enhanced Feature Distillation Network (Wang, NTIRE 2023 ESR winner; NTIRE 2025 baseline).

Two registered forms, one architecture:

* ``efdn`` -- the deploy form the official checkpoint holds (``team00_EFDN.pth``): each cell's ``conv2`` /
  ``conv3`` is one 3x3 conv ``rep_conv`` followed by a PReLU ``act`` (the official ``EDBB_deploy``);
* ``efdn_rep`` -- the training-time form: each ``rep_conv`` is an `EDBB` (3x3 + 1x1 + Sobel-x / Sobel-y /
  Laplacian branches). ``edgesr.transforms.reparameterize(model, passes=["repconv"])`` (or
  ``model.reparameterize()``) folds each into one ``nn.Conv2d`` at the same path, after which the model has
  exactly the deploy form's state_dict (loadable strictly into ``create_model("efdn")``).

Layer names follow the official code. Input and output are 0..1; the output is clamped to 0..1 inside,
as in the official network. Each cell ends with RFDN's ESA (pooled attention), so tiled inference is close
to, not equal to, untiled inference (as for RLFN); inputs must be at least `ESA_MIN_INPUT` pixels.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgesr.layers.edbb import EDBB
from edgesr.layers.esa import ESA, ESA_MIN_INPUT
from edgesr.layers.reparam import replace_convs
from edgesr.models.detect import Candidate, Shapes, pixel_shuffle_scale, ranked, register_detector
from edgesr.models.registry import PretrainedCfg, register_model
from edgesr.models.rlfn_rep import RepModelMixin

_PAPER = ("Edge-enhanced Feature Distillation Network for Efficient Super-Resolution "
          "(Wang, NTIRE 2023 ESR challenge, CVPRW 2023)")
_SOURCE = "github.com/Amazingren/NTIRE2025_ESR"


class PointwisePReLU(nn.Module):
    """1x1 conv + per-channel PReLU (the official ``conv`` module)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(channels, channels, 1)
        self.act = nn.PReLU(num_parameters=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv1x1(x))


class RepConvPReLU(nn.Module):
    """3x3 conv ``rep_conv`` + per-channel PReLU (the official ``EDBB_deploy``); the training-time form puts
    an `EDBB` at ``rep_conv``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.rep_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.PReLU(num_parameters=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.rep_conv(x))


class Cell(nn.Module):
    """conv1 (1x1) -> conv2 (3x3) -> conv3 (3x3); a 1x1 branch from x and each stage to half width,
    concatenated and fused by a 1x1; ESA; residual."""

    def __init__(self, channels: int, esa_channels: int) -> None:
        super().__init__()
        self.conv1 = PointwisePReLU(channels)
        self.conv2 = RepConvPReLU(channels)
        self.conv3 = RepConvPReLU(channels)
        self.fuse = nn.Conv2d(channels * 2, channels, 1)
        self.att = ESA(esa_channels, channels, variant="rfdn")
        self.branch = nn.ModuleList([nn.Conv2d(channels, channels // 2, 1) for _ in range(4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(x)
        out2 = self.conv2(out1)
        out3 = self.conv3(out2)
        stages = [self.branch[0](x), self.branch[1](out1), self.branch[2](out2), self.branch[3](out3)]
        return self.att(self.fuse(torch.cat(stages, dim=1))) + x


class EFDN(nn.Module):
    """head 3x3 -> 4 cells with 1x1 cross-cell fusions -> global residual -> 3x3 conv + PixelShuffle ->
    clamp to 0..1.

    The official network has exactly four cells, fused as ``local_fuse[0](cell 1, cell 2)``,
    ``local_fuse[1](cell 2, cell 3)``, ``local_fuse[2](cell 2, cell 4)``.

    Args:
        in_channels, out_channels: image channels.
        feature_channels: width (48; even, as the branches are half width).
        esa_channels: ESA width (official: feature_channels // 4 = 12).
        upscale: scale factor.
    """

    min_input_size = ESA_MIN_INPUT

    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 48,
                 esa_channels: int | None = None, upscale: int = 4) -> None:
        super().__init__()
        if feature_channels % 2:
            raise ValueError(f"EFDN needs an even feature_channels, got {feature_channels}")
        esa_channels = esa_channels or feature_channels // 4
        self.head = nn.Conv2d(in_channels, feature_channels, 3, padding=1)
        self.cells = nn.ModuleList([Cell(feature_channels, esa_channels) for _ in range(4)])
        self.local_fuse = nn.ModuleList([nn.Conv2d(feature_channels * 2, feature_channels, 1) for _ in range(3)])
        self.tail = nn.Sequential(nn.Conv2d(feature_channels, out_channels * upscale**2, 3, padding=1),
                                  nn.PixelShuffle(upscale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out0 = self.head(x)
        out1 = self.cells[0](out0)
        out2 = self.cells[1](out1)
        out3 = self.cells[2](self.local_fuse[0](torch.cat([out1, out2], dim=1)))
        out4 = self.cells[3](self.local_fuse[1](torch.cat([out2, out3], dim=1)))
        out = self.local_fuse[2](torch.cat([out2, out4], dim=1)) + out0
        return self.tail(out).clamp(0.0, 1.0)


def rep_conv_paths(model: EFDN) -> list[str]:
    """Paths of every ``rep_conv`` (the convs EDBB trains)."""
    return [f"cells.{i}.{c}.rep_conv" for i in range(len(model.cells)) for c in ("conv2", "conv3")]


class EFDNRep(RepModelMixin, EFDN):
    """EFDN with an `EDBB` at every ``rep_conv`` (the training-time form). Args as `EFDN`, plus:

    Args:
        deploy: build the folded form (plain EFDN) directly.
        identity: EDBB identity branch (official ``with_idt``; off in the submission).
        expand_ratio: EDBB 1x1 -> 3x3 branch width (official ``with_13``; 0 = off, as in the submission).
    """

    def __init__(self, *args: Any, deploy: bool = False, identity: bool = False, expand_ratio: float = 0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not deploy:
            replace_convs(self, rep_conv_paths(self), lambda c: EDBB(c.in_channels, c.out_channels,
                                                                     identity=identity, expand_ratio=expand_ratio))


#: The registered forms' hyper-parameters (their builders' defaults; ESA width None = features // 4).
DEFAULTS: dict[str, dict] = {"efdn": {"feature_channels": 48, "esa_channels": None}}
REP_DEFAULTS: dict[str, dict] = {"efdn_rep": {**DEFAULTS["efdn"], "expand_ratio": 0}}

_PRETRAINED = [
    PretrainedCfg(
        name="efdn_x4", model="efdn", scale=4, filename="efdn_x4.pth",
        url="https://github.com/Amazingren/NTIRE2025_ESR/raw/main/model_zoo/team00_EFDN.pth",
        sha256="71069f10ef234cd123f45ac8e69099f0a1fdc0c16afcfe2189e50071d47ce477", input_range=1.0,
        expected={"Set5": (32.0537, 0.89366), "Set14": (28.5787, 0.78125), "BSD68": (27.7526, 0.75041)},
        license="MIT", source=_SOURCE, paper=_PAPER),
]


@register_model("efdn", scales=(2, 3, 4), input_range=1.0, paper=_PAPER, pretrained=_PRETRAINED,
                description="EFDN, 48 ch, 4 cells, ESA 12 (NTIRE 2023 ESR winner), deploy form")
def efdn(scale: int = 4, **cfg: Any) -> EFDN:
    return EFDN(**{**DEFAULTS["efdn"], "upscale": scale, **cfg})


efdn.tiny_cfg = {"feature_channels": 8, "esa_channels": 4}  # for fast tests


@register_model("efdn_rep", scales=(2, 3, 4), input_range=1.0, paper=_PAPER,
                description="EFDN with EDBB 3x3s for training; folds to plain EFDN")
def efdn_rep(scale: int = 4, **cfg: Any) -> EFDNRep:
    return EFDNRep(**{**DEFAULTS["efdn"], "upscale": scale, **cfg})


efdn_rep.tiny_cfg = {"feature_channels": 8, "esa_channels": 4}  # for fast tests


@register_detector("efdn")
def detect(shapes: Shapes) -> list[Candidate]:
    """Deploy form: ``cells.<i>.conv2.rep_conv.weight``; training form: EDBB's ``rep_conv.conv_3x3`` etc. EDBB's
    identity branch has no weights, so it cannot be read back (off in the official submission)."""
    features = shapes.dim("head.weight", 0)
    esa = shapes.dim("cells.0.att.conv1.weight", 0)
    scale = pixel_shuffle_scale(shapes.dim("tail.0.weight", 0))
    if not features or not esa or not scale:
        return []
    config = {"feature_channels": features, "esa_channels": None if esa == features // 4 else esa}
    if "cells.0.conv2.rep_conv.conv_3x3.weight" in shapes:
        mid = shapes.dim("cells.0.conv2.rep_conv.expand.weight", 0) or 0
        ratio = mid / features
        return ranked({**config, "expand_ratio": int(ratio) if ratio == int(ratio) else ratio}, scale, REP_DEFAULTS)
    return ranked(config, scale, DEFAULTS)
