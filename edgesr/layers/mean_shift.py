"""EDSR-PyTorch's `MeanShift`: a frozen 1x1 convolution that subtracts (or adds back) the RGB mean.

EDSR, RCAN (and other models of sanghyun-son/EDSR-PyTorch) start with ``sub_mean = MeanShift(rgb_range)``
and end with ``add_mean = MeanShift(rgb_range, sign=1)``. Its weight and bias are *parameters* with
``requires_grad=False`` exactly as in the official code, so they appear in the state_dict as
``sub_mean.weight`` / ``sub_mean.bias`` and official checkpoints load strictly. Optimisers must skip
parameters that do not require grad (EDSR-PyTorch filters on ``requires_grad``).

The layer is an ordinary affine per-channel map ``y_c = x_c / std_c + sign * rgb_range * mean_c / std_c``,
so a fold pass can merge it into the neighbouring convolution; it finds it by type (`MeanShift`) and reads
`weight`/`bias` (the attributes `rgb_range`, `rgb_mean`, `rgb_std`, `sign` describe how they were made).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

#: RGB mean of DIV2K in 0..1, as used by EDSR-PyTorch.
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


class MeanShift(nn.Conv2d):
    """Frozen 1x1 conv: ``x / std + sign * rgb_range * mean / std`` per RGB channel.

    Args:
        rgb_range: value range of the data the model sees (255 for EDSR-PyTorch models).
        rgb_mean: per-channel mean in 0..1 (default: DIV2K).
        rgb_std: per-channel std (default 1, as in EDSR-PyTorch).
        sign: -1 subtracts the mean (``sub_mean``), +1 adds it back (``add_mean``).
    """

    def __init__(self, rgb_range: float, rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
                 rgb_std: Sequence[float] = (1.0, 1.0, 1.0), sign: int = -1) -> None:
        if sign not in (-1, 1):
            raise ValueError(f"MeanShift sign must be -1 or +1, got {sign!r}")
        if len(rgb_mean) != 3 or len(rgb_std) != 3:
            raise ValueError("MeanShift needs three means and three stds (RGB)")
        super().__init__(3, 3, kernel_size=1)
        self.rgb_range = float(rgb_range)
        self.rgb_mean = tuple(float(m) for m in rgb_mean)
        self.rgb_std = tuple(float(s) for s in rgb_std)
        self.sign = int(sign)
        self.reset_parameters()
        self.requires_grad_(False)

    def reset_parameters(self) -> None:
        """Set the fixed weights (also what a generic re-initialisation of all convs gets)."""
        if "sign" not in self.__dict__:  # called by nn.Conv2d.__init__ before our attributes exist
            super().reset_parameters()
            return
        with torch.no_grad():
            kw = {"dtype": self.weight.dtype, "device": self.weight.device}
            std = torch.tensor(self.rgb_std, **kw)
            mean = torch.tensor(self.rgb_mean, **kw)
            self.weight.copy_(torch.eye(3, **kw).view(3, 3, 1, 1) / std.view(3, 1, 1, 1))
            self.bias.copy_(self.sign * self.rgb_range * mean / std)

    def extra_repr(self) -> str:
        return (f"rgb_range={self.rgb_range:g}, sign={self.sign:+d}, "
                f"mean={self.rgb_mean}, std={self.rgb_std}")
