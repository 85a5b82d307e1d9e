"""Backend-agnostic inference: an SR function maps a float32 NCHW 0..1 array to its upscaled array.

Every runtime (PyTorch, ONNX Runtime, ...) is wrapped as such a function, so tiling,
self-ensemble, evaluation and `upscale` work the same over all of them.
"""
from edgesr.inference.ensemble import self_ensemble
from edgesr.inference.predict import SRFunction, torch_sr_function, upscale_array
from edgesr.inference.tiling import TilingConfig, tiled_forward

__all__ = ["SRFunction", "torch_sr_function", "upscale_array", "self_ensemble", "TilingConfig", "tiled_forward"]
