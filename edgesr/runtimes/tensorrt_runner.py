"""TensorRT engine runner (interface only for now; needs an NVIDIA GPU and `edgesr[tensorrt]`).

Planned run sequence (docs/deploy.md): `Runtime.deserialize_cuda_engine` -> `create_execution_context`
-> per I/O tensor `set_input_shape` / `set_tensor_address` -> `execute_async_v3(stream)`; compute timed
with CUDA events like the torch runner's stages, I/O conventions from the engine's sidecar.
"""
from __future__ import annotations

from edgesr.runtimes._stub import PendingRunner


class TensorRTRunner(PendingRunner):
    """Run a serialized TensorRT engine (``.engine`` / ``.plan``)."""

    backend = "tensorrt"
