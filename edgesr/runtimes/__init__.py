"""Runtimes: one runner per backend behind one interface.

    from edgesr.runtimes import create_runner
    with create_runner("rlfn_x4.onnx", threads=2) as runner:      # ONNX Runtime
        y = runner.infer(x)                                       # float32 NCHW 0..1 in and out
        fn = runner.as_sr_function()                              # for tiling / evaluation
        runner.last_timing                                        # per-call timing

Backends: torch, onnxruntime, openvino, tensorrt, ncnn, executorch (`list_backends()`). Importing
this package imports none of their packages; a runner imports its own when it is created.
"""
from __future__ import annotations

from edgesr.runtimes.base import BaseRunner, CallTiming, InputSpec
from edgesr.runtimes.io_convention import ArtifactInfo, IOConvention, load_artifact_info
from edgesr.runtimes.registry import (BackendInfo, create_runner, get_backend, list_backends,
                                      register_backend)

_RUNNERS = {"TorchRunner": "torch", "OnnxRuntimeRunner": "onnxruntime", "OpenVINORunner": "openvino",
            "TensorRTRunner": "tensorrt", "NcnnRunner": "ncnn", "ExecuTorchRunner": "executorch"}

__all__ = [
    "BaseRunner", "CallTiming", "InputSpec",
    "IOConvention", "ArtifactInfo", "load_artifact_info",
    "BackendInfo", "create_runner", "get_backend", "list_backends", "register_backend",
    *_RUNNERS,
]


def __getattr__(name: str):
    """Runner classes on first use (their modules import no backend package either)."""
    if name in _RUNNERS:
        return get_backend(_RUNNERS[name]).load_runner_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
