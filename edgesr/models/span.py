"""SPAN: Swift Parameter-free Attention Network (Wan et al., CVPRW 2024), NTIRE 2024 ESR winner.

Two registered forms, one architecture:

* ``span`` -- the deploy form the official checkpoint holds (``team38_span_ch28_slim.pth``): every conv
  site is one 3x3 conv under the official name ``<site>.eval_conv``;
* ``span_rep`` -- the training-time form: each ``<site>.eval_conv`` is a `Conv3XC` (1x1 skip + 1x1 -> 3x3
  -> 1x1 chain with channel gain 2). ``edgesr.transforms.reparameterize(model, passes=["repconv"])``
  (or ``model.reparameterize()``) folds each into one ``nn.Conv2d`` at the same path, after which the
  model has exactly the deploy form's state_dict (loadable strictly into ``create_model("span")``).

The network subtracts the DIV2K RGB mean and multiplies by 255 on the way in (`ValueShift`, `ValueScale`),
and, as the official code, adds nothing back: its output is 0..1 directly. It is purely local (no pooling,
no global op): tiling with a halo of `tiling_halo` LR pixels (its receptive radius) is exact.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from edgesr.layers import PixelShuffleUpsampler, ValueScale, ValueShift
from edgesr.layers.conv3xc import Conv3XC
from edgesr.layers.mean_shift import DIV2K_RGB_MEAN
from edgesr.layers.reparam import replace_convs
from edgesr.models.detect import Candidate, Shapes, pixel_shuffle_scale, ranked, register_detector
from edgesr.models.registry import PretrainedCfg, register_model
from edgesr.models.rlfn_rep import RepModelMixin

_PAPER = "Swift Parameter-free Attention Network for Efficient Super-Resolution (CVPRW 2024)"
_SOURCE = "github.com/Amazingren/NTIRE2024_ESR"


def conv_site(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 conv reachable as ``.eval_conv``, where the official Conv3XC keeps its folded conv."""
    return nn.Sequential(OrderedDict(eval_conv=nn.Conv2d(in_channels, out_channels, 3, padding=1)))


class SPAB(nn.Module):
    """Swift parameter-free attention block: three 3x3 convs with SiLU between them, then
    ``(out3 + x) * (sigmoid(out3) - 0.5)``. Returns the block output and the first conv's activated
    output, which SPAN concatenates for its last block (the official code's in-place SiLU overwrites the
    first conv's output with its activation before returning it)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.c1_r = conv_site(channels, channels)
        self.c2_r = conv_site(channels, channels)
        self.c3_r = conv_site(channels, channels)
        self.act1 = nn.SiLU()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out1 = self.act1(self.c1_r(x))
        out2 = self.c2_r(out1)
        out3 = self.c3_r(self.act1(out2))
        attention = torch.sigmoid(out3) - 0.5
        return (out3 + x) * attention, out1


class SPAN(nn.Module):
    """conv_1 -> N x SPAB -> conv_2; concat [head, conv_2, block 1's output, block N's activated first
    conv] -> 1x1 -> pixel-shuffle upsampler.

    Args:
        in_channels, out_channels: image channels.
        feature_channels: width of every block (28 in the NTIRE 2024 submission, 48 in the paper).
        num_blocks: SPABs (6 in the official network).
        upscale: scale factor.
        rgb_mean: per-channel mean subtracted from the 0..1 input.
        img_range: factor applied after the subtraction.
    """

    min_input_size = 1

    def __init__(self, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 48,
                 num_blocks: int = 6, upscale: int = 4, rgb_mean: tuple[float, ...] = DIV2K_RGB_MEAN,
                 img_range: float = 255.0) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"SPAN needs at least one block, got {num_blocks}")
        self.num_blocks = num_blocks
        self.sub_mean = ValueShift(rgb_mean)
        self.to_native = ValueScale(img_range)
        self.conv_1 = conv_site(in_channels, feature_channels)
        for i in range(1, num_blocks + 1):
            self.add_module(f"block_{i}", SPAB(feature_channels))
        self.conv_cat = nn.Conv2d(feature_channels * 4, feature_channels, 1)
        self.conv_2 = conv_site(feature_channels, feature_channels)
        self.upsampler = PixelShuffleUpsampler(feature_channels, out_channels, upscale)

    @property
    def tiling_halo(self) -> int:
        """Receptive radius in LR pixels: conv_1, three 3x3 per block, conv_2, the upsampler conv."""
        return 3 * self.num_blocks + 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.conv_1(self.to_native(self.sub_mean(x)))
        out = head
        for i in range(1, self.num_blocks + 1):
            out, first_conv = getattr(self, f"block_{i}")(out)
            if i == 1:
                out_b1 = out
        # `first_conv` is now the last block's activated first-conv output (the official `out_b5_2`).
        body = self.conv_2(out)
        return self.upsampler(self.conv_cat(torch.cat([head, body, out_b1, first_conv], 1)))


def conv_site_paths(model: SPAN) -> list[str]:
    """Paths of every ``eval_conv`` (the convs Conv3XC trains)."""
    blocks = [f"block_{i}.{c}" for i in range(1, model.num_blocks + 1) for c in ("c1_r", "c2_r", "c3_r")]
    return [f"{site}.eval_conv" for site in ["conv_1", *blocks, "conv_2"]]


class SPANRep(RepModelMixin, SPAN):
    """SPAN with `Conv3XC` at every ``eval_conv`` (the official training-time form). Args as `SPAN`, plus:

    Args:
        deploy: build the folded form (plain SPAN) directly.
        gain: channel gain of Conv3XC's 1x1 -> 3x3 -> 1x1 chain (2 in the official code).
    """

    def __init__(self, *args: Any, deploy: bool = False, gain: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not deploy:
            replace_convs(self, conv_site_paths(self), lambda c: Conv3XC(c.in_channels, c.out_channels, gain=gain))


#: The registered forms' hyper-parameters (their builders' defaults; span_rep adds Conv3XC's gain).
DEFAULTS: dict[str, dict] = {"span": {"feature_channels": 48, "num_blocks": 6}}
REP_DEFAULTS: dict[str, dict] = {"span_rep": {**DEFAULTS["span"], "gain": 2}}

_PRETRAINED = [
    PretrainedCfg(
        name="span_ch28_x4", model="span", scale=4, filename="span_ch28_x4.pth",
        url="https://github.com/Amazingren/NTIRE2024_ESR/raw/main/model_zoo/team38_span_ch28_slim.pth",
        sha256="6c80f05048313289c6526e5fc9726688d7bb3dfdd6ae3c8b1e7dd09f601e5971", input_range=1.0,
        expected={"Set5": (31.7165, 0.89024), "Set14": (28.3879, 0.77707), "BSD68": (27.6410, 0.74599)},
        config={"feature_channels": 28}, license="MIT", source=_SOURCE, paper=_PAPER),
]


@register_model("span", scales=(2, 3, 4), input_range=1.0, paper=_PAPER, pretrained=_PRETRAINED,
                description="SPAN, 48 ch (28 in the NTIRE 2024 winner), 6 SPAB, deploy form")
def span(scale: int = 4, **cfg: Any) -> SPAN:
    return SPAN(**{**DEFAULTS["span"], "upscale": scale, **cfg})


span.tiny_cfg = {"feature_channels": 8, "num_blocks": 2}  # for fast tests


@register_model("span_rep", scales=(2, 3, 4), input_range=1.0, paper=_PAPER,
                description="SPAN with Conv3XC for training (official training form); folds to plain SPAN")
def span_rep(scale: int = 4, **cfg: Any) -> SPANRep:
    return SPANRep(**{**DEFAULTS["span"], "upscale": scale, **cfg})


span_rep.tiny_cfg = {"feature_channels": 8, "num_blocks": 2}  # for fast tests


@register_detector("span")
def detect(shapes: Shapes) -> list[Candidate]:
    """Deploy form: ``<site>.eval_conv.weight``; training form: Conv3XC's ``<site>.eval_conv.skip`` etc."""
    scale = pixel_shuffle_scale(shapes.dim("upsampler.0.weight", 0))
    if not scale:
        return []
    if "conv_1.eval_conv.weight" in shapes:
        config = {"feature_channels": shapes["conv_1.eval_conv.weight"][0],
                  "num_blocks": shapes.count("block_{}.c1_r.eval_conv.weight", start=1)}
        return ranked(config, scale, DEFAULTS)
    if "conv_1.eval_conv.skip.weight" in shapes:
        features = shapes["conv_1.eval_conv.skip.weight"][0]
        config = {"feature_channels": features, "num_blocks": shapes.count("block_{}.c1_r.eval_conv.skip.weight", 1),
                  "gain": shapes["conv_1.eval_conv.conv.weight"][0] // features}
        return ranked(config, scale, REP_DEFAULTS)
    return []
