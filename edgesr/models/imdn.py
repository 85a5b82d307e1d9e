"""IMDN: Information Multi-distillation Network (Hui et al., ACM MM 2019), NTIRE 2022 ESR baseline.

Layer names follow KAIR's IMDN (the NTIRE 2022 ESR baseline code): `model.0` head conv,
`model.1.sub` the body of IMDBs plus a conv under a long skip, `model.2`/`model.3` the
pixel-shuffle upsampler. Native range 0..1.
"""
from __future__ import annotations

import torch
from torch import nn

from edgesr.layers import ValueScale
from edgesr.models.detect import Candidate, Shapes, pixel_shuffle_scale, ranked, register_detector
from edgesr.models.registry import PretrainedCfg, register_model

_PAPER = "Lightweight Image Super-Resolution with Information Multi-distillation Network (ACM MM 2019)"


def _conv_lrelu(in_ch: int, out_ch: int, slope: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.LeakyReLU(negative_slope=slope))


class IMDBlock(nn.Module):
    """Progressive refinement: split off d channels after each conv, fuse the four with a 1x1."""

    def __init__(self, channels: int = 64, d_rate: float = 0.25, negative_slope: float = 0.05) -> None:
        super().__init__()
        self.d_nc = int(channels * d_rate)
        self.r_nc = channels - self.d_nc
        self.conv1 = _conv_lrelu(channels, channels, negative_slope)
        self.conv2 = _conv_lrelu(self.r_nc, channels, negative_slope)
        self.conv3 = _conv_lrelu(self.r_nc, channels, negative_slope)
        self.conv4 = nn.Conv2d(self.r_nc, self.d_nc, 3, padding=1)
        self.conv1x1 = nn.Conv2d(self.d_nc * 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1, r1 = torch.split(self.conv1(x), (self.d_nc, self.r_nc), dim=1)
        d2, r2 = torch.split(self.conv2(r1), (self.d_nc, self.r_nc), dim=1)
        d3, r3 = torch.split(self.conv3(r2), (self.d_nc, self.r_nc), dim=1)
        d4 = self.conv4(r3)
        return x + self.conv1x1(torch.cat((d1, d2, d3, d4), dim=1))


class ShortcutBlock(nn.Module):
    """x + sub(x); the attribute name `sub` matches KAIR's checkpoints."""

    def __init__(self, sub: nn.Module) -> None:
        super().__init__()
        self.sub = sub

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sub(x)


class IMDN(nn.Module):
    min_input_size = 1

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nc: int = 64, nb: int = 8, upscale: int = 4,
                 negative_slope: float = 0.05, input_range: float = 1.0) -> None:
        super().__init__()
        self.to_native = ValueScale(input_range)
        body = [IMDBlock(nc, negative_slope=negative_slope) for _ in range(nb)]
        body.append(nn.Conv2d(nc, nc, 3, padding=1))
        self.model = nn.Sequential(
            nn.Conv2d(in_nc, nc, 3, padding=1),
            ShortcutBlock(nn.Sequential(*body)),
            nn.Conv2d(nc, out_nc * upscale**2, 3, padding=1),
            nn.PixelShuffle(upscale),
        )
        self.from_native = ValueScale(1.0 / input_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_native(self.model(self.to_native(x)))


@register_model("imdn", scales=(2, 3, 4), input_range=1.0, paper=_PAPER,
                description="IMDN, 64 ch, 8 IMDB (NTIRE 2022 ESR baseline)", pretrained=[
    PretrainedCfg(
        name="imdn_x4", model="imdn", scale=4, filename="imdn_baseline.pth",
        url="https://github.com/ofsoundof/NTIRE2022_ESR/raw/main/model_zoo/imdn_baseline.pth",
        sha256="115b4cc557eba9daaf1a6543c4858014c7e2a410655aafef7c8348ae54acc203", input_range=1.0,
        expected={"Set5": (32.2398, 0.89644), "Set14": (28.6775, 0.78417), "BSD68": (27.8345, 0.75338)},
        license="MIT", source="github.com/ofsoundof/NTIRE2022_ESR", paper=_PAPER),
])
def imdn(scale: int = 4, **cfg) -> IMDN:
    return IMDN(**{**DEFAULTS["imdn"], "upscale": scale, **cfg})


DEFAULTS = {"imdn": {"nc": 64, "nb": 8}}


@register_detector("imdn")
def detect(shapes: Shapes) -> list[Candidate]:
    config = {"nc": shapes.dim("model.0.weight", 0), "nb": shapes.count("model.1.sub.{}.conv1.0.weight")}
    scale = pixel_shuffle_scale(shapes.dim("model.2.weight", 0))
    return ranked(config, scale, DEFAULTS) if scale and config["nb"] else []
