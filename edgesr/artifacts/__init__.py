"""Exported artifacts on disk: the sidecar that describes one (`Sidecar`), its JSON Schema, its validation, and
crash-consistent writing and checking of its files.

Below both `edgesr.export` (which writes artifacts) and `edgesr.runtimes` (which reads them): neither owns
the sidecar, so both agree on it.

    from edgesr.artifacts import Sidecar
    side = Sidecar.for_artifact("out/rlfn_x4.onnx")     # out/rlfn_x4.onnx.json, validated, files verified
    side.scale, side.input.name, side.io, side.min_size
"""
from __future__ import annotations

from edgesr.artifacts.sidecar import (
    KIND,
    SCHEMA_VERSION,
    ArtifactFile,
    ExportInfo,
    FileRecord,
    GraphStats,
    ModelInfo,
    ParityEntry,
    ParityInfo,
    ReparamInfo,
    ShapeProfile,
    Sidecar,
    TensorSpec,
    find_sidecar,
    load_schema,
    schema_path,
    sidecar_path_for,
)
from edgesr.artifacts.store import recover_artifact, verify_files, write_artifact
from edgesr.artifacts.validate import check_against_artifact, check_scale, validate_sidecar

__all__ = [
    "KIND", "SCHEMA_VERSION", "ArtifactFile", "ExportInfo", "FileRecord", "GraphStats", "ModelInfo", "ParityEntry",
    "ParityInfo", "ReparamInfo", "ShapeProfile", "Sidecar", "TensorSpec", "check_against_artifact", "check_scale",
    "find_sidecar", "load_schema", "recover_artifact", "schema_path", "sidecar_path_for",
    "validate_sidecar", "verify_files", "write_artifact",
]
