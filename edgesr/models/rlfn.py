"""RLFN: Residual Local Feature Network (Kong et al., CVPRW 2022), and its NTIRE 2022 variant.

Layer names follow github.com/bytedance/RLFN so the official checkpoints load strictly.
The network natively works on 0..255; `to_native`/`from_native` adapt edgesr's 0..1 I/O.
"""
from __future__ import annotations

import torch
from torch import nn

from edgesr.layers import PixelShuffleUpsampler, ValueScale, conv_layer
from edgesr.layers.esa import ESA, ESA_MIN_INPUT
from edgesr.models.detect import Candidate, Shapes, pixel_shuffle_scale, ranked, register_detector
from edgesr.models.registry import PretrainedCfg, register_model

_PAPER = "Residual Local Feature Network for Efficient Super-Resolution (CVPRW 2022)"
_URL = "https://github.com/bytedance/RLFN/raw/main/model_zoo/{}"
_LICENSE = "Apache-2.0"


class RLFB(nn.Module):
    """Residual local feature block: three conv3x3+LReLU with a local skip, conv1x1, ESA."""

    def __init__(self, in_channels: int, mid_channels: int | None = None, out_channels: int | None = None,
                 esa_channels: int = 16) -> None:
        super().__init__()
        mid_channels = mid_channels or in_channels
        out_channels = out_channels or in_channels
        self.c1_r = conv_layer(in_channels, mid_channels, 3)
        self.c2_r = conv_layer(mid_channels, mid_channels, 3)
        self.c3_r = conv_layer(mid_channels, in_channels, 3)
        self.c5 = conv_layer(in_channels, out_channels, 1)
        self.esa = ESA(esa_channels, out_channels, variant="rlfn")
        self.act = nn.LeakyReLU(negative_slope=0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out))
        out = out + x
        return self.esa(self.c5(out))


class RLFN(nn.Module):
    """conv_1 -> N x RLFB -> conv_2 (+ long skip) -> pixel-shuffle upsampler."""

    min_input_size = ESA_MIN_INPUT

    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 52,
                 mid_channels: int | None = None, esa_channels: int = 16, num_blocks: int = 6,
                 upscale: int = 4, input_range: float = 255.0) -> None:
        super().__init__()
        self.to_native = ValueScale(input_range)
        self.conv_1 = conv_layer(in_channels, feature_channels, 3)
        self.num_blocks = num_blocks
        for i in range(1, num_blocks + 1):
            self.add_module(f"block_{i}", RLFB(feature_channels, mid_channels, esa_channels=esa_channels))
        self.conv_2 = conv_layer(feature_channels, feature_channels, 3)
        self.upsampler = PixelShuffleUpsampler(feature_channels, out_channels, upscale)
        self.from_native = ValueScale(1.0 / input_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_native(x)
        out_feature = self.conv_1(x)
        out = out_feature
        for i in range(1, self.num_blocks + 1):
            out = getattr(self, f"block_{i}")(out)
        out = self.conv_2(out) + out_feature
        return self.from_native(self.upsampler(out))


#: The registered RLFN variants' hyper-parameters (their builders' defaults).
DEFAULTS: dict[str, dict] = {
    "rlfn": {"feature_channels": 52, "mid_channels": None, "num_blocks": 6, "esa_channels": 16},
    "rlfn_s": {"feature_channels": 48, "mid_channels": None, "num_blocks": 6, "esa_channels": 16},
    "rlfn_ntire": {"feature_channels": 46, "mid_channels": 48, "num_blocks": 4, "esa_channels": 16},
}


def _cfg(name: str, model: str, scale: int, sha: str, expected: dict, config: dict | None = None,
         filename: str | None = None) -> PretrainedCfg:
    filename = filename or f"{name}.pth"
    return PretrainedCfg(name=name, model=model, scale=scale, filename=filename, url=_URL.format(filename),
                         sha256=sha, input_range=255.0, expected=expected, config=config or {},
                         license=_LICENSE, source="github.com/bytedance/RLFN", paper=_PAPER)


@register_model("rlfn", scales=(2, 3, 4), input_range=255.0, paper=_PAPER,
                description="RLFN, 52 ch, 6 RLFB, ESA 16 (NTIRE 2022 ESR runtime winner)", pretrained=[
    _cfg("rlfn_x4", "rlfn", 4, "8c7edb57dfc89048bafba29d591d4c27d4099964b4a9e22df23d6dc257a637c0",
         {"Set5": (32.2130, 0.89576), "Set14": (28.6032, 0.78171), "BSD68": (27.8028, 0.75158)}),
    _cfg("rlfn_x2", "rlfn", 2, "eafe5d5feeb122022453595c06d79160facdc157ae88deb02a44c50f5eba2d41",
         {"Set5": (38.0481, 0.96103), "Set14": (33.7036, 0.91941), "BSD68": (32.5023, 0.90796)}),
])
def rlfn(scale: int = 4, **cfg) -> RLFN:
    return RLFN(**{**DEFAULTS["rlfn"], "upscale": scale, **cfg})


@register_model("rlfn_s", scales=(2, 3, 4), input_range=255.0, paper=_PAPER,
                description="RLFN-S, 48 ch, 6 RLFB, ESA 16", pretrained=[
    _cfg("rlfn_s_x4", "rlfn_s", 4, "f769c5a88433786b2db0c2b24da6ca6c92a24c62344b9354a390f8a74388e89d",
         {"Set5": (32.2174, 0.89603), "Set14": (28.6068, 0.78196), "BSD68": (27.7768, 0.75109)}),
    _cfg("rlfn_s_x2", "rlfn_s", 2, "f5175f499f869c1b884c2552a1bcd6abd07ab352e3d8c8c9abe31b1deb60fe45",
         {"Set5": (38.0281, 0.96108), "Set14": (33.6138, 0.91755), "BSD68": (32.4727, 0.90740)}),
])
def rlfn_s(scale: int = 4, **cfg) -> RLFN:
    return RLFN(**{**DEFAULTS["rlfn_s"], "upscale": scale, **cfg})


@register_model("rlfn_ntire", scales=(2, 3, 4), input_range=255.0, paper=_PAPER,
                description="RLFN as submitted to NTIRE 2022 ESR: 4 RLFB, 46 feature / 48 mid ch", pretrained=[
    _cfg("rlfn_ntire_x4", "rlfn_ntire", 4, "3c9be7b9d7a4bece9b68c83a56a1ffb38010f76413d5f215be6b4be842e18fb2",
         {"Set5": (32.0809, 0.89440), "Set14": (28.5871, 0.78185), "BSD68": (27.7745, 0.75113)}),
])
def rlfn_ntire(scale: int = 4, **cfg) -> RLFN:
    return RLFN(**{**DEFAULTS["rlfn_ntire"], "upscale": scale, **cfg})


def read_rlfn_config(shapes: Shapes, conv: str = "{}") -> tuple[dict, int | None]:
    """(RLFN hyper-parameters, scale) from RLFN key names and shapes. `conv` maps a 3x3 conv's path to
    the key prefix of its weight ("{}" for plain convs, "{}.conv_kxk" for training-time RepConvs)."""
    features = shapes.dim(conv.format("conv_1") + ".weight", 0)
    mid = shapes.dim(conv.format("block_1.c1_r") + ".weight", 0)
    config = {"feature_channels": features, "mid_channels": None if mid == features else mid,
              "num_blocks": shapes.count("block_{}.c5.weight", start=1),
              "esa_channels": shapes.dim("block_1.esa.conv1.weight", 0)}
    return config, pixel_shuffle_scale(shapes.dim("upsampler.0.weight", 0))


@register_detector("rlfn")
def detect(shapes: Shapes) -> list[Candidate]:
    config, scale = read_rlfn_config(shapes)
    if not scale or "conv_1.weight" not in shapes:
        return []
    return ranked(config, scale, DEFAULTS)
