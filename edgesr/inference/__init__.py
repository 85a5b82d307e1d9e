"""Backend-agnostic inference: an SR function maps a float32 NCHW 0..1 array to its upscaled array.

Every runtime (PyTorch, ONNX Runtime, ...) is wrapped as such a function, so tiling,
self-ensemble, evaluation and `upscale` work the same over all of them. Importing this package
does not import torch; `torch_sr_function` does, on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgesr.inference.ensemble import self_ensemble
from edgesr.inference.predict import SRFunction, upscale_array
from edgesr.inference.tiling import TilingConfig, tiled_forward

if TYPE_CHECKING:
    from edgesr.inference.torch_function import torch_sr_function

__all__ = ["SRFunction", "torch_sr_function", "upscale_array", "self_ensemble", "TilingConfig", "tiled_forward"]


def __getattr__(name: str) -> Any:
    if name == "torch_sr_function":
        from edgesr.inference.torch_function import torch_sr_function

        return torch_sr_function
    raise AttributeError(f"module 'edgesr.inference' has no attribute {name!r}")
