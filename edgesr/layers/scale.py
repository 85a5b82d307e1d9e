"""Value-range adaptation inside the network.

edgesr's public convention is float RGB in 0..1. Models trained on 0..255 keep their
official weights untouched and multiply on the way in / divide on the way out with a
`ValueScale`; the fuse passes fold these into the first/last convolution for export.
"""
from __future__ import annotations

import torch
from torch import nn


class ValueScale(nn.Module):
    """Multiply by a constant. Holds no parameters, so official state_dict keys stay unchanged."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1.0:
            return x
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"
