"""export -> (Q/DQ) -> engine with a fake TensorRT; the INT8 Q/DQ ONNX itself; engine-inspector JSON."""
from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from edgesr.artifacts import sidecar_path_for
from edgesr.errors import UserInputError
from edgesr.export import ExportOptions
from edgesr.export.tensorrt.build import TrtBuildOptions
from edgesr.export.tensorrt.engine_info import summarize_engine_info, tensor_precision
from edgesr.export.tensorrt.pipeline import TrtExportOptions, artifact_names, export_engine
from edgesr.export.tensorrt.qdq import quantize_for_tensorrt
from edgesr.export.tensorrt.readiness import check_readiness

FAST = dict(parity_sizes=((24, 20),), opt_shape=(64, 64), max_shape=(128, 128), reparam=False)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for i in range(4):
        base = rng.integers(0, 256, (12, 12, 3)).astype(np.uint8)  # smooth-ish images: upsampled noise
        Image.fromarray(base).resize((40 + i * 7, 36 + i * 5), Image.BICUBIC).save(d / f"img{i}.png")
    return d


def test_artifact_names():
    assert artifact_names("rlfn_x4_fp16", None, False) == ("rlfn_x4_fp16", "rlfn_x4_fp16_trt")
    assert artifact_names("rlfn_x4", None, True) == ("rlfn_x4", "rlfn_x4_int8_trt")
    assert artifact_names("rlfn_x4", "mine_trt", False) == ("mine", "mine_trt")
    assert artifact_names("rlfn_x4", "mine.engine", False) == ("mine_src", "mine")


def test_export_engine_fp16(tiny_model, fake_trt, gpu, tmp_path):
    trt = fake_trt("11.2.0.1")
    opts = TrtExportOptions(TrtBuildOptions(timing_cache=tmp_path / "trt.cache"))
    res = export_engine(tiny_model, tmp_path, ExportOptions(fp16=True, **FAST), opts, trt=trt, gpu=gpu)
    assert res.onnx_path.name == "model_x2_fp16.onnx"
    assert res.engine.engine_path.name.endswith("_fp16_trt.engine") and res.engine.sidecar_path.is_file()
    side = res.engine.sidecar
    assert side["tensorrt"]["precision"] == "fp16" and side["tensorrt"]["strongly_typed"] is True
    assert side["tensorrt"]["profiles"][0]["input"]["max"] == [4, 3, 128, 128]
    assert "create_network(2)" in trt.calls
    assert not any(c.startswith(("set_flag(FP16", "set_flag(INT8")) for c in trt.calls)
    lines = res.summary()
    assert any(line.startswith("parity") for line in lines) and any("TensorRT 11.2.0.1" in line for line in lines)
    with pytest.raises(UserInputError, match="--force"):  # every output is checked before any work
        export_engine(tiny_model, tmp_path, ExportOptions(fp16=True, **FAST), opts, trt=trt, gpu=gpu)


@pytest.mark.parametrize("quantizer", ["fallback", "project"])
def test_export_engine_int8_and_uint8_io(quantizer, tiny_model, fake_trt, gpu, calib_dir, tmp_path):
    if quantizer == "project":
        pytest.importorskip("edgesr.export.quantize")
    trt = fake_trt("10.13.0.35")
    opts = TrtExportOptions(TrtBuildOptions(int8=True), int8_calib=calib_dir, quantizer=quantizer)
    res = export_engine(tiny_model, tmp_path, ExportOptions(io="uint8", **FAST), opts, trt=trt, gpu=gpu)
    assert res.qdq_path is not None and res.qdq_path.name.endswith("_uint8_int8.onnx")
    q_side = json.loads(sidecar_path_for(res.qdq_path).read_text())
    assert q_side["export"]["precision"] == "int8" and q_side["quantization"]["target"] == "tensorrt"
    if quantizer == "fallback":
        psnr = q_side["quantization"]["vs_fp32"]["psnr_db"]  # None: identical 8-bit outputs
        assert q_side["quantization"]["calibration_images"] == 4 and (psnr is None or psnr > 25)
    assert check_readiness(res.qdq_path, polygraphy=False, dla=False).ok  # symmetric int8 only
    t = res.engine.sidecar["tensorrt"]
    assert t["precision"] == "int8" and t["source_onnx"]["qdq_nodes"] > 0 and t["strongly_typed"] is True
    assert any("UINT8 input: Shape nodes now read the input's Cast" in line for line in res.lines)
    assert check_readiness(res.onnx_path, polygraphy=False, dla=False).warnings == []
    with pytest.raises(UserInputError, match="--int8 with --fp16"):
        export_engine(tiny_model, tmp_path / "x", ExportOptions(fp16=True, **FAST), opts, trt=trt, gpu=gpu)


def test_qdq_is_symmetric_int8_per_channel_and_runs(tiny_exports, calib_dir, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "q.onnx"
    rep = quantize_for_tensorrt(tiny_exports["fp32"], out, calib_dir, method="minmax")
    model = onnx.load(str(out))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert rep.qdq_nodes == len(qdq) > 0 and "minmax" in rep.describe()
    for n in qdq:
        zp = inits.get(n.input[2]) if len(n.input) > 2 else None
        assert zp is not None and zp.dtype == np.int8 and not zp.any(), n.name  # symmetric signed int8
    weights = [n for n in qdq if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None]
    assert weights and all(inits[n.input[0]].dtype == np.int8 for n in weights)
    assert all(inits[n.input[1]].size > 1 for n in weights if inits[n.input[0]].ndim == 4)  # per output channel
    assert not any(inits.get(n.input[0], np.zeros(1, np.float32)).dtype == np.int32 for n in qdq)  # float biases
    assert check_readiness(out, polygraphy=False, dla=False).ok
    x = np.random.default_rng(0).random((1, 3, 24, 20), dtype=np.float32)
    y32 = ort.InferenceSession(str(tiny_exports["fp32"])).run(None, {"input": x})[0]
    y8 = ort.InferenceSession(str(out)).run(None, {"input": x})[0]
    assert y8.shape == y32.shape and 10 * np.log10(1 / np.mean((y8 - y32) ** 2)) > 25
    with pytest.raises(UserInputError, match="already quantized"):
        quantize_for_tensorrt(out, tmp_path / "qq.onnx", calib_dir)
    with pytest.raises(UserInputError, match="not an FP16"):
        quantize_for_tensorrt(tiny_exports["fp16"], tmp_path / "q16.onnx", calib_dir)
    with pytest.raises(UserInputError, match="no images"):
        quantize_for_tensorrt(tiny_exports["fp32"], tmp_path / "q2.onnx", tmp_path)


def test_engine_inspector_formats():
    v10 = {"Layers": [{"Name": "c", "LayerType": "CaskConvolution", "Outputs": [
        {"Name": "t", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
        {"Name": "q", "LayerType": "CaskConvolution", "Outputs": [{"Name": "t2", "Format/Datatype": "Row major Int8"}]},
        {"Name": "r", "LayerType": "Reformat", "Outputs": [{"Name": "o", "Format/Datatype": "Row major linear FP32"}]}],
        "Bindings": ["input", "output"]}
    s = summarize_engine_info(v10)
    assert s["count"] == 3 and s["by_type"] == {"CaskConvolution": 2, "Reformat": 1}
    assert s["by_precision"] == {"fp16": 1, "int8": 1, "fp32": 1} and s["io_tensors"] == ["input", "output"]
    v11 = {"Layers": [{"Name": "c", "LayerType": "CaskConvolution", "Outputs": [{"Name": "t", "Format": "kHWC8",
                                                                                  "DataType": "Half"}]}],
           "I/O Tensors": ["input", "output"]}
    s = summarize_engine_info(v11)
    assert s["by_precision"] == {"fp16": 1} and s["io_tensors"] == ["input", "output"] and s["detailed"]
    names_only = summarize_engine_info({"Layers": ["a", "b"], "Bindings": ["input", "output"]})
    assert names_only["count"] == 2 and not names_only["detailed"]
    assert tensor_precision({"DataType": "Float"}) == "fp32" and summarize_engine_info(None)["count"] == 0


def test_cli_export_trt_end_to_end_with_fake(fake_trt, gpu, tmp_path, monkeypatch, capsys):
    """`edgesr export MODEL --format trt` wiring, with the fake as `tensorrt` and a pretend GPU."""
    from edgesr.cli.main import main
    from edgesr.export.tensorrt import runtime

    trt = fake_trt("10.13.0.35", scale=4)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(runtime, "require_gpu", lambda index=0, what="TensorRT": gpu)
    with pytest.raises(SystemExit) as info:
        main(["export", "rlfn_ntire", "--random-init", "--format", "trt", "--fp16", "--parity-size", "16x16",
              "--no-reparam", "--exporter", "torchscript",
              "--max-shape", "256x256", "--opt-level", "3", "--workspace", "256", "--timing-cache",
              str(tmp_path / "trt.cache"), "--hardware-compat", "-o", str(tmp_path)])
        raise SystemExit(0)
    out = capsys.readouterr()
    assert info.value.code == 0, out.err
    assert (tmp_path / "rlfn_ntire_x4_fp16.onnx").is_file() and (tmp_path / "rlfn_ntire_x4_fp16_trt.engine").is_file()
    side = json.loads((tmp_path / "rlfn_ntire_x4_fp16_trt.engine.json").read_text())
    assert side["tensorrt"]["builder_options"]["hardware_compatibility_level"] == "AMPERE_PLUS"
    assert side["tensorrt"]["profiles"][0]["input"]["max"] == [4, 3, 256, 256]
    assert "set_memory_pool_limit(WORKSPACE, 268435456)" in trt.calls and "builder_optimization_level=3" in trt.calls
    assert "TensorRT 10.13.0.35" in out.out and (tmp_path / "trt.cache").is_file()
    assert "colored" not in out.out + out.err  # Polygraphy's log stays quiet in edgesr's output


def test_trt_is_a_registered_format(tiny_model, fake_trt, gpu, tmp_path, monkeypatch):
    from edgesr.export.formats import export_artifact, list_formats
    from edgesr.export.tensorrt import runtime

    assert "trt" in list_formats()
    trt = fake_trt("11.0.0.1")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(runtime, "require_gpu", lambda index=0, what="TensorRT": gpu)
    res = export_artifact(tiny_model, tmp_path, "tiny_trt", "trt", ExportOptions(fp16=True, **FAST),
                          opt_level=2, timing_cache=tmp_path / "c.cache")
    assert res.path == tmp_path / "tiny_trt.engine" and (tmp_path / "tiny.onnx").is_file()
    assert res.engine.sidecar["tensorrt"]["builder_options"]["opt_level"] == 2
    with pytest.raises(UserInputError, match="bad TensorRT build option"):
        export_artifact(tiny_model, tmp_path, "x_trt", "trt", ExportOptions(**FAST), bogus=1)
