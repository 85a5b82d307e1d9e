"""RFDN: Residual Feature Distillation Network (Liu et al., ECCVW 2020; AIM 2020 ESR winner).

Layer names follow the official code (also in github.com/ofsoundof/NTIRE2022_ESR), so the
official checkpoint loads strictly. Native range 0..255.
"""
from __future__ import annotations

import torch
from torch import nn

from edgesr.layers import PixelShuffleUpsampler, ValueScale, conv_layer
from edgesr.layers.esa import ESA, ESA_MIN_INPUT
from edgesr.models.detect import Candidate, Shapes, pixel_shuffle_scale, ranked, register_detector
from edgesr.models.registry import PretrainedCfg, register_model

_PAPER = "Residual Feature Distillation Network for Lightweight Image Super-Resolution (ECCVW 2020)"


class RFDB(nn.Module):
    """Residual feature distillation block: 3 shallow residual steps with 1x1 distillation taps."""

    def __init__(self, in_channels: int, distilled_channels: int | None = None, esa_channels: int | None = None) -> None:
        super().__init__()
        dc = distilled_channels or in_channels // 2
        rc = in_channels
        self.c1_d = conv_layer(in_channels, dc, 1)
        self.c1_r = conv_layer(in_channels, rc, 3)
        self.c2_d = conv_layer(rc, dc, 1)
        self.c2_r = conv_layer(rc, rc, 3)
        self.c3_d = conv_layer(rc, dc, 1)
        self.c3_r = conv_layer(rc, rc, 3)
        self.c4 = conv_layer(rc, dc, 3)
        self.act = nn.LeakyReLU(negative_slope=0.05)
        self.c5 = conv_layer(dc * 4, in_channels, 1)
        self.esa = ESA(esa_channels or in_channels // 4, in_channels, variant="rfdn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distilled_c1 = self.act(self.c1_d(x))
        r_c1 = self.act(self.c1_r(x) + x)
        distilled_c2 = self.act(self.c2_d(r_c1))
        r_c2 = self.act(self.c2_r(r_c1) + r_c1)
        distilled_c3 = self.act(self.c3_d(r_c2))
        r_c3 = self.act(self.c3_r(r_c2) + r_c2)
        r_c4 = self.act(self.c4(r_c3))
        out = torch.cat([distilled_c1, distilled_c2, distilled_c3, r_c4], dim=1)
        return self.esa(self.c5(out))


class RFDN(nn.Module):
    """fea_conv -> N x RFDB -> concat -> 1x1 (c) -> LR_conv (+ long skip) -> upsampler."""

    min_input_size = ESA_MIN_INPUT

    def __init__(self, in_nc: int = 3, nf: int = 50, num_modules: int = 4, out_nc: int = 3, upscale: int = 4,
                 input_range: float = 255.0) -> None:
        super().__init__()
        self.to_native = ValueScale(input_range)
        self.fea_conv = conv_layer(in_nc, nf, 3)
        self.num_modules = num_modules
        for i in range(1, num_modules + 1):
            self.add_module(f"B{i}", RFDB(nf))
        self.c = nn.Sequential(conv_layer(nf * num_modules, nf, 1), nn.LeakyReLU(negative_slope=0.05))
        self.LR_conv = conv_layer(nf, nf, 3)
        self.upsampler = PixelShuffleUpsampler(nf, out_nc, upscale)
        self.from_native = ValueScale(1.0 / input_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_native(x)
        out_fea = self.fea_conv(x)
        outs = []
        out = out_fea
        for i in range(1, self.num_modules + 1):
            out = getattr(self, f"B{i}")(out)
            outs.append(out)
        out_b = self.c(torch.cat(outs, dim=1))
        out_lr = self.LR_conv(out_b) + out_fea
        return self.from_native(self.upsampler(out_lr))


@register_model("rfdn", scales=(2, 3, 4), input_range=255.0, paper=_PAPER,
                description="RFDN, 50 ch, 4 RFDB (AIM 2020 ESR winner)", pretrained=[
    PretrainedCfg(
        name="rfdn_x4", model="rfdn", scale=4, filename="rfdn_baseline.pth",
        url="https://github.com/ofsoundof/NTIRE2022_ESR/raw/main/model_zoo/rfdn_baseline.pth",
        sha256="11af8ec8ebd68689e90ef1e29044f9804c72d3bd9f7573820b7b26035782760c", input_range=255.0,
        expected={"Set5": (32.1432, 0.89501), "Set14": (28.6380, 0.78282), "BSD68": (27.8056, 0.75207)},
        license="MIT", source="github.com/ofsoundof/NTIRE2022_ESR", paper=_PAPER),
])
def rfdn(scale: int = 4, **cfg) -> RFDN:
    return RFDN(**{**DEFAULTS["rfdn"], "upscale": scale, **cfg})


DEFAULTS = {"rfdn": {"nf": 50, "num_modules": 4}}


def read_rfdn_config(shapes: Shapes, conv: str = "{}") -> tuple[dict, int | None]:
    """(RFDN hyper-parameters, scale) from key names and shapes (`conv` as in `read_rlfn_config`)."""
    config = {"nf": shapes.dim(conv.format("fea_conv") + ".weight", 0),
              "num_modules": shapes.count("B{}.c5.weight", start=1)}
    return config, pixel_shuffle_scale(shapes.dim("upsampler.0.weight", 0))


@register_detector("rfdn")
def detect(shapes: Shapes) -> list[Candidate]:
    config, scale = read_rfdn_config(shapes)
    return ranked(config, scale, DEFAULTS) if scale and "fea_conv.weight" in shapes else []
