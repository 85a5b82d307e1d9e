"""TensorRT readiness: crafted graphs with what the parser rejects, edgesr's own exports (tiny and RLFN x4)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgesr.export.tensorrt.readiness import SUPPORTED_OPS, UNSUPPORTED_OPS, check_readiness, rewire_uint8_shapes


def _codes(report, level=None):
    return {f.code for f in report.findings if level is None or f.level == level}


def _model(nodes, inits=(), opset=18, inputs=None, outputs=None, extra_opsets=()):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])


def test_table_is_consistent():
    assert not set(SUPPORTED_OPS) & UNSUPPORTED_OPS
    for op in ("Conv", "DepthToSpace", "Resize", "MaxPool", "LeakyRelu", "Sigmoid", "Mul", "Add", "Concat", "Split",
               "Cast", "Clip", "Round", "Shape", "Gather", "Slice", "Unsqueeze", "QuantizeLinear", "DequantizeLinear"):
        assert op in SUPPORTED_OPS, op
    assert TensorProto.UINT8 in SUPPORTED_OPS["Cast"] and TensorProto.UINT8 not in SUPPORTED_OPS["Conv"]


def test_crafted_graph_with_unsupported_things():
    w = numpy_helper.from_array(np.ones((3, 3, 3, 3), np.float32), "w")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zp_u8 = numpy_helper.from_array(np.array(128, np.uint8), "zp")
    sizes = numpy_helper.from_array(np.array([1, 3, 16, 16], np.int64), "sizes")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Unique", ["c"], ["u"], name="unique"),
        helper.make_node("Resize", ["c", "", "", "sizes"], ["r"], name="resize_cubic", mode="cubic"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], dilations=[2, 2]),
        helper.make_node("QuantizeLinear", ["p", "s", "zp"], ["q"], name="q_u8"),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["dq"], name="dq_u8"),
        helper.make_node("FancyOp", ["dq"], ["f"], name="custom", domain="com.example"),
        helper.make_node("Cast", ["f"], ["y"], name="cast_u8_mid", to=TensorProto.UINT8),
        helper.make_node("Relu", ["y"], ["z"], name="relu"),
    ]
    model = _model(nodes, [w, scale, zp_u8, sizes], extra_opsets=[helper.make_opsetid("com.example", 1)],
                   outputs=[helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    report = check_readiness(model, polygraphy=False)
    assert not report.ok
    errors = {(f.code, f.op): f for f in report.errors}
    assert ("unsupported-op", "Unique") in errors and errors[("unsupported-op", "Unique")].nodes == ["unique"]
    assert ("resize-mode", "Resize") in errors and "'cubic'" in errors[("resize-mode", "Resize")].message
    assert ("pool-dilation", "MaxPool") in errors
    assert ("qdq-uint8", "QuantizeLinear") in errors and ("qdq-uint8", "DequantizeLinear") in errors
    assert "signed int8" in errors[("qdq-uint8", "QuantizeLinear")].message
    assert ("custom-op", "FancyOp") in errors
    assert ("uint8-internal", "Cast") in errors and ("type", "Relu") in errors  # UINT8 only at the network boundary
    text = report.format()
    assert "NOT READY" in text and "unique" in text and "ERROR" in text
    assert json.loads(json.dumps(report.to_dict()))["ok"] is False


def test_opset_and_attribute_details():
    nodes = [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear",
                              coordinate_transformation_mode="tf_crop_and_resize", antialias=1)]
    sc = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")
    report = check_readiness(_model(nodes, [sc], opset=26), polygraphy=False)
    assert {"opset", "resize-transform", "resize-antialias"} <= _codes(report, "error")
    ok = check_readiness(_model([helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest",
                                                  nearest_mode="floor")], [sc], opset=21), polygraphy=False)
    assert ok.ok and "opset" in _codes(ok, "info")  # opset 21 needs a TensorRT newer than 10.0


def test_symmetric_int8_qdq_per_channel_is_ready():
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.int8), "w_q")
    ws = numpy_helper.from_array(np.full(4, 0.01, np.float32), "w_s")
    wz = numpy_helper.from_array(np.zeros(4, np.int8), "w_z")
    s = numpy_helper.from_array(np.array(0.02, np.float32), "s")
    z = numpy_helper.from_array(np.array(0, np.int8), "z")
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1])]
    report = check_readiness(_model(nodes, [w, ws, wz, s, z]), polygraphy=False)
    assert report.ok, report.format()
    assert "qdq-per-channel" in _codes(report, "info")
    nonzero = numpy_helper.from_array(np.array(3, np.int8), "z")
    bad = check_readiness(_model(nodes, [w, ws, wz, s, nonzero]), polygraphy=False)
    assert "qdq-zero-point" in _codes(bad, "error")


def test_tiny_exports_and_uint8_shape_rewiring(tiny_exports):
    for key in ("fp32", "fp16"):
        report = check_readiness(tiny_exports[key], polygraphy=False)
        assert report.ok, report.format()
        assert {"resize-runtime-sizes", "depth-to-space", "dynamic-shape"} <= _codes(report, "info")
    report = check_readiness(tiny_exports["uint8"], polygraphy=False)
    assert report.ok and "uint8-shape" in _codes(report, "warning") and "uint8-io" in _codes(report, "info")
    proto = onnx.load(str(tiny_exports["uint8"]))
    assert rewire_uint8_shapes(proto) >= 1
    onnx.checker.check_model(proto)
    assert "uint8-shape" not in _codes(check_readiness(proto, polygraphy=False))
    import onnxruntime as ort

    x = np.random.default_rng(0).integers(0, 256, (1, 3, 11, 13), dtype=np.uint8)
    a = ort.InferenceSession(str(tiny_exports["uint8"])).run(None, {"input": x})[0]
    b = ort.InferenceSession(proto.SerializeToString()).run(None, {"input": x})[0]
    np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def rlfn_x4_exports(tmp_path_factory, rlfn_x4_onnx, rlfn_x4_uint8_onnx):
    """The real RLFN x4 (official weights, folded), exported by edgesr: fp32 and uint8 I/O (the session's
    shared exports); fp16 is the fp32 graph through the exporter's own FP16 conversion (what `--fp16` writes)."""
    from edgesr.export.fp16 import convert_to_fp16

    fp16 = tmp_path_factory.mktemp("rlfn") / "rlfn_x4_fp16.onnx"
    onnx.save(convert_to_fp16(onnx.load(str(rlfn_x4_onnx.path)), keep_io_types=True), str(fp16))
    return {"fp32": rlfn_x4_onnx.path, "fp16": fp16, "uint8": rlfn_x4_uint8_onnx.path}


def test_rlfn_x4_exports_are_ready(rlfn_x4_exports):
    reports = {k: check_readiness(p, polygraphy=False) for k, p in rlfn_x4_exports.items()}
    for key, report in reports.items():
        assert report.ok, report.format()
        assert report.op_counts["Conv"] == 57 and report.op_counts["Resize"] == 6
        assert report.op_counts["DepthToSpace"] == 1 and report.op_counts["MaxPool"] == 6
        resize = next(f for f in report.findings if f.code == "resize-runtime-sizes")
        assert len(resize.nodes) == 6 and "linear/half_pixel" in resize.message
        dla = {(f.code, f.op) for f in report.dla}
        assert ("dla-fallback", "DepthToSpace") in dla and ("dla-fallback", "Resize") in dla
        assert ("dla-ok", "Conv") in dla and ("dla-static", "") in dla
    assert ("dla-precision", "") in {(f.code, f.op) for f in reports["fp32"].dla if f.level == "warning"}
    assert reports["uint8"].op_counts["Round"] == 1 and "uint8-shape" in _codes(reports["uint8"], "warning")
    assert reports["fp16"].op_counts["Cast"] == 2
