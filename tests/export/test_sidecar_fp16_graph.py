"""Unit tests: the sidecar schema, the FP16 converter, the graph helpers, the ONNX Runtime SR function."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgesr.errors import UserInputError
from edgesr.export import ExportOptions, Sidecar, export_onnx, onnxruntime_sr_function
from edgesr.export.fp16 import convert_to_fp16, fp16_emulation_graph
from edgesr.export.graph import fold_scalar_muls, op_counts
from edgesr.export.verify import create_session


# ---------------------------------------------------------------------------------------------- sidecar


def test_sidecar_roundtrip_and_strict_json(tiny_sr, fast, tmp_path: Path) -> None:
    res = export_onnx(tiny_sr, tmp_path / "tiny.onnx", ExportOptions(**fast, fp16=True))
    text = res.sidecar_path.read_text()
    data = json.loads(text)  # strict JSON: no NaN/Infinity tokens
    assert "Infinity" not in text and "NaN" not in text
    assert list(data)[:2] == ["schema_version", "kind"] and data["schema_version"] == "1.1"
    assert res.sidecar_path.name == "tiny.onnx.json"
    assert data["artifact"]["file"] == "tiny.onnx"
    back = Sidecar.from_json(text)
    assert back == res.sidecar or back.to_dict() == res.sidecar.to_dict()
    assert back.to_json() == text
    assert isinstance(back.parity.entries[0].height, int) and back.inputs[0].name == "input"
    assert Sidecar.for_artifact(tmp_path / "tiny.onnx").to_dict() == data  # by the artifact's path too
    assert data["files"] == [{"file": "tiny.onnx", "bytes": data["artifact"]["bytes"],
                              "sha256": data["artifact"]["sha256"], "role": "model"}]
    # consumers' essentials
    assert data["scale"] == 2 and data["min_size"] == 1 and data["halo"] == 16 and data["alignment"] == 1
    assert data["inputs"][0]["layout"] == "NCHW" and data["inputs"][0]["color"] == "RGB"
    assert data["export"]["exporter"] == "torchscript" and data["export"]["precision"] == "fp16"
    assert data["model"]["weights_path"] is None and data["model"]["weights_sha256"] is None
    entry = data["parity"]["entries"][0]
    assert {"max_abs_diff", "psnr_db", "fp16_psnr_db", "fp16_emulated_psnr_db", "fp16_peak"} <= set(entry)


def test_sidecar_versioning() -> None:
    good = {"schema_version": "1.7", "kind": "edgesr-artifact", "future_key": 1,
            "artifact": {"file": "a.onnx", "format": "onnx", "bytes": 1, "sha256": "0" * 64},
            "model": {"name": "m"}, "scale": 4, "inputs": [{"name": "input"}], "outputs": [{"name": "output"}],
            "shape_profile": {"min": [1, 3, 1, 1], "opt": [1, 3, 2, 2], "max": [1, 3, 4, 4]},
            "export": {"exporter": "dynamo", "opset": 18}, "parity": {"reference": "r", "runtime": "ort"},
            "graph": {"nodes": 0, "op_counts": {}}}
    side = Sidecar.from_dict(good)  # a later minor version with unknown keys still reads
    assert side.scale == 4 and side.export.reparam.applied is False and side.parity.entries == []
    with pytest.raises(UserInputError, match="schema_version"):
        Sidecar.from_dict({**good, "schema_version": "2.0"})
    assert side.blocks == {"future_key": 1} and side.to_dict()["future_key"] == 1  # kept on a rewrite
    with pytest.raises(UserInputError, match="required field 'scale'"):
        Sidecar.from_dict({k: v for k, v in good.items() if k != "scale"})
    with pytest.raises(UserInputError, match="export.opset"):
        Sidecar.from_dict({**good, "export": {"exporter": "dynamo", "opset": "18"}})
    with pytest.raises(UserInputError, match="not valid JSON"):
        Sidecar.from_json("{")


# ------------------------------------------------------------------------------------------------- fp16


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    # IR 10: what torch writes, and what ONNX Runtime 1.31 reads (onnx 1.23 defaults to 14)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def _resize_shape_graph() -> onnx.ModelProto:
    """x -> Resize(scales=[1,1,2,2] float) -> Mul(y, size-derived float) -> output; plus int64 shape maths."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H2", "W2"])
    nodes = [
        helper.make_node("Resize", ["input", "", "scales"], ["up"], mode="linear"),
        helper.make_node("Shape", ["input"], ["shape"]),
        helper.make_node("Gather", ["shape", "two"], ["h"], axis=0),
        helper.make_node("Cast", ["h"], ["hf"], to=TensorProto.FLOAT),          # a float computed from sizes
        helper.make_node("Div", ["hf", "big"], ["ratio"]),                        # stays float32
        helper.make_node("Mul", ["up", "ratio"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["output"]),
    ]
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
             numpy_helper.from_array(np.array(2, np.int64), "two"),
             numpy_helper.from_array(np.array(4096.0, np.float32), "big"),
             numpy_helper.from_array(np.array(0.25, np.float32), "bias")]
    return _model(helper.make_graph(nodes, "g", [x], [y], inits))


@pytest.mark.parametrize("keep_io", [True, False])
def test_fp16_keeps_resize_scales_and_shape_maths_fp32(keep_io: bool) -> None:
    model = _resize_shape_graph()
    onnx.checker.check_model(model, full_check=True)
    half = convert_to_fp16(model, keep_io_types=keep_io)
    inits = {i.name: i.data_type for i in half.graph.initializer}
    assert inits["scales"] == TensorProto.FLOAT and inits["big"] == TensorProto.FLOAT  # untouched
    assert inits["bias"] == TensorProto.FLOAT16 and inits["two"] == TensorProto.INT64
    io_type = TensorProto.FLOAT if keep_io else TensorProto.FLOAT16
    assert half.graph.input[0].type.tensor_type.elem_type == io_type
    assert half.graph.output[0].type.tensor_type.elem_type == io_type
    casts = [n for n in half.graph.node if n.op_type == "Cast"]
    # the size-derived Cast stays a cast to float32; the ratio is cast to fp16 where the image needs it
    assert sum(1 for n in casts if n.input[0] == "h" and n.attribute[0].i == TensorProto.FLOAT) == 1
    assert len(casts) == (4 if keep_io else 2)
    x = np.random.default_rng(0).random((1, 3, 9, 7), dtype=np.float32)
    ref = create_session(model).run(None, {"input": x})[0]
    out = create_session(half).run(None, {"input": x.astype(np.float16) if not keep_io else x})[0]
    assert out.dtype == (np.float32 if keep_io else np.float16) and out.shape == (1, 3, 18, 14)
    assert np.abs(out.astype(np.float32) - ref).max() < 2e-3


def test_fp16_export_of_resize_model_and_fp16_io(tiny_interp, fast, tmp_path: Path) -> None:
    res = export_onnx(tiny_interp, tmp_path / "interp.onnx", ExportOptions(**fast, fp16=True, fp16_io=True))
    side = res.sidecar
    assert side.inputs[0].dtype == "float16" and side.outputs[0].dtype == "float16" and side.export.fp16_io
    assert side.graph.op_counts.get("Resize") == 1 and side.graph.op_counts.get("Cast", 0) == 0
    assert side.parity.entries[0].fp16_psnr_db > 60
    fn = onnxruntime_sr_function(res.path)  # float32 0..1 in/out whatever the artifact's I/O
    x = np.random.default_rng(1).random((1, 3, 10, 12), dtype=np.float32)
    with torch.no_grad():
        ref = tiny_interp(torch.from_numpy(x)).numpy()
    y = fn(x)
    assert y.dtype == np.float32 and y.shape == (1, 3, 20, 24) and np.abs(y - ref).max() < 5e-3


def test_fp16_emulation_sees_what_ort_cpu_hides() -> None:
    """ORT CPU computes FP16 Conv chains in float32; the emulation rounds every activation like a GPU."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 2, 2])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 2, 2])
    nodes = [helper.make_node("Mul", ["input", "up"], ["big"]), helper.make_node("Mul", ["big", "down"], ["output"])]
    inits = [numpy_helper.from_array(np.array(1e3, np.float32), "up"),
             numpy_helper.from_array(np.array(1e-3, np.float32), "down")]
    model = _model(helper.make_graph(nodes, "g", [x], [y], inits))
    emu = create_session(fp16_emulation_graph(model))
    out, peak = emu.run(None, {"input": np.full((1, 1, 2, 2), 100.0, np.float32)})
    assert math.isinf(peak) and not np.isfinite(out).all()       # 1e5 > 65504
    out, peak = emu.run(None, {"input": np.full((1, 1, 2, 2), 0.5, np.float32)})
    assert peak == 500.0 and np.allclose(out, 0.5, atol=1e-3)


# ------------------------------------------------------------------------------------------------ graph


def test_fold_scalar_muls() -> None:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 4, 4])
    nodes = [helper.make_node("Mul", ["input", "a"], ["t1"]), helper.make_node("Div", ["t1", "b"], ["t2"]),
             helper.make_node("Relu", ["t2"], ["t3"]),
             helper.make_node("Mul", ["c", "t3"], ["t4"]), helper.make_node("Mul", ["t4", "d"], ["output"])]
    inits = [numpy_helper.from_array(np.array(255.0, np.float32), "a"),
             numpy_helper.from_array(np.array(255.0, np.float32), "b"),
             numpy_helper.from_array(np.array([2.0], np.float32), "c"),
             numpy_helper.from_array(np.array(3.0, np.float32), "d")]
    model = _model(helper.make_graph(nodes, "g", [x], [y], inits))
    xin = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    ref = create_session(model).run(None, {"input": xin})[0]
    removed = fold_scalar_muls(model)
    onnx.checker.check_model(model, full_check=True)
    assert removed == 3 and op_counts(model) == {"Mul": 1, "Relu": 1}
    assert {i.name for i in model.graph.initializer} == {"output_scale"}
    np.testing.assert_allclose(create_session(model).run(None, {"input": xin})[0], ref, rtol=1e-6)


def test_onnxruntime_sr_function_io_conventions(tiny_sr, fast, tmp_path: Path) -> None:
    x = np.random.default_rng(2).random((1, 3, 16, 18), dtype=np.float32)
    x = np.round(x * 255) / 255  # exactly representable in uint8
    with torch.no_grad():
        ref = tiny_sr(torch.from_numpy(x)).numpy()
    for io in ("float01", "float255", "uint8"):
        res = export_onnx(tiny_sr, tmp_path / f"t_{io}.onnx", ExportOptions(**fast, io=io))
        y = onnxruntime_sr_function(res.path)(x)
        tol = 0.5 / 255 + 1e-6 if io == "uint8" else 1e-5
        expected = np.clip(ref, 0, 1) if io == "uint8" else ref
        assert np.abs(y - expected).max() <= tol, io
        assert res.sidecar.inputs[0].value_range == ([0.0, 1.0] if io == "float01" else [0.0, 255.0])
    with pytest.raises(UserInputError, match="unknown io"):
        onnxruntime_sr_function(res.path, io="float1")


# ------------------------------------------------------------------------------------------- exporters


def test_dynamo_unavailable_falls_back_to_torchscript(tiny_sr, tmp_path: Path, monkeypatch) -> None:
    from edgesr.errors import ExportError

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'onnxscript'", name="onnxscript")

    monkeypatch.setattr("edgesr.export.onnx_export._export_dynamo", missing)
    res = export_onnx(tiny_sr, tmp_path / "t.onnx", ExportOptions(parity_sizes=((24, 20),)))
    ex = res.sidecar.export
    assert ex.exporter == "torchscript" and "onnxscript is not installed" in ex.exporter_note
    assert "TorchScript" in "\n".join(res.summary())
    with pytest.raises(ExportError, match="--exporter torchscript"):
        export_onnx(tiny_sr, tmp_path / "d.onnx", ExportOptions(parity_sizes=((24, 20),), exporter="dynamo"))


def test_dynamo_exporter_dynamic_shapes(tiny_sr, tmp_path: Path) -> None:
    pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
    res = export_onnx(tiny_sr, tmp_path / "t.onnx",
                      ExportOptions(parity_sizes=((24, 20), (9, 31)), exporter="dynamo"))
    assert res.sidecar.export.exporter == "dynamo" and res.sidecar.export.exporter_note is None
    assert res.sidecar.inputs[0].shape == ["batch", 3, "height", "width"]
    session = create_session(res.path)
    out = session.run(None, {"input": np.zeros((3, 3, 7, 5), np.float32)})[0]
    assert out.shape == (3, 3, 14, 10)
    assert not any(n.metadata_props for n in onnx.load(res.path).graph.node)  # no stack traces shipped


def test_import_is_light() -> None:
    """`import edgesr.export` loads neither onnx, onnxruntime nor onnxsim (they load on first use)."""
    import subprocess
    import sys

    code = ("import sys, edgesr.export; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'onnxsim', 'onnxscript') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
