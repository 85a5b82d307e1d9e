"""SPAN's Conv3XC (Wan et al., CVPRW 2024): a 3x3 conv trained as a 1x1 skip plus a wider
1x1 -> 3x3 -> 1x1 chain, folded into one 3x3 conv for inference.

Training-time branches on the same input, summed:

* ``skip``: 1x1 conv;
* ``expand`` (1x1, ``in -> gain * in``) -> ``conv`` (3x3, ``gain * in -> gain * out``) -> ``squeeze``
  (1x1, ``gain * out -> out``). As in the official code, the chain runs on the zero-padded input, so the
  3x3 conv sees the 1x1 output padded with ``expand``'s bias: the chain is linear and that padding is what
  makes it fold exactly (``fold_math.compose_convs(..., pad_with_bias=True)``).

The official code folds with its own ``update_params``; here the fold is
`ReparamConv.to_conv` over `branch_convs`, the same arithmetic every re-parameterizable block uses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgesr.layers.reparam import ReparamConv
from edgesr.layers import fold_math

__all__ = ["Conv3XC"]


class Conv3XC(ReparamConv):
    """1x1 skip + (1x1 -> 3x3 -> 1x1) chain with channel gain `gain`; one 3x3 conv once folded.

    Args:
        in_channels, out_channels: channels.
        gain: width multiplier of the chain's inner tensors (2 in SPAN).
        stride: stride of the 3x3 conv (and of the skip).
        deploy: build the folded single-conv form directly.
    """

    def __init__(self, in_channels: int, out_channels: int, gain: int = 2, stride: int = 1,
                 deploy: bool = False) -> None:
        super().__init__(in_channels, out_channels, 3, stride, deploy)
        if gain < 1:
            raise ValueError(f"Conv3XC gain must be >= 1, got {gain}")
        self.gain = int(gain)
        if self.deploy:
            return
        self.skip = nn.Conv2d(in_channels, out_channels, 1, stride)
        self.expand = nn.Conv2d(in_channels, in_channels * gain, 1)
        # Declared with 'same' padding (its folded geometry); forward runs it unpadded on the padded input.
        self.conv = nn.Conv2d(in_channels * gain, out_channels * gain, 3, stride, padding=1)
        self.squeeze = nn.Conv2d(out_channels * gain, out_channels, 1)

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.expand(F.pad(x, (1, 1, 1, 1)))
        mid = F.conv2d(mid, self.conv.weight, self.conv.bias, self.stride)
        return self.squeeze(mid) + self.skip(x)

    def num_branch_convs(self) -> int:
        return 4

    def branch_convs(self) -> list[nn.Conv2d]:
        chain = fold_math.compose_convs(self.expand, self.conv, pad_with_bias=True)
        chain = fold_math.compose_convs(chain, self.squeeze) if chain is not None else None
        if chain is None:  # pragma: no cover - the convs are built composable
            raise RuntimeError("Conv3XC chain is not composable")
        return [chain, self.skip]

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}, gain={self.gain}"]
        if self.stride != 1:
            parts.append(f"stride={self.stride}")
        if self.deploy:
            parts.append("deploy=True")
        return ", ".join(parts)
