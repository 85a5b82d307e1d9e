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

    def locate_nonfinite(x: np.ndarray) -> str | None:
        """Run `model` once with forward hooks; the first module (in execution order) whose output is
        non-finite, named as in its state_dict."""
        first: list[str] = []

        def hook(name: str):
            def check(module: nn.Module, inputs: object, output: object) -> None:
                if not first and isinstance(output, torch.Tensor) and output.is_floating_point() \
                        and not bool(torch.isfinite(output).all()):
                    first.append(f"layer {name!r} ({type(module).__name__})" if name else "the model's output")
            return check

        handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()]
        try:
            run(x)
        finally:
            for h in handles:
                h.remove()
        return first[0] if first else None

    run.locate_nonfinite = locate_nonfinite  # type: ignore[attr-defined]
    return run
