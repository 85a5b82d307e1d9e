"""Static INT8 (QDQ) quantization calibrated on real images: structure, numbers, targets, exclusion, errors.

Small models and few, small crops keep this fast; the quality of INT8 RLFN x4 on Set5 and its latency are
measured by benchmarks/int8_quality.py. Bounds used here: INT8 vs FP32 PSNR >= 35 dB for the official
RLFN x4 on 4 crops of 48x48 (measured ~37 dB), >= 25 dB for a random-init toy model.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, numpy_helper

from edgesr.artifacts import sidecar_path_for
from edgesr.errors import OutputExistsError, UserInputError
from edgesr.export import ExportOptions, Sidecar, export_onnx
from edgesr.export import calibration as cal
from edgesr.export.quantize import GATES_INPUT, QUANT_TARGETS, node_gates, quantize_onnx, switch_graph

FAST = dict(calib_count=6, calib_size=32, holdout_count=2, holdout_size=32, select_count=2)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory, datasets_dir: Path) -> Path:
    """12 real DIV2K LR images, cropped to 64x64 (small files, quick to read)."""
    from edgesr.data import find_images, read_image, write_image

    out = tmp_path_factory.mktemp("calib")
    for path in find_images(datasets_dir / "DIV2K_test_LR_x4")[:12]:
        write_image(out / path.name, np.ascontiguousarray(read_image(path)[100:164, 100:164]))
    return out


@pytest.fixture(scope="module")
def small_rlfn_onnx(tmp_path_factory) -> Path:
    """A small random-init RLFN x2 (ESA: Resize, Sigmoid, Mul, MaxPool) exported to FP32 ONNX."""
    from edgesr.models import create_model

    torch.manual_seed(0)
    model = create_model("rlfn", scale=2, feature_channels=12, esa_channels=4, num_blocks=2).eval()
    path = tmp_path_factory.mktemp("small") / "small_rlfn_x2.onnx"
    export_onnx(model, path, ExportOptions(parity_sizes=((24, 20),), exporter="torchscript"))
    return path


def _qdq(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]


def test_ort_cpu_int8_structure_numbers_and_sidecar(small_rlfn_onnx: Path, calib_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "small_int8.onnx"
    res = quantize_onnx(small_rlfn_onnx, out, calib_dir, **FAST)
    q = onnx.load(str(out))
    qdq = _qdq(q)
    assert len(qdq) > 20 and res.qdq_counts["quantized_convs"] == sum(n.op_type == "Conv" for n in q.graph.node)
    # uint8 activations, int8 weights (the ort-cpu target)
    inits = {i.name: i for i in q.graph.initializer}
    act_zp = [inits[n.input[2]] for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert act_zp and all(z.data_type == TensorProto.UINT8 for z in act_zp)
    assert any(i.data_type == TensorProto.INT8 and i.name.endswith("weight_quantized") for i in inits.values())
    # the image input keeps its exact 0..1 range: scale 1/255, zero point 0
    q_in = next(n for n in q.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    assert numpy_helper.to_array(inits[q_in.input[1]]) == pytest.approx(1 / 255)
    assert int(numpy_helper.to_array(inits[q_in.input[2]])) == 0
    # numbers: PSNR vs FP32 measured on held-out crops, reported per crop in the sidecar
    assert math.isfinite(res.psnr_db) and res.psnr_db >= 25.0 and res.min_psnr_db <= res.psnr_db + 1e-9
    side = json.loads(sidecar_path_for(out).read_text())
    Sidecar.from_dict(side)  # schema-valid: plain consumers can read it
    assert side["export"]["precision"] == "int8" and side["artifact"]["format"] == "onnx"
    assert side["artifact"]["file"] == out.name and side["scale"] == 2
    block = side["quantization"]
    assert block["target"] == "ort-cpu" and block["method"] == "percentile" and block["excluded_nodes"] == []
    assert block["calibration"]["crops"] == 6 and block["calibration"]["holdout_crops"] == 2
    assert block["psnr_vs_fp32_db"] == pytest.approx(res.psnr_db)
    assert len(side["parity"]["entries"]) == 2 and "FP32 ONNX graph" in side["parity"]["reference"]
    assert any("PSNR vs FP32" in line for line in res.summary())
    # it runs through the onnxruntime runner (what `edgesr bench --onnx` uses), scale from the sidecar
    from edgesr.runtimes import create_runner

    with create_runner(out, threads=1) as runner:
        y = runner.infer(np.random.default_rng(0).random((1, 3, 20, 24), dtype=np.float32))
    assert y.shape == (1, 3, 40, 48) and runner.scale == 2


def test_exclude_is_honoured_and_checked(small_rlfn_onnx: Path, calib_dir: Path, tmp_path: Path) -> None:
    fp32 = onnx.load(str(small_rlfn_onnx))
    convs = [n for n in fp32.graph.node if n.op_type == "Conv"]
    first, last = convs[0].name, convs[-1].name
    out = tmp_path / "excl.onnx"
    res = quantize_onnx(small_rlfn_onnx, out, calib_dir, exclude=[first, last], **FAST)
    assert res.excluded == [first, last]
    q = onnx.load(str(out))
    by_name = {n.name: n for n in q.graph.node}
    inits = {i.name for i in q.graph.initializer}
    for name in (first, last):  # float weights: read straight from an initializer, not a DequantizeLinear
        assert by_name[name].input[1] in inits
    assert res.qdq_counts["float_convs"] == 2
    assert json.loads(sidecar_path_for(out).read_text())["quantization"]["excluded_nodes"] == [first, last]
    with pytest.raises(UserInputError, match="no node named 'node_conv2d_99'"):
        quantize_onnx(small_rlfn_onnx, tmp_path / "x.onnx", calib_dir, exclude=["node_conv2d_99"], **FAST)


def test_tensorrt_target_is_symmetric_int8(small_rlfn_onnx: Path, calib_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "trt_int8.onnx"
    res = quantize_onnx(small_rlfn_onnx, out, calib_dir, target="tensorrt", **FAST)
    q = onnx.load(str(out))
    inits = {i.name: i for i in q.graph.initializer}
    qdq = _qdq(q)
    assert qdq
    for node in qdq:  # every zero point is int8 and 0; every quantized tensor is int8
        zp = inits[node.input[2]]
        assert zp.data_type == TensorProto.INT8 and not numpy_helper.to_array(zp).any(), node.name
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            assert inits[node.input[0]].data_type == TensorProto.INT8  # weights; no int32 bias DQ
    # Q/DQ feeds only Convs (TensorRT's placement); biases stay float
    dq_out = {n.output[0] for n in qdq if n.op_type == "DequantizeLinear"}
    consumers = {n.op_type for n in q.graph.node if any(i in dq_out for i in n.input)}
    assert consumers <= {"Conv", "Add", "MaxPool", "Mul", "Resize", "Shape", "Concat"} and "Conv" in consumers
    for n in q.graph.node:
        if n.op_type == "Conv" and len(n.input) > 2:
            assert n.input[2] in inits and inits[n.input[2]].data_type == TensorProto.FLOAT
    side = json.loads(sidecar_path_for(out).read_text())
    assert side["quantization"]["target"] == "tensorrt" and side["quantization"]["bias"] == "float32"
    assert math.isfinite(res.psnr_db)


def test_auto_exclusion_search(small_rlfn_onnx: Path, calib_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "auto.onnx"
    res = quantize_onnx(small_rlfn_onnx, out, calib_dir, exclude="auto", psnr_budget_db=200.0, max_excluded=2,
                        **FAST)
    # an unreachable budget: every candidate measured, two nodes excluded, a warning says so
    n_candidates = sum(n.op_type in ("Conv", "Add", "Mul", "Sigmoid", "LeakyRelu")
                       for n in onnx.load(str(small_rlfn_onnx)).graph.node)
    assert len(res.sensitivity) == n_candidates
    assert [e.psnr_db for e in res.sensitivity] == sorted(e.psnr_db for e in res.sensitivity)
    assert 1 <= len(res.excluded) <= 2 and len(res.steps) >= 1
    assert res.warnings and "not met" in res.warnings[0]
    side = json.loads(sidecar_path_for(out).read_text())["quantization"]
    assert side["excluded_nodes"] == res.excluded and len(side["sensitivity"]) == n_candidates
    # a budget met by the all-INT8 graph: nothing measured, nothing excluded
    easy = quantize_onnx(small_rlfn_onnx, tmp_path / "easy.onnx", calib_dir, exclude="auto", psnr_budget_db=1.0,
                         **FAST)
    assert easy.excluded == [] and easy.sensitivity == []


def test_switch_graph_reproduces_qdq_and_fp32(small_rlfn_onnx: Path, calib_dir: Path, tmp_path: Path) -> None:
    from edgesr.export.verify import create_session

    out = tmp_path / "q.onnx"
    quantize_onnx(small_rlfn_onnx, out, calib_dir, **FAST)
    fp32, q = onnx.load(str(small_rlfn_onnx)), onnx.load(str(out))
    graph, gate_of = switch_graph(q, fp32)
    x = np.random.default_rng(3).random((1, 3, 24, 28), dtype=np.float32)
    sw = create_session(graph)
    on = sw.run(["output"], {"input": x, GATES_INPUT: np.ones(len(gate_of), np.float32)})[0]
    off = sw.run(["output"], {"input": x, GATES_INPUT: np.zeros(len(gate_of), np.float32)})[0]
    ref_q = create_session(q).run(["output"], {"input": x})[0]
    ref_f = create_session(fp32).run(["output"], {"input": x})[0]
    assert np.abs(off - ref_f).max() * 255 < 1e-3
    assert np.abs(on - ref_q).max() * 255 < 0.5  # integer kernels vs float emulation: rounding ties only
    gates = node_gates(fp32, gate_of)
    conv = next(n for n in fp32.graph.node if n.op_type == "Conv")
    assert len(gates[conv.name]) == 4  # input, output, weight, bias


def test_official_rlfn_x4_tiny_calibration(export_cache, datasets_dir: Path, tmp_path: Path) -> None:
    fp32 = export_cache("rlfn_x4", parity_sizes=((24, 24),), exporter="torchscript").path
    res = quantize_onnx(fp32, tmp_path / "rlfn_x4_int8.onnx", datasets_dir / "DIV2K_test_LR_x4", calib_count=4,
                        calib_size=48, holdout_count=2, holdout_size=48, threads=2)
    assert res.psnr_db >= 35.0, res.summary()
    assert res.qdq_counts["quantized_convs"] == 57


def test_bad_inputs(small_rlfn_onnx: Path, calib_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="calibration image folder not found"):
        quantize_onnx(small_rlfn_onnx, tmp_path / "a.onnx", tmp_path / "missing", **FAST)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    with pytest.raises(UserInputError, match="no images in the calibration folder"):
        quantize_onnx(small_rlfn_onnx, tmp_path / "a.onnx", empty, **FAST)
    with pytest.raises(UserInputError, match="unknown quantization target 'tflite'"):
        quantize_onnx(small_rlfn_onnx, tmp_path / "a.onnx", calib_dir, target="tflite")
    with pytest.raises(UserInputError, match="unknown calibration method 'kl'"):
        quantize_onnx(small_rlfn_onnx, tmp_path / "a.onnx", calib_dir, method="kl")
    with pytest.raises(UserInputError, match="would overwrite its FP32 source"):
        quantize_onnx(small_rlfn_onnx, small_rlfn_onnx, calib_dir, force=True)
    existing = tmp_path / "exists.onnx"
    existing.write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        quantize_onnx(small_rlfn_onnx, existing, calib_dir, **FAST)
    assert existing.read_bytes() == b"keep"
    fp16 = tmp_path / "fp16.onnx"
    from edgesr.export.fp16 import convert_to_fp16

    onnx.save(convert_to_fp16(onnx.load(str(small_rlfn_onnx))), str(fp16))
    with pytest.raises(UserInputError, match="quantize the FP32 export"):
        quantize_onnx(fp16, tmp_path / "b.onnx", calib_dir, **FAST)
    assert not (tmp_path / "a.onnx").exists() and not (tmp_path / "b.onnx").exists()


def test_range_methods_and_histogram() -> None:
    rng = np.random.default_rng(0)
    h = cal._GrowingHistogram(max_bins=64)
    data = [rng.normal(0, 1, 1000), rng.normal(5, 10, 1000), np.array([250.0, -3.0])]
    for d in data:
        h.add(d.astype(np.float32))
    edges = h.edges()
    assert h.counts.sum() == 2002 and len(h.counts) <= 64
    assert edges[0] <= -3.0 and edges[-1] > 250.0
    values = np.concatenate(data)
    stats = {"t": cal.TensorStats("t", float(values.min()), float(values.max()), h.counts, edges),
             "input": cal.TensorStats("input", 0.02, 0.97, h.counts, edges)}
    for method in cal.RANGE_METHODS:
        r = cal.compute_ranges(stats, method, exact={"input": (0.0, 1.0)})
        lo, hi = r["t"]
        assert lo <= 0.0 <= hi and lo >= values.min() - 1e-6 and hi <= edges[-1] + 1e-6
        assert r["input"] == (0.0, 1.0)
        s_lo, s_hi = cal.compute_ranges(stats, method, symmetric=True)["t"]
        assert s_lo == -s_hi
    # the outlier at 250 is clipped by percentile and mse, kept by minmax
    assert cal.compute_ranges(stats, "minmax")["t"][1] == pytest.approx(250.0)
    assert cal.compute_ranges(stats, "percentile", percentile=99.9)["t"][1] < 100
    assert cal.compute_ranges(stats, "mse")["t"][1] < 250.0
    with pytest.raises(UserInputError, match="unknown calibration method"):
        cal.compute_ranges(stats, "kl")


def test_split_files_are_disjoint(tmp_path: Path) -> None:
    files = [tmp_path / f"{i:02d}.png" for i in range(20)]
    calib, select, hold = cal.split_files(files, holdout=8, select=4)
    assert len(hold) == 5 and len(select) == 4 and len(calib) == 11
    assert not (set(calib) & set(select)) and not (set(select) & set(hold)) and not (set(calib) & set(hold))
    assert cal.split_files(files[:2], 4, 4) == (files[:2], files[:2], files[:2])


def test_formats_registry() -> None:
    from edgesr.export.formats import export_artifact, get_format, list_formats, resolve_format

    assert {"onnx", "ort", "onnx-int8", "ort-int8"} <= set(list_formats())
    assert resolve_format("onnx", int8=True).name == "onnx-int8"
    assert resolve_format("ort", int8=True).name == "ort-int8"
    assert get_format("ort").outputs("d", "m") == [Path("d/m.ort"), Path("d/m.required_operators.config"),
                                                   Path("d/m.ort.json")]
    with pytest.raises(UserInputError, match="unknown artifact format 'tflite'"):
        get_format("tflite")
    with pytest.raises(UserInputError, match="does not take --fp16"):
        export_artifact(torch.nn.Identity(), "d", "m", "onnx-int8", ExportOptions(fp16=True))
    assert QUANT_TARGETS["tensorrt"].activation_symmetric and not QUANT_TARGETS["ort-cpu"].activation_symmetric


def test_cli_export_int8(calib_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from edgesr.cli.main import cli
    from edgesr.models import create_model

    torch.manual_seed(0)
    small = create_model("rlfn", scale=2, feature_channels=12, esa_channels=4, num_blocks=2).eval()
    monkeypatch.setattr("edgesr.cli.export_cmd.load_model", lambda *a, **k: small)
    res = CliRunner().invoke(cli, ["export", "rlfn", "--scale", "2", "--int8", "--calib-images", str(calib_dir),
                                   "--calib-count", "4", "-o", str(tmp_path), "--parity-size", "24x20",
                                   "--exporter", "torchscript"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rlfn_x2_int8.onnx", "rlfn_x2_int8.onnx.json"]
    assert "int8 (ort-cpu, percentile ranges" in res.output and "result: PSNR vs FP32" in res.output
    side = json.loads((tmp_path / "rlfn_x2_int8.onnx.json").read_text())
    assert side["quantization"]["calibration"]["crops"] == 4 and side["quantization"]["psnr_budget_db"] == 40.0
    missing = CliRunner().invoke(cli, ["export", "rlfn", "--scale", "2", "--format", "ort", "--int8",
                                       "--calib-images", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert isinstance(missing.exception, UserInputError) and "calibration image folder not found" in str(
        missing.exception)


def test_max_drop_budget_is_a_y_psnr_drop_on_validation_images(small_rlfn_onnx: Path, calib_dir: Path,
                                                                tmp_path: Path) -> None:
    """--int8-max-drop: the search's budget is the Y-PSNR drop vs FP32 on held-out images used as ground truth
    (a random-init model: low PSNRs, the mechanics are what is checked)."""
    out = tmp_path / "drop.onnx"
    res = quantize_onnx(small_rlfn_onnx, out, calib_dir, exclude="auto", max_drop_db=0.0, max_excluded=2,
                        val_count=2, **FAST)
    d = res.drops
    assert d is not None and d["select_images"] == 2 and d["holdout_images"] == 2
    assert d["select_drop_db"] == pytest.approx(d["fp32_select_db"] - d["int8_select_db"])
    assert 0 < d["fp32_select_db"] < 60 and math.isfinite(d["holdout_drop_db"])
    assert len(res.excluded) <= 2 and res.psnr_budget_db is None and res.max_drop_db == 0.0
    if d["select_drop_db"] > 0:  # a zero budget the all-INT8 graph misses: the search ran and says how it ended
        assert res.sensitivity and res.steps
    side = json.loads(sidecar_path_for(out).read_text())["quantization"]
    assert side["max_drop_db"] == 0.0 and side["y_psnr_drop"]["holdout_images"] == 2
    assert any("Y-PSNR drop vs FP32" in line for line in res.summary())
    with pytest.raises(UserInputError, match="max_drop_db must be a number of dB >= 0"):
        quantize_onnx(small_rlfn_onnx, tmp_path / "bad.onnx", calib_dir, max_drop_db=-0.5)
    # --int8-val DATASET: the drop on a dataset's images (here a folder of HR images: bicubic LR made from them)
    easy = quantize_onnx(small_rlfn_onnx, tmp_path / "val.onnx", calib_dir, exclude="auto", max_drop_db=99.0,
                         val_images=calib_dir, **FAST)
    assert easy.drops["select_images"] == 12 and "the dataset" in easy.drops["select_source"]
    assert easy.excluded == [] and easy.drops["select_drop_db"] < 99.0


def test_int8_budget_options_reach_every_int8_path() -> None:
    from edgesr.export.formats import Int8Budget, Int8Config, get_format, make_format_config
    from edgesr.export.openvino import OpenVINOConfig
    from edgesr.export.tensorrt.pipeline import TrtConfig

    values = {"int8": True, "calib_method": "mse", "int8_max_drop": 0.1, "int8_max_float": 20, "int8_val": "Set14"}
    onnx_cfg = make_format_config(get_format("onnx-int8"), values)
    assert isinstance(onnx_cfg, Int8Config)
    assert onnx_cfg.kwargs() == {"calib_images": None, "calib_count": None, "method": "mse", "max_drop_db": 0.1,
                                 "max_excluded": 20, "val_images": "Set14"}
    ov_cfg = make_format_config(get_format("openvino"), values)
    assert isinstance(ov_cfg, OpenVINOConfig) and ov_cfg.budget() == Int8Budget("mse", 0.1, 20, "Set14")
    trt_cfg = make_format_config(get_format("trt"), values)
    assert trt_cfg.budget().onnx_kwargs() == {"method": "mse", "max_drop_db": 0.1, "max_excluded": 20,
                                              "val_images": "Set14"}
    with pytest.raises(UserInputError, match="are for --int8"):
        TrtConfig(int8_max_drop=0.1).prepare(ExportOptions())
    with pytest.raises(UserInputError, match="--calib-method 'entropy' is not available"):
        Int8Budget(method="entropy").check(("minmax", "mse"))
    with pytest.raises(UserInputError, match="--int8-max-float must be >= 0"):
        Int8Budget(max_float=-1).check()
    with pytest.raises(UserInputError, match="dataset NoSuchSet not found"):
        Int8Budget(val_dataset="NoSuchSet").check()
