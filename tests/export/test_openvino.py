"""OpenVINO IR export (`--format openvino`) and the OpenVINO runner on .xml: parity at three sizes with the
f32 precision hint, FP16 weights, the precision the runner used, file names beside ncnn's, clear errors.

A tiny model keeps these fast; the official RLFN x4 (parity at three sizes, Set5 vs PyTorch, NNCF INT8) is
in the slow tests at the end and in benchmarks/int8_quality.py.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from edgesr.errors import MissingDependencyError, UserInputError
from edgesr.export import ExportOptions
from edgesr.export.formats import export_artifact, get_format
from edgesr.export.openvino import OpenVINOConfig, export_openvino
from edgesr.runtimes import create_runner
from tests.export.conftest import TinySR

pytest.importorskip("openvino", reason="openvino not installed (pip install edgesr[openvino])")

SIZES = ((24, 20), (33, 17), (41, 40))  # odd sizes included


def _tiny() -> TinySR:
    torch.manual_seed(0)
    return TinySR().eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("openvino")
    model = _tiny()
    out = {fp16: export_artifact(model, root, "tiny" + ("_fp16" if fp16 else "") + "_ov", "openvino",
                                 ExportOptions(fp16=fp16, parity_sizes=SIZES, max_abs_diff=1e-3))
           for fp16 in (False, True)}
    return model, out


def test_fp32_ir_matches_pytorch_at_three_sizes_with_f32_hint(exported) -> None:
    model, results = exported
    res = results[False]
    assert [p.name for p in res.files] == ["tiny_ov.xml", "tiny_ov.bin", "tiny_ov.xml.json"]
    entries = res.sidecar.parity.entries
    assert [(e.height, e.width) for e in entries] == list(SIZES)
    assert max(e.max_abs_diff for e in entries) <= 1e-3  # 0..255 scale
    side = json.loads(res.sidecar_path.read_text())
    assert side["artifact"]["format"] == "openvino" and side["export"]["precision"] == "fp32"
    assert "INFERENCE_PRECISION_HINT f32" in side["parity"]["runtime"]
    block = side["openvino"]
    assert block["bin"]["file"] == "tiny_ov.bin" and block["bin"]["bytes"] == res.files[1].stat().st_size
    assert block["inference_precision_hint"] == "f32" and block["input"] == "input"
    assert [f["file"] for f in side["files"]] == ["tiny_ov.xml", "tiny_ov.bin"]
    assert side["graph"]["op_counts"]["Convolution"] == 2


@pytest.mark.parametrize("shape", [(1, 3, 24, 20), (2, 3, 33, 17)])
def test_runner_loads_xml_and_records_f32(exported, shape) -> None:
    model, results = exported
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    with create_runner(results[False].path, threads=1) as runner:
        y = runner.infer(x)
        info = runner.describe()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert y.shape == ref.shape
    assert np.abs(y - ref).max() * 255 <= 1e-3
    assert info["backend"] == "openvino" and info["precision"] == "f32" and info["precision_hint"] == "f32"
    assert runner.scale == 2  # from the sidecar


def test_runner_records_the_precision_the_cpu_used_for_bf16(exported) -> None:
    import openvino as ov

    with create_runner(exported[1][False].path, threads=1, precision="bf16") as runner:
        runner.infer(np.zeros((1, 3, 16, 16), np.float32))
        used = runner.describe()["precision"]
    # bf16 where the CPU has it (AVX512-BF16/AMX), else OpenVINO falls back to f32: the runner says which
    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert used == ("bf16" if "BF16" in caps else "f32")


def test_fp16_weights_ir(exported) -> None:
    _, results = exported
    res32, res16 = results[False], results[True]
    assert res16.files[1].stat().st_size < 0.7 * res32.files[1].stat().st_size  # float16 weights
    side = json.loads(res16.sidecar_path.read_text())
    assert side["export"]["precision"] == "fp16" and side["openvino"]["weights"].startswith("f16")
    assert all(e.fp16_psnr_db is not None and e.fp16_psnr_db >= 60 for e in res16.sidecar.parity.entries)


def test_ir_beside_ncnn_never_shares_its_bin(tmp_path) -> None:
    fmt = get_format("openvino")
    assert fmt.outputs(tmp_path, "m_ov")[:2] == [tmp_path / "m_ov.xml", tmp_path / "m_ov.bin"]
    assert OpenVINOConfig().name_suffix == "_ov" and OpenVINOConfig(int8=True).name_suffix == "_int8_ov"
    (tmp_path / "m.param").write_text("7767517\n")
    (tmp_path / "m.bin").write_bytes(b"\0" * 8)
    with pytest.raises(UserInputError, match="ncnn artifact m.param"):
        export_openvino(_tiny(), tmp_path / "m.xml", ExportOptions(force=True))
    assert (tmp_path / "m.bin").read_bytes() == b"\0" * 8


def test_bad_options_are_refused_before_work(tmp_path) -> None:
    model = _tiny()
    with pytest.raises(UserInputError, match=r"\.xml"):
        export_openvino(model, tmp_path / "m.onnx")
    with pytest.raises(UserInputError, match="--fp16-io"):
        export_openvino(model, tmp_path / "m.xml", ExportOptions(fp16_io=True))
    with pytest.raises(UserInputError, match="add --int8"):
        export_openvino(model, tmp_path / "m.xml", config=OpenVINOConfig(int8_max_drop=0.1))
    with pytest.raises(UserInputError, match="exclude each other"):
        export_openvino(model, tmp_path / "m.xml", ExportOptions(fp16=True), config=OpenVINOConfig(int8=True))
    with pytest.raises(UserInputError, match="calibration image folder not found"):
        export_openvino(model, tmp_path / "m.xml", config=OpenVINOConfig(int8=True, calib_images=tmp_path / "no"))
    with pytest.raises(UserInputError, match="int8-max-drop"):
        export_openvino(model, tmp_path / "m.xml", config=OpenVINOConfig(int8=True, int8_max_drop=-1.0))
    assert list(tmp_path.iterdir()) == []


def test_missing_openvino_names_the_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(MissingDependencyError, match=r"edgesr\[openvino\]"):
        export_openvino(_tiny(), tmp_path / "m.xml")


def test_missing_nncf_names_the_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(MissingDependencyError, match=r"nncf.*edgesr\[openvino\]"):
        export_openvino(_tiny(), tmp_path / "m.xml", config=OpenVINOConfig(int8=True))


@pytest.mark.parametrize("args, message", [
    (["--format", "openvino", "--fp16-io"], "--fp16-io is not supported for --format openvino"),
    (["--format", "openvino", "--int8-max-drop", "0.1"], "--int8-max-drop applies to INT8 exports: add --int8"),
    (["--format", "openvino", "--int8", "--calib-method", "entropy"], "--calib-method 'entropy' is not available"),
    (["--format", "ncnn", "--int8-max-float", "3"], "--int8-max-float applies to"),
    (["--format", "openvino", "--int8", "--int8-val", "NoSuchSet"], "dataset NoSuchSet not found"),
    (["--int8", "--int8-val", "NoSuchSet"], "dataset NoSuchSet not found"),
])
def test_cli_bad_input_is_one_error_line(args, message, tmp_path, capsys) -> None:
    from edgesr.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["export", "rlfn", "--scale", "4", "--random-init", "-o", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], err


# ------------------------------------------------------------------------------ official weights (slow)


@pytest.fixture(scope="module")
def rlfn_ir(rlfn_x4, tmp_path_factory):
    root = tmp_path_factory.mktemp("openvino_rlfn")
    return export_artifact(rlfn_x4, root, "rlfn_x4_ov", "openvino",
                           ExportOptions(parity_sizes=((64, 64), (127, 93), (339, 510)), max_abs_diff=1e-3))


@pytest.mark.slow
def test_rlfn_x4_ir_parity_and_set5_equal_pytorch(rlfn_x4, rlfn_ir, datasets_dir) -> None:
    from edgesr.data import open_eval_dataset
    from edgesr.evaluate import evaluate
    from edgesr.inference import torch_sr_function

    entries = rlfn_ir.sidecar.parity.entries
    assert [(e.height, e.width) for e in entries] == [(64, 64), (127, 93), (339, 510)]
    assert max(e.max_abs_diff for e in entries) <= 1e-3  # f32 hint, 0..255 scale (measured ~5e-4)
    set5 = open_eval_dataset(datasets_dir / "Set5", 4)
    with create_runner(rlfn_ir.path, threads=2) as runner:
        ov_psnr = evaluate(runner.as_sr_function(), set5, 4, min_size=rlfn_x4.min_input_size).psnr
        assert runner.describe()["precision"] == "f32"
    torch_psnr = evaluate(torch_sr_function(rlfn_x4), set5, 4, min_size=rlfn_x4.min_input_size).psnr
    assert abs(ov_psnr - torch_psnr) <= 0.01
    assert ov_psnr == pytest.approx(32.213, abs=0.005)  # the published RLFN x4 Set5 figure, 32.24 (MATLAB)


@pytest.mark.slow
def test_nncf_int8_ir_within_a_drop_budget(tmp_path, datasets_dir) -> None:
    """NNCF INT8 of the tiny model, calibrated on real LR crops; a zero budget forces the accuracy control,
    which may keep one group of layers in float; the sidecar records the drop measured on held-out images."""
    pytest.importorskip("nncf")
    res = export_openvino(_tiny(), tmp_path / "tiny_int8_ov.xml", ExportOptions(parity_sizes=SIZES),
                          config=OpenVINOConfig(int8=True, calib_count=4, int8_max_drop=0.0, int8_max_float=1))
    q = res.quantize
    block = json.loads(res.sidecar_path.read_text())["quantization"]
    assert res.sidecar.export.precision == "int8" and block["tool"].startswith("nncf")
    assert block["validation"]["images"] == 8 and block["calibration"]["crops"] == 4
    assert block["val_drop_db"] == pytest.approx(q.fp32_psnr_db - q.int8_psnr_db)
    assert q.accuracy_control == (q.fp32_psnr_db - q.plain_int8_psnr_db > 0.0)
    assert q.quantized_convs + q.float_convs == 2 and q.fake_quantize > 0
    with create_runner(res.path, threads=1) as runner:
        y = runner.infer(np.random.default_rng(0).random((1, 3, 20, 24), dtype=np.float32))
    assert y.shape == (1, 3, 40, 48)
