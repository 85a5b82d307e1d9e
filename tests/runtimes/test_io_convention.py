"""The I/O convention a runner derives from an artifact's sidecar (or, without one, from the artifact)."""
from __future__ import annotations

import numpy as np
import pytest

from edgesr.artifacts import Sidecar
from edgesr.errors import InvalidSidecarError
from edgesr.runtimes.io_convention import artifact_info, load_artifact_info, parse_dtype


def test_no_sidecar_uses_model_dtypes(tmp_path):
    info = load_artifact_info(tmp_path / "m.onnx", model_input_dtype=np.uint8, model_output_dtype=np.uint8)
    assert info.io.input_range == 255.0 and info.io.output_range == 255.0 and info.sidecar_path is None
    assert load_artifact_info(tmp_path / "m.onnx").io.is_identity


@pytest.mark.parametrize("io,dtype,rng", [("uint8", np.uint8, 255.0), ("float255", np.float32, 255.0),
                                          ("float01", np.float32, 1.0)])
def test_io_from_the_sidecar(io, dtype, rng):
    info = artifact_info(Sidecar.minimal("m.onnx", scale=4, io=io))
    assert np.dtype(info.io.input_dtype) == np.dtype(dtype) and info.io.input_range == rng
    assert info.io.output_range == rng and info.scale == 4 and info.input_name == "input"


def test_nhwc_layout_and_geometry():
    side = Sidecar.minimal("m.onnx", scale=3, layout="NHWC", min_size=24, alignment=8, halo=12)
    info = artifact_info(side)
    assert (info.scale, info.align, info.halo, info.min_size, info.io.layout) == (3, 8, 12, 24, "NHWC")


def test_sidecar_is_cross_checked_with_the_artifact(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"graph")
    Sidecar.minimal(model, scale=2, io="uint8").save(tmp_path)
    info = load_artifact_info(model, model_input_dtype=np.uint8, model_output_dtype=np.uint8, input_names=["input"])
    assert info.sidecar_path == tmp_path / "m.onnx.json" and info.io.input_range == 255.0
    with pytest.raises(InvalidSidecarError, match="'input' does not exist in the artifact"):
        load_artifact_info(model, input_names=["lr"])
    with pytest.raises(InvalidSidecarError, match="says the input is uint8 but the artifact declares float32"):
        load_artifact_info(model, model_input_dtype=np.float32)
    assert load_artifact_info(model, use_sidecar=False, model_input_dtype=np.float32).io.is_identity


def test_parse_dtype():
    assert parse_dtype("tensor(float16)") is np.float16 and parse_dtype(None) is None
    with pytest.raises(Exception, match="unsupported I/O dtype"):
        parse_dtype("int64")
