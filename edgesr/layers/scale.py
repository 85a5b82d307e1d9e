"""Value-range adaptation inside the network (scale, and the input mean some models subtract).

edgesr's public convention is float RGB in 0..1. Models trained on 0..255 keep their
official weights untouched and multiply on the way in / divide on the way out with a
`ValueScale`; the fuse passes fold these into the first/last convolution for export.
"""
from __future__ import annotations

from typing import Sequence

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


class ValueShift(nn.Module):
    """Subtract a constant per channel (an input mean). Its values are a non-persistent buffer, so the
    official state_dict keys stay unchanged and the model's parameter count is the official one.

    Kept as its own module (not folded into the first conv by the fuse passes): the first conv zero-pads
    the *shifted* input, so a folded shift would change the border pixels.
    """

    def __init__(self, offset: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("offset", torch.tensor([float(v) for v in offset]).view(1, -1, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.offset

    def extra_repr(self) -> str:
        return "offset=(" + ", ".join(f"{float(v):g}" for v in self.offset.flatten()) + ")"
