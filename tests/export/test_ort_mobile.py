"""ONNX Runtime mobile (.ort): files, sidecar, parity of the .ort itself vs PyTorch, FP16, INT8, CLI, errors.

Tolerances: FP32 .ort vs PyTorch max |diff| <= 1e-2 on the 0..255 scale; FP16 .ort vs PyTorch FP32
PSNR >= 45 dB (measured for RLFN x4: 80-84 dB).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgesr.errors import OutputExistsError, UserInputError
from edgesr.export import ExportOptions, Sidecar
from edgesr.export.ort_mobile import config_path_for, convert_onnx_to_ort, export_ort, read_required_ops

OPTS = dict(parity_sizes=((24, 20), (17, 15)), exporter="torchscript")


@pytest.fixture
def small_rlfn():
    from edgesr.models import create_model

    torch.manual_seed(0)
    return create_model("rlfn", scale=2, feature_channels=12, esa_channels=4, num_blocks=2).eval()


def _real_crop(datasets_dir: Path, h: int, w: int) -> np.ndarray:
    from edgesr.data import read_image

    img = read_image(datasets_dir / "DIV2K_test_LR_x4" / "0905.png")[50:50 + h, 80:80 + w]
    return np.ascontiguousarray((img.astype(np.float32) / 255).transpose(2, 0, 1)[None])


def test_ort_fp32_files_sidecar_and_parity(small_rlfn, datasets_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "small.ort"
    res = export_ort(small_rlfn, path, ExportOptions(**OPTS))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.ort", "small.ort.json",
                                                          "small.required_operators.config"]
    assert res.config_path == config_path_for(path)
    ops = read_required_ops(res.config_path)
    all_ops = {op for names in ops.values() for op in names}
    assert {"Resize", "DepthToSpace", "MaxPool"} <= all_ops and ({"Conv", "FusedConv"} & all_ops)
    side = json.loads((tmp_path / "small.ort.json").read_text())
    Sidecar.from_dict(side)
    import hashlib

    assert side["artifact"] == {"file": "small.ort", "format": "ort", "bytes": path.stat().st_size,
                                "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert side["export"]["precision"] == "fp32" and side["scale"] == 2
    ort = side["ort"]
    assert ort["optimization_style"] == "fixed" and ort["target_platform"] == "arm"
    assert ort["required_operators"] == "small.required_operators.config" and ort["required_ops"] == ops
    assert ort["max_abs_diff_vs_onnx"] < 1e-2
    entries = side["parity"]["entries"]
    assert [(e["height"], e["width"]) for e in entries] == [(24, 20), (17, 15)]
    assert all(e["max_abs_diff"] <= 1e-2 for e in entries) and ".ort" in side["parity"]["runtime"]
    # the .ort runs through the onnxruntime runner (sidecar found beside it) and matches PyTorch
    from edgesr.runtimes import create_runner

    x = _real_crop(datasets_dir, 31, 26)
    with create_runner(path, threads=1) as runner:
        y = runner.infer(x)
    with torch.no_grad():
        ref = small_rlfn(torch.from_numpy(x)).numpy()
    assert runner.scale == 2 and np.abs(y - ref).max() * 255 <= 1e-2
    assert any("ORT format: optimization style fixed" in line for line in res.summary())


def test_ort_fp16(small_rlfn, tmp_path: Path) -> None:
    res = export_ort(small_rlfn, tmp_path / "small_fp16.ort", ExportOptions(fp16=True, **OPTS))
    side = res.sidecar.to_dict()
    assert side["export"]["precision"] == "fp16" and side["ort"]["source_onnx"]["precision"] == "fp16"
    assert 45.0 <= side["parity"]["fp16_min_psnr_db"] < 120.0  # float16 weights: close, not identical
    assert all(e["fp16_psnr_db"] >= 45.0 for e in side["parity"]["entries"])
    assert side["ort"]["max_abs_diff_vs_onnx"] < 1e-2  # the .ort computes what the FP16 ONNX does


def test_official_rlfn_x4_ort(datasets_dir: Path, tmp_path: Path) -> None:
    from edgesr.models import create_model

    model = create_model("rlfn_x4")
    res = export_ort(model, tmp_path / "rlfn_x4.ort", ExportOptions(parity_sizes=((24, 24),), exporter="torchscript"))
    entry = res.sidecar.to_dict()["parity"]["entries"][0]
    assert entry["max_abs_diff"] <= 1e-2 and entry["psnr_db"] > 80
    assert res.sidecar.halo == 32 and res.sidecar.min_size == 15


def test_ort_int8(small_rlfn, datasets_dir: Path, tmp_path: Path) -> None:
    res = export_ort(small_rlfn, tmp_path / "small_int8.ort", ExportOptions(**OPTS),
                     quantize={"calib_images": datasets_dir / "DIV2K_test_LR_x4", "calib_count": 4, "calib_size": 32,
                               "holdout_count": 2, "holdout_size": 32})
    side = res.sidecar.to_dict()
    assert side["export"]["precision"] == "int8" and side["quantization"]["target"] == "ort-cpu"
    ops = {op for names in side["ort"]["required_ops"].values() for op in names}
    assert "QLinearConv" in ops  # the QDQ groups were fused at conversion (Fixed style)
    assert side["ort"]["max_abs_diff_vs_onnx"] < 1.0


def test_convert_and_errors(small_rlfn, tmp_path: Path) -> None:
    from edgesr.export import export_onnx

    onnx_path = tmp_path / "m.onnx"
    export_onnx(small_rlfn, onnx_path, ExportOptions(**OPTS))
    conv = convert_onnx_to_ort(onnx_path, tmp_path / "out" / "m.ort", optimization_style="runtime")
    assert conv.ort_path.is_file() and conv.config_path.name == "m.required_operators.config"
    with pytest.raises(OutputExistsError):
        convert_onnx_to_ort(onnx_path, tmp_path / "out" / "m.ort")
    with pytest.raises(UserInputError, match="unknown ORT optimization style 'fast'"):
        convert_onnx_to_ort(onnx_path, tmp_path / "x.ort", optimization_style="fast")
    with pytest.raises(UserInputError, match="must end in .ort"):
        export_ort(small_rlfn, tmp_path / "x.onnx")
    with pytest.raises(UserInputError, match="INT8 and FP16 exclude each other"):
        export_ort(small_rlfn, tmp_path / "x.ort", ExportOptions(fp16=True), quantize={"calib_images": tmp_path})
    (tmp_path / "taken.ort.json").write_text("{}")
    with pytest.raises(OutputExistsError):
        export_ort(small_rlfn, tmp_path / "taken.ort", ExportOptions(**OPTS))
    assert not (tmp_path / "taken.ort").exists()
    with pytest.raises(UserInputError, match="ONNX model not found"):
        convert_onnx_to_ort(tmp_path / "missing.onnx", tmp_path / "y.ort")


def test_cli_export_ort(small_rlfn, tmp_path: Path, monkeypatch) -> None:
    from edgesr.cli.main import cli

    small_rlfn.weights_path = None
    monkeypatch.setattr("edgesr.cli.export_cmd.load_model", lambda *a, **k: small_rlfn)
    res = CliRunner().invoke(cli, ["export", "rlfn", "--scale", "2", "--format", "ort", "-o", str(tmp_path),
                                   "--parity-size", "24x20", "--exporter", "torchscript"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rlfn_x2.ort", "rlfn_x2.ort.json",
                                                          "rlfn_x2.required_operators.config"]
    assert ".ort parity 24x20: vs PyTorch" in res.output and "ORT format:" in res.output
    again = CliRunner().invoke(cli, ["export", "rlfn", "--scale", "2", "--format", "ort", "-o", str(tmp_path)])
    assert isinstance(again.exception, OutputExistsError)
    bad = CliRunner().invoke(cli, ["export", "rlfn", "--scale", "2", "--format", "ort", "--calib-count", "4",
                                   "-o", str(tmp_path / "b")])
    assert isinstance(bad.exception, UserInputError) and "add --int8" in str(bad.exception)
