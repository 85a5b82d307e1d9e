"""IMDN: Information Multi-distillation Network (Hui et al., ACM MM 2019), NTIRE 2022 ESR baseline.

Layer names follow KAIR's IMDN (the NTIRE 2022 ESR baseline code): `model.0` head conv,
`model.1.sub` the body of IMDBs plus a conv under a long skip, `model.2`/`model.3` the
pixel-shuffle upsampler. Native range 0..1.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from edgesr.errors import UserInputError
from edgesr.layers import ValueScale
from edgesr.models.detect import Candidate, Shapes, pixel_shuffle_scale, ranked, register_detector
from edgesr.models.registry import PretrainedCfg, register_model
from edgesr.models.widths import ConfigSplits

_PAPER = "Lightweight Image Super-Resolution with Information Multi-distillation Network (ACM MM 2019)"


def _conv_lrelu(in_ch: int, out_ch: int, slope: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.LeakyReLU(negative_slope=slope))


Splits = Sequence[Sequence[int]]


class IMDBlock(ConfigSplits):
    """Progressive refinement: split off distilled channels after each conv, fuse the four with a 1x1.

    `splits` holds the (distilled, remaining) sizes of the conv1, conv2 and conv3 outputs; the paper's
    are (c/4, 3c/4) each. They are config rather than code so that pruning may change them (every conv
    of the block is then prunable, `edgesr.models.widths.ConfigSplits`): conv1 is built with d1 + r1
    outputs, conv2 reads r1, and so on.
    """

    def __init__(self, channels: int = 64, d_rate: float = 0.25, negative_slope: float = 0.05,
                 splits: Splits | None = None) -> None:
        super().__init__()
        distilled = int(channels * d_rate)
        self.split_sizes = _block_splits(splits, (distilled, channels - distilled))
        (d1, r1), (d2, r2), (d3, r3) = self.split_sizes
        self.conv1 = _conv_lrelu(channels, d1 + r1, negative_slope)
        self.conv2 = _conv_lrelu(r1, d2 + r2, negative_slope)
        self.conv3 = _conv_lrelu(r2, d3 + r3, negative_slope)
        self.conv4 = nn.Conv2d(r3, distilled, 3, padding=1)
        self.conv1x1 = nn.Conv2d(d1 + d2 + d3 + distilled, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1, s2, s3 = self.split_sizes
        d1, r1 = torch.split(self.conv1(x), s1, dim=1)
        d2, r2 = torch.split(self.conv2(r1), s2, dim=1)
        d3, r3 = torch.split(self.conv3(r2), s3, dim=1)
        d4 = self.conv4(r3)
        return x + self.conv1x1(torch.cat((d1, d2, d3, d4), dim=1))


def _block_splits(splits: Splits | None, default: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    if splits is None:
        return (default,) * 3
    pairs = tuple(tuple(p) for p in splits) if isinstance(splits, (list, tuple)) else ()
    if len(pairs) != 3 or any(len(p) != 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in p)
                              for p in pairs):
        raise UserInputError(f"an IMDN block's splits are three [distilled, remaining] pairs of positive channel "
                             f"counts (for conv1, conv2, conv3), got {splits!r}.")
    return pairs  # type: ignore[return-value]


class ShortcutBlock(nn.Module):
    """x + sub(x); the attribute name `sub` matches KAIR's checkpoints."""

    def __init__(self, sub: nn.Module) -> None:
        super().__init__()
        self.sub = sub

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sub(x)


class IMDN(nn.Module):
    min_input_size = 1

    """IMDN; `splits` (optional) gives every block's (distilled, remaining) sizes of conv1..conv3, one list of
    three pairs per block: a pruned IMDN's config (the default is the paper's nc/4, 3nc/4 everywhere)."""

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nc: int = 64, nb: int = 8, upscale: int = 4,
                 negative_slope: float = 0.05, input_range: float = 1.0,
                 splits: Sequence[Splits] | None = None) -> None:
        super().__init__()
        if splits is not None and (not isinstance(splits, (list, tuple)) or len(splits) != nb):
            raise UserInputError(f"IMDN splits must list one entry per block ({nb}), got {splits!r}.")
        self.to_native = ValueScale(input_range)
        body = [IMDBlock(nc, negative_slope=negative_slope, splits=None if splits is None else splits[i])
                for i in range(nb)]
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

    def split_config(self, sizes: Mapping[str, Splits]) -> dict[str, Any]:
        """``{"splits": ...}`` with the blocks at `sizes` (module path -> three pairs), others unchanged."""
        blocks = [(path, m) for path, m in self.named_modules() if isinstance(m, IMDBlock)]
        return {"splits": [[list(p) for p in sizes.get(path, m.split_sizes)] for path, m in blocks]}


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
    nc, nb = shapes.dim("model.0.weight", 0), shapes.count("model.1.sub.{}.conv1.0.weight")
    config: dict[str, Any] = {"nc": nc, "nb": nb}
    splits = [_read_splits(shapes, f"model.1.sub.{i}") for i in range(nb)]
    distilled = int(nc * 0.25)
    if any(s != [[distilled, nc - distilled]] * 3 for s in splits):  # a pruned IMDN: its split sizes
        config["splits"] = splits
    scale = pixel_shuffle_scale(shapes.dim("model.2.weight", 0))
    return ranked(config, scale, DEFAULTS) if scale and nb else []


def _read_splits(shapes: Shapes, block: str) -> list[list[int]]:
    """(distilled, remaining) of conv1..conv3: remaining = the next conv's inputs, distilled = the rest."""
    out = [shapes.dim(f"{block}.conv{k}.0.weight", 0) for k in (1, 2, 3)]
    rest = [shapes.dim(f"{block}.conv{k}.0.weight", 1) for k in (2, 3)] + [shapes.dim(f"{block}.conv4.weight", 1)]
    return [[o - r, r] for o, r in zip(out, rest)]
