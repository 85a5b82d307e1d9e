"""Export edgesr models to deployable artifacts, each with a JSON sidecar (`edgesr.artifacts.Sidecar`).

    from edgesr.export import ExportOptions, export_onnx
    result = export_onnx(model, "out/rlfn_x4_fp16.onnx", ExportOptions(fp16=True))
    print("\\n".join(result.summary()))

`onnxruntime_sr_function` runs an exported artifact as an edgesr SR function (for `edgesr.evaluate`).
onnx/onnxruntime/onnxsim are imported only when an export or a run happens.
"""
from __future__ import annotations

from edgesr.artifacts.sidecar import SCHEMA_VERSION, Sidecar, sidecar_path_for
from edgesr.export.onnx_export import (
    ExportOptions,
    ExportResult,
    IOWrapper,
    default_artifact_name,
    export_onnx,
    export_torch_to_onnx,
)
from edgesr.export.verify import IO_MODES, onnxruntime_sr_function

__all__ = [
    "ExportOptions",
    "ExportResult",
    "IOWrapper",
    "IO_MODES",
    "SCHEMA_VERSION",
    "Sidecar",
    "default_artifact_name",
    "export_onnx",
    "export_torch_to_onnx",
    "onnxruntime_sr_function",
    "sidecar_path_for",
]
