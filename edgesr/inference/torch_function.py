"""A PyTorch module as an SR function (the eager reference every other backend is compared with)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgesr.inference.predict import SRFunction

__all__ = ["torch_sr_function"]


def torch_sr_function(model: nn.Module, device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32, channels_last: bool = False) -> SRFunction:
    """An SR function running `model` (0..1 in/out) under no_grad on `device`."""
    device = torch.device(device)
    model = model.eval().to(device=device, dtype=dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)
        if channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            y = model(t)
        return y.float().cpu().numpy()

    return run
