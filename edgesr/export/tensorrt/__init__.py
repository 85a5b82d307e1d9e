"""TensorRT: readiness check (runs anywhere), engine build (NVIDIA GPU + TensorRT 10/11), engine sidecar.

    from edgesr.export.tensorrt import TrtBuildOptions, engine_from_onnx, check_readiness
    print(check_readiness("rlfn_x4.onnx").format())                       # no GPU needed
    result = engine_from_onnx("rlfn_x4_fp16.onnx", "rlfn_x4_fp16_trt.engine",
                              TrtBuildOptions(fp16=True, timing_cache="trt.cache"))

Precision follows TensorRT 11 (docs/deploy.md): FP16 means an FP16 ONNX built as a strongly typed network
(the FP16 builder flag is only a TensorRT 10.x fallback for an FP32 ONNX), INT8 means Q/DQ nodes in the ONNX
(`quantize_for_tensorrt`). The TensorRT steps themselves (parse, builder config, build, deserialize, run)
are Polygraphy's loaders and `TrtRunner`; edgesr adds the precision decision, profiles, the timing cache
file, clear errors, engine inspection, the sidecar and the version / GPU checks. Nothing here imports
TensorRT until an engine is built or inspected; tests install a recording fake as the `tensorrt` module
that Polygraphy imports.

Modules: `profiles` (optimisation profiles and tile limits), `readiness` (ONNX-parser support table and
DLA hints), `build` (`engine_from_onnx` on Polygraphy, the engine sidecar), `engine_info` (engine-inspector JSON),
`qdq` (symmetric INT8 Q/DQ for TensorRT), `pipeline` (`edgesr export --format trt`), `runtime`
(`import_tensorrt`, GPU discovery, version/device compatibility).
"""
from __future__ import annotations

from typing import Any

_EXPORTS = {
    "TrtBuildOptions": "build", "EngineBuildResult": "build", "engine_from_onnx": "build",
    "engine_sidecar_path": "build", "read_engine_sidecar": "build",
    "ProfileShapes": "profiles", "make_profile": "profiles", "profile_from_sidecar": "profiles",
    "fit_tile": "profiles", "parse_hw": "profiles",
    "ReadinessReport": "readiness", "Finding": "readiness", "check_readiness": "readiness",
    "summarize_engine_info": "engine_info",
    "quantize_for_tensorrt": "qdq",
    "import_tensorrt": "runtime", "require_gpu": "runtime", "check_engine_compat": "runtime",
    "ort_tensorrt_provider_options": "runtime",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
