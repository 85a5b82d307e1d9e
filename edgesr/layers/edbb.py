"""EFDN's EDBB, the edge-enhanced diverse branch block (Wang, NTIRE 2023 ESR winner; after DBB and ECB):
a 3x3 conv trained as several linear branches, folded into one 3x3 conv for inference.

Training-time branches on the same input, summed (the caller applies the PReLU):

* ``conv_3x3``: 3x3 conv; ``conv_1x1``: 1x1 conv;
* ``sobel_x``, ``sobel_y``, ``laplacian`` (`EdgeBranch`): a 1x1 conv, then a fixed edge filter applied
  depthwise with a learned per-channel scale and bias; the filter reads the 1x1 output padded with that
  conv's bias (as in ECB), which keeps the branch exactly foldable;
* optional: the identity (``identity=True``) and a 1x1 -> 3x3 expand-squeeze branch (``expand_ratio > 0``,
  the official ``with_13``).

The fold is `ReparamConv.to_conv` over `branch_convs` (``fold_math.compose_convs`` with the depthwise
filter written dense by ``fold_math.ungroup``), not the official ``switch_to_deploy``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgesr.layers.reparam import ReparamConv, pad_with_bias
from edgesr.layers import fold_math

__all__ = ["EDBB", "EdgeBranch", "EDGE_FILTERS"]

#: The fixed 3x3 filters of EDBB's edge branches (rows top to bottom).
EDGE_FILTERS: dict[str, tuple[tuple[float, ...], ...]] = {
    "sobel_x": ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0)),
    "sobel_y": ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0)),
    "laplacian": ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0)),
}


class EdgeBranch(nn.Module):
    """1x1 conv, then ``scale_c * filter`` depthwise (+ ``bias_c``) on its bias-padded output.

    Args:
        in_channels, out_channels: channels.
        kernel: the fixed 3x3 filter (see `EDGE_FILTERS`); held as a non-persistent buffer.
        init_std: standard deviation of the initial scale and bias (1e-3 as in the official code, so the
            branch starts near zero).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[Sequence[float]],
                 init_std: float = 1e-3) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(in_channels, out_channels, 1)
        self.scale = nn.Parameter(torch.randn(out_channels, 1, 1, 1) * init_std)
        self.bias = nn.Parameter(torch.randn(out_channels) * init_std)
        mask = torch.tensor(kernel, dtype=torch.float32).view(1, 1, 3, 3).repeat(out_channels, 1, 1, 1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = pad_with_bias(self.conv1x1(x), self.conv1x1.bias, 1)
        return F.conv2d(mid, self.scale * self.mask, self.bias, groups=self.mask.shape[0])

    def depthwise_conv(self) -> nn.Conv2d:
        """The scaled filter as a 'same'-padded depthwise ``nn.Conv2d`` (its folded geometry)."""
        channels = self.mask.shape[0]
        conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels,
                         dtype=self.scale.dtype, device=self.scale.device)
        with torch.no_grad():
            conv.weight.copy_(self.scale * self.mask)
            conv.bias.copy_(self.bias)
        return conv

    def to_conv(self) -> nn.Conv2d:
        """The branch as one 3x3 conv on its input (exact)."""
        conv = fold_math.compose_convs(self.conv1x1, fold_math.ungroup(self.depthwise_conv()), pad_with_bias=True)
        if conv is None:  # pragma: no cover - built composable
            raise RuntimeError("EdgeBranch is not composable")
        return conv


class EDBB(ReparamConv):
    """3x3 + 1x1 + Sobel-x / Sobel-y / Laplacian branches (+ identity, + 1x1 -> 3x3); one 3x3 conv folded.

    Args:
        in_channels, out_channels: channels.
        identity: add the identity branch (needs in == out channels; official ``with_idt``).
        expand_ratio: width of the 1x1 -> 3x3 branch as a multiple of `out_channels`; 0 (default, as the
            NTIRE submission) drops it (official ``with_13`` / ``depth_multiplier``).
        deploy: build the folded single-conv form directly.
    """

    def __init__(self, in_channels: int, out_channels: int, identity: bool = False, expand_ratio: float = 0,
                 deploy: bool = False) -> None:
        super().__init__(in_channels, out_channels, 3, 1, deploy)
        if identity and in_channels != out_channels:
            raise ValueError("an identity branch needs in_channels == out_channels")
        self.has_identity = bool(identity)
        self.expand_ratio = expand_ratio
        if self.deploy:
            return
        self.conv_3x3 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv_1x1 = nn.Conv2d(in_channels, out_channels, 1)
        self.sobel_x = EdgeBranch(in_channels, out_channels, EDGE_FILTERS["sobel_x"])
        self.sobel_y = EdgeBranch(in_channels, out_channels, EDGE_FILTERS["sobel_y"])
        self.laplacian = EdgeBranch(in_channels, out_channels, EDGE_FILTERS["laplacian"])
        mid = int(round(expand_ratio * out_channels))
        if mid > 0:
            self.expand = nn.Conv2d(in_channels, mid, 1)
            # Declared with 'same' padding (its folded geometry); forward pads by hand with the bias.
            self.squeeze = nn.Conv2d(mid, out_channels, 3, padding=1)
        else:
            self.expand = self.squeeze = None

    def _edges(self) -> tuple[EdgeBranch, EdgeBranch, EdgeBranch]:
        return self.sobel_x, self.sobel_y, self.laplacian

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_3x3(x) + self.conv_1x1(x)
        for edge in self._edges():
            out = out + edge(x)
        if self.has_identity:
            out = out + x
        if self.expand is not None:
            mid = pad_with_bias(self.expand(x), self.expand.bias, 1)
            out = out + F.conv2d(mid, self.squeeze.weight, self.squeeze.bias)
        return out

    def num_branch_convs(self) -> int:
        return 2 + 2 * len(self._edges()) + 2 * (self.expand is not None)

    def branch_convs(self) -> list[nn.Conv2d]:
        branches = [self.conv_3x3, self.conv_1x1] + [edge.to_conv() for edge in self._edges()]
        if self.has_identity:
            branches.append(fold_math.identity_conv(self.out_channels, 1, dtype=self.conv_3x3.weight.dtype,
                                                    device=self.conv_3x3.weight.device))
        if self.expand is not None:
            branches.append(fold_math.compose_convs(self.expand, self.squeeze, pad_with_bias=True))
        return branches

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}"]
        if self.deploy:
            parts.append("deploy=True")
        else:
            parts.append(f"identity={self.has_identity}, expand_ratio={self.expand_ratio}")
        return ", ".join(parts)
