"""DRN: Distilling with Residual Network for Single Image Super Resolution.

Xiaopeng Sun, Wen Lu, Rui Wang, Furui Bai (Xidian University), arXiv:1907.02843, 2019. (edgesr's design
brief cites it as "Jiang et al., ICME 2019"; the arXiv record names the authors above. The venue was not
checked.) Not the "dual regression network" (Guo et al., CVPR 2020), which shares the acronym.

No official code or weights are available to edgesr, so this is a re-implementation from the paper's
description; only the abstract and the project's summary of the method were at hand, not the full text
(no figures, no tables). What is taken from the paper and what is edgesr's choice:

From the paper (abstract + summary)
  - Overall layout: a local feature extraction (LFE) conv, a stack of residual distilling groups (RDG),
    a global residual connection, and pixel-shuffle reconstruction.
  - Residual distilling block (RDB) with two branches: one performs a residual operation, the other
    distils (keeps) part of the features; the two are concatenated and compressed by a 1x1 conv followed
    by ELU.
  - RDG = several RDBs plus one long skip connection (local features fused with the group input).
  - Trained with the mean absolute error (L1) loss: ``DRN.default_loss == "l1"``.

edgesr's choices (hyper-parameters and exact wiring the description leaves open)
  - RDB wiring, for C = `n_feats` channels and d = `distilled` channels::

        y = ReLU(conv3x3_{C->C}(x))                              conv1
        kept, rest = y[:, :d], y[:, d:]                          channel split (distillation)
        res = conv3x3_{C-d -> C}(rest) + x                       conv2, residual branch
        out = ELU(conv1x1_{d+C -> C}(cat(kept, res)))            compress

    ReLU inside the block, ELU only after the 1x1 compression.
  - Defaults: C = 64, d = 16, 4 RDGs x 4 RDBs; a 3x3 conv (`fusion`) after the RDGs before the global
    skip (as EDSR's last body conv); the global skip adds the LFE output (feature space, not an
    interpolated image); reconstruction = EDSR-PyTorch Upsampler (x2, x4 = two x2 stages, x3) then a
    3x3 conv to RGB. Default size: 1,453,059 parameters at x4 (EDSR-baseline: 1,517,571).
  - State-dict keys: ``lfe``, ``rdgs.{g}.body.{b}.{conv1,conv2,compress}``, ``fusion``,
    ``upsampler.{0,2}`` (x4; ``upsampler.0`` at x2/x3), ``reconstruction``.
  - Native range 0..1 (no MeanShift, no value scaling); default PyTorch initialisation.
  - Published PSNR figures are not reproduced here: there are no weights to check against.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgesr.errors import UserInputError
from edgesr.models.detect import Candidate, Shapes, ranked, register_detector
from edgesr.models.edsr import (SUPPORTED_SCALES, Upsampler, build_variant, check_scale, default_conv,
                                read_upsampler_scale)
from edgesr.models.registry import register_model

_PAPER = ("Sun, Lu, Wang, Bai, Distilling with Residual Network for Single Image Super Resolution, "
          "arXiv:1907.02843 (2019)")


class ResidualDistillingBlock(nn.Module):
    """RDB: split the first conv's output into a distilled part and a part that goes through a residual
    conv, concatenate both and compress with a 1x1 conv + ELU. Keeps `n_feats` channels in and out."""

    def __init__(self, n_feats: int, distilled: int, kernel_size: int = 3) -> None:
        super().__init__()
        if not 0 < distilled < n_feats:
            raise UserInputError(f"DRN needs 0 < distilled < n_feats, got distilled={distilled}, "
                                 f"n_feats={n_feats}.")
        self.distilled = int(distilled)
        self.conv1 = default_conv(n_feats, n_feats, kernel_size)
        self.act = nn.ReLU()
        self.conv2 = default_conv(n_feats - distilled, n_feats, kernel_size)
        self.compress = nn.Conv2d(distilled + n_feats, n_feats, 1)
        self.elu = nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv1(x))
        kept = y[:, : self.distilled]
        res = self.conv2(y[:, self.distilled:]) + x
        return self.elu(self.compress(torch.cat((kept, res), 1)))

    def extra_repr(self) -> str:
        return f"distilled={self.distilled}"


class ResidualDistillingGroup(nn.Module):
    """RDG: `n_blocks` RDBs and one long skip connection from the group input."""

    def __init__(self, n_feats: int, distilled: int, n_blocks: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(*[ResidualDistillingBlock(n_feats, distilled, kernel_size)
                                    for _ in range(n_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class DRN(nn.Module):
    """Distilling with Residual Network. Takes and returns RGB in 0..1 (NCHW), also natively.

    Args:
        scale: upscaling factor (2, 3 or 4).
        n_feats: feature channels (64).
        n_groups: residual distilling groups (4).
        n_blocks: residual distilling blocks per group (4).
        distilled: channels kept by each block's distillation branch (16).
        kernel_size: conv kernel size (3).
    """

    default_loss = "l1"

    def __init__(self, scale: int = 4, n_feats: int = 64, n_groups: int = 4, n_blocks: int = 4,
                 distilled: int = 16, kernel_size: int = 3) -> None:
        super().__init__()
        self.scale = check_scale(scale)
        if n_feats < 2 or n_groups < 1 or n_blocks < 1:
            raise UserInputError(f"DRN needs n_feats >= 2, n_groups >= 1, n_blocks >= 1, got "
                                 f"{n_feats}, {n_groups}, {n_blocks}.")
        self.lfe = default_conv(3, n_feats, kernel_size)
        self.rdgs = nn.Sequential(*[ResidualDistillingGroup(n_feats, distilled, n_blocks, kernel_size)
                                    for _ in range(n_groups)])
        self.fusion = default_conv(n_feats, n_feats, kernel_size)
        self.upsampler = Upsampler(scale, n_feats)
        self.reconstruction = default_conv(n_feats, 3, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lfe(x)
        x = self.fusion(self.rdgs(x)) + x
        return self.reconstruction(self.upsampler(x))

    @staticmethod
    def remap_state_dict(sd: dict[str, Any]) -> dict[str, Any]:
        """No official checkpoints exist; edgesr's own keys are used as they are."""
        return dict(sd)


@register_model("drn", scales=SUPPORTED_SCALES, input_range=1.0, paper=_PAPER,
                description="DRN (distilling with residual network): 4 RDG x 4 RDB, 64 features, "
                            "16 distilled (1.45 M params at x4)")
def drn(scale: int, **cfg: Any) -> DRN:
    return build_variant(DRN, DEFAULTS["drn"], scale, cfg)


drn.tiny_cfg = {"n_feats": 8, "n_groups": 2, "n_blocks": 2, "distilled": 2}  # for fast tests

DEFAULTS = {"drn": {"n_feats": 64, "n_groups": 4, "n_blocks": 4, "distilled": 16, "kernel_size": 3}}


@register_detector("drn")
def detect(shapes: Shapes) -> list[Candidate]:
    n_feats = shapes.dim("lfe.weight", 0)
    narrow = shapes.dim("rdgs.0.body.0.conv2.weight", 1)
    if not n_feats or not narrow:
        return []
    config = {"n_feats": n_feats, "n_groups": shapes.count("rdgs.{}.body.0.conv1.weight"),
              "n_blocks": shapes.count("rdgs.0.body.{}.conv1.weight"), "distilled": n_feats - narrow,
              "kernel_size": shapes.dim("lfe.weight", 2)}
    scale = read_upsampler_scale(shapes, "upsampler", n_feats)
    return ranked(config, scale, DEFAULTS) if scale else []
