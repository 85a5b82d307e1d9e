"""Reading the artifact sidecar defensively."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgesr.errors import UserInputError
from edgesr.runtimes.io_convention import artifact_info, load_artifact_info, parse_range, sidecar_path_for


def test_no_sidecar_uses_model_dtypes(tmp_path):
    info = load_artifact_info(tmp_path / "m.onnx", model_input_dtype=np.uint8, model_output_dtype=np.uint8)
    assert info.io.input_range == 255.0 and info.io.output_range == 255.0 and info.sidecar_path is None
    assert load_artifact_info(tmp_path / "m.onnx").io.is_identity


@pytest.mark.parametrize("meta,dtype,rng", [
    ({"io": "uint8"}, np.uint8, 255.0),
    ({"export": {"io": "float255"}}, np.float32, 255.0),
    ({"io": "float01"}, np.float32, 1.0),
    ({"inputs": [{"name": "lr", "dtype": "float32", "range": [0, 255]}]}, np.float32, 255.0),
    ({"inputs": {"lr": {"dtype": "uint8"}}}, np.uint8, 255.0),
    ({"input_dtype": "float16", "value_range": "0..1"}, np.float16, 1.0),
    ({"normalization": {"range": 255}}, np.float32, 255.0),
    ({"unrelated": 1}, np.float32, 1.0),
])
def test_sidecar_keys(meta, dtype, rng):
    io = artifact_info(meta).io
    assert np.dtype(io.input_dtype) == np.dtype(dtype) and io.input_range == rng
    assert io.output_range == rng


def test_edgesr_export_sidecar_schema():
    """The shape of what `edgesr.export.sidecar` writes (schema 1.0), for an `--io uint8` export."""
    tensor = {"dtype": "uint8", "shape": ["batch", 3, "height", "width"], "value_range": [0.0, 255.0],
              "layout": "NCHW", "color": "RGB"}
    meta = {"schema_version": "1.0", "kind": "edgesr-artifact", "scale": 4,
            "inputs": [{"name": "input", **tensor, "clamped": False}],
            "outputs": [{"name": "output", **tensor, "clamped": True}],
            "shape_profile": {"min": [1, 3, 16, 16], "opt": [1, 3, 256, 256], "max": [4, 3, 1024, 1024]},
            "alignment": 1, "min_size": 15, "halo": 32, "export": {"io": "uint8", "fp16_io": False}}
    info = artifact_info(meta, model_input_dtype=np.uint8, model_output_dtype=np.uint8)
    assert (np.dtype(info.io.input_dtype), info.io.input_range, info.io.output_range) == (np.uint8, 255, 255)
    assert (info.scale, info.min_size, info.align, info.halo, info.input_name) == (4, 15, 1, 32, "input")
    with pytest.raises(UserInputError, match="schema_version 2.0"):
        artifact_info({**meta, "schema_version": "2.0"})


def test_model_dtype_wins_and_geometry_is_read():
    meta = {"io": "float255", "scale": 4, "tile_align": 8, "halo": 16, "layout": "nhwc",
            "shape_profile": {"min": [1, 24, 32, 3], "opt": [1, 256, 256, 3], "max": [1, 512, 512, 3]},
            "outputs": [{"dtype": "float32", "range": 1}]}
    info = artifact_info(meta, model_input_dtype=np.uint8)
    assert np.dtype(info.io.input_dtype) == np.uint8 and info.io.output_range == 1.0
    assert (info.scale, info.align, info.halo, info.min_size, info.io.layout) == (4, 8, 16, 24, "NHWC")


def test_parse_range_and_errors():
    assert parse_range(255) == parse_range([0, 255]) == parse_range("0-255") == 255.0
    assert parse_range(None) is None
    with pytest.raises(UserInputError, match="only 0..max"):
        parse_range([-1, 1])
    with pytest.raises(UserInputError, match="unknown io"):
        artifact_info({"io": "int4"})
    with pytest.raises(UserInputError, match="unsupported I/O dtype"):
        artifact_info({"input_dtype": "int64"})


def test_sidecar_lookup_and_broken_file(tmp_path):
    model = tmp_path / "m.onnx"
    (tmp_path / "m.json").write_text(json.dumps({"io": "uint8"}))
    assert sidecar_path_for(model) == tmp_path / "m.json"
    (tmp_path / "m.onnx.json").write_text("{not json")
    assert sidecar_path_for(model) == tmp_path / "m.onnx.json"
    with pytest.raises(UserInputError, match="cannot read the sidecar"):
        load_artifact_info(model)
    assert load_artifact_info(model, use_sidecar=False).io.is_identity
