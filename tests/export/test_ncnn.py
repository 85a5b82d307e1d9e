"""ncnn export (pnnx) and the ncnn runner: parity at three sizes, FP16 weights, I/O ranges, clear errors.

Tiny models keep this fast; the official-weights figures (RLFN x4, RFDN x4: max abs diff and Set5 PSNR
per runtime) are measured by benchmarks/mobile_parity.py.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.errors import ExportError, MissingDependencyError, UserInputError
from edgesr.export import ExportOptions
from edgesr.export.ncnn import export_ncnn, param_io_blobs, read_param, unknown_layer_types
from edgesr.runtimes import create_runner

SIZES = ((24, 20), (33, 17), (41, 40))  # odd sizes included


def _need_mobile():
    pytest.importorskip("ncnn", reason="ncnn not installed (pip install edgesr[mobile])")
    pytest.importorskip("pnnx", reason="pnnx not installed (pip install edgesr[mobile])")


def _torch(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _tiny_sr() -> nn.Module:
    torch.manual_seed(0)
    model = _TinySR().eval()
    model.min_input_size = 4
    return model


class _TinySR(nn.Module):
    """conv -> spatial gate (pool, bilinear resize to the input's size, like ESA) -> conv -> PixelShuffle(2)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = 2
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.head(x), 0.05)
        pooled = F.max_pool2d(y, 3, stride=2)
        y = y * torch.sigmoid(F.interpolate(pooled, size=(y.shape[2], y.shape[3]), mode="bilinear",
                                            align_corners=False))
        return self.shuffle(self.tail(y))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    _need_mobile()
    root = tmp_path_factory.mktemp("ncnn")
    model = _tiny_sr()
    out = {}
    for fp16 in (False, True):
        path = root / f"tiny{'_fp16' if fp16 else ''}_ncnn.param"
        out[fp16] = export_ncnn(model, path, ExportOptions(fp16=fp16, parity_sizes=SIZES, max_abs_diff=1e-2))
    return model, out


def test_fp32_export_matches_pytorch_at_three_sizes(exported) -> None:
    model, results = exported
    res = results[False]
    assert [p.name for p in res.files] == ["tiny_ncnn.param", "tiny_ncnn.bin", "tiny_ncnn.param.json"]
    assert all(p.is_file() for p in res.files)
    entries = res.sidecar.parity.entries
    assert [(e.height, e.width) for e in entries] == list(SIZES)
    assert all(e.max_abs_diff <= 1e-2 and e.psnr_db > 80 for e in entries)
    # the sidecar a C++/Android app reads
    side = json.loads(res.sidecar_path.read_text())
    assert side["artifact"]["format"] == "ncnn" and side["artifact"]["file"] == "tiny_ncnn.param"
    block = side["ncnn"]
    assert (block["input_blob"], block["output_blob"]) == ("in0", "out0")
    assert block["bin"]["file"] == "tiny_ncnn.bin" and block["bin"]["bytes"] == res.files[1].stat().st_size
    assert block["norm_vals"] == pytest.approx([1 / 255] * 3) and block["mean_vals"] == [0.0, 0.0, 0.0]
    assert block["fp16_weights"] is False and block["opt"]["use_fp16_storage"] is False
    assert side["inputs"][0]["name"] == "in0" and side["inputs"][0]["value_range"] == [0.0, 1.0]
    assert side["scale"] == 2 and side["min_size"] == 4 and side["export"]["exporter"] == "pnnx"
    # the param: one Input, dynamic-size layers only, no layer type ncnn lacks
    layers = read_param(res.path)
    assert param_io_blobs(layers) == (["in0"], ["out0"])
    assert unknown_layer_types(layers) == []
    assert side["graph"]["op_counts"]["Convolution"] == 2 and "Interp" in side["graph"]["op_counts"]


@pytest.mark.parametrize("shape", [(1, 3, 24, 20), (1, 3, 33, 17), (2, 3, 57, 31)])
def test_runner_matches_pytorch_and_keeps_shapes(exported, shape) -> None:
    model, results = exported
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    keep = x.copy()
    with create_runner(results[False].path, threads=1) as runner:
        y = runner.infer(x)
        info = runner.describe()
        stages = runner.last_timing.stages
    assert y.shape == (shape[0], 3, shape[2] * 2, shape[3] * 2)
    np.testing.assert_allclose(y, _torch(model, x), atol=1e-4, rtol=0)
    np.testing.assert_array_equal(x, keep)  # ncnn computes in place into its input Mat: never the caller's array
    assert info["backend"] == "ncnn" and info["threads"] == 1 and info["precision"] == "fp32"
    assert set(stages) == {"input", "compute", "output"}


def test_fp16_weights_export(exported) -> None:
    model, results = exported
    res32, res16 = results[False], results[True]
    assert res16.files[1].stat().st_size < 0.7 * res32.files[1].stat().st_size  # float16 weights
    side = json.loads(res16.sidecar_path.read_text())
    assert side["export"]["precision"] == "fp16" and side["ncnn"]["fp16_weights"] is True
    assert side["ncnn"]["opt"]["use_fp16_storage"] is True
    assert all(e.fp16_psnr_db is not None and e.fp16_psnr_db >= 40 for e in res16.sidecar.parity.entries)
    x = np.random.default_rng(2).random((1, 3, 29, 23), dtype=np.float32)
    with create_runner(res16.path) as runner:
        assert runner.describe()["fp16"] is True  # from the sidecar
        y = runner.infer(x)
    assert y.shape == (1, 3, 58, 46)
    assert np.abs(y - _torch(model, x)).max() < 0.02


def test_float255_io(tmp_path) -> None:
    _need_mobile()
    model = _tiny_sr()
    res = export_ncnn(model, tmp_path / "t255.param", ExportOptions(io="float255", parity_sizes=((21, 19),)))
    side = json.loads(res.sidecar_path.read_text())
    assert side["ncnn"]["norm_vals"] == [1.0, 1.0, 1.0] and side["ncnn"]["output_scale"] == 1.0
    assert side["inputs"][0]["value_range"] == [0.0, 255.0]
    x = np.random.default_rng(3).random((1, 3, 18, 22), dtype=np.float32)
    np.testing.assert_allclose(create_runner(res.path).infer(x), _torch(model, x), atol=1e-4)


class FFTGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(x), s=x.shape[-2:]) * 0.5 + x * 0.5


class WithFFT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = 2
        self.stem = nn.Conv2d(3, 12, 3, padding=1)
        self.spectral = FFTGate()
        self.up = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.spectral(self.stem(x)))


def test_op_ncnn_cannot_express_is_named(tmp_path) -> None:
    _need_mobile()
    path = tmp_path / "fft.param"
    with pytest.raises(ExportError) as info:
        export_ncnn(WithFFT().eval(), path, ExportOptions(parity_sizes=((24, 24),)))
    msg = str(info.value)
    assert "ncnn cannot express" in msg and "torch.fft.rfft2" in msg
    assert "in module 'spectral' (FFTGate)" in msg
    assert list(tmp_path.iterdir()) == []


def test_missing_pnnx_names_the_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pnnx", None)  # `import pnnx` raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install edgesr\[mobile\]"):
        export_ncnn(_tiny_sr(), tmp_path / "m.param")
    assert list(tmp_path.iterdir()) == []


def test_missing_ncnn_names_the_extra(tmp_path, monkeypatch) -> None:
    from edgesr.runtimes.ncnn_runner import NcnnRunner

    (tmp_path / "m.param").write_text("7767517\n1 1\nInput in0 0 1 in0\n")
    monkeypatch.setitem(sys.modules, "ncnn", None)
    with pytest.raises(MissingDependencyError, match=r"pip install edgesr\[mobile\]"):
        export_ncnn(_tiny_sr(), tmp_path / "out.param")
    with pytest.raises(MissingDependencyError, match=r"pip install edgesr\[mobile\]"):
        NcnnRunner(tmp_path / "m.param")
    with pytest.raises(MissingDependencyError, match=r"edgesr\[mobile\]"):
        create_runner(tmp_path / "m.param")


def test_bad_options_are_refused_before_work(tmp_path) -> None:
    _need_mobile()
    with pytest.raises(UserInputError, match="must end in .param"):
        export_ncnn(_tiny_sr(), tmp_path / "m.onnx")
    with pytest.raises(UserInputError, match="io 'uint8' is not supported for ncnn.*substract_mean_normalize"):
        export_ncnn(_tiny_sr(), tmp_path / "m.param", ExportOptions(io="uint8"))
    with pytest.raises(UserInputError, match="--fp16-io is not supported"):
        export_ncnn(_tiny_sr(), tmp_path / "m.param", ExportOptions(fp16_io=True))
    assert list(tmp_path.iterdir()) == []


def test_param_reader_and_unknown_layers(tmp_path) -> None:
    _need_mobile()
    param = tmp_path / "x.param"
    param.write_text("7767517\n4 4\nInput in0 0 1 in0\nConvolution conv 1 1 in0 a 0=3 1=3\n"
                     "aten::erfinv e 1 1 a b\nPixelShuffle ps 1 1 b out0 0=2\n")
    layers = read_param(param)
    assert [la.type for la in layers] == ["Input", "Convolution", "aten::erfinv", "PixelShuffle"]
    assert layers[1].params == "0=3 1=3" and layers[2].bottoms == ("a",) and layers[2].tops == ("b",)
    assert param_io_blobs(layers) == (["in0"], ["out0"])
    assert unknown_layer_types(layers) == ["aten::erfinv"]
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(UserInputError, match="aten::erfinv"):
        create_runner(param).activate()
    bad = tmp_path / "bad.param"
    bad.write_text("not a param\n")
    with pytest.raises(UserInputError, match="not an ncnn text param"):
        read_param(bad)


def test_runner_validates_input_and_output_shape(exported, tmp_path) -> None:
    _, results = exported
    runner = create_runner(results[False].path, min_size=8)
    with pytest.raises(UserInputError, match="H, W >= 8"):
        runner.infer(np.zeros((1, 3, 6, 9), np.float32))
    with pytest.raises(UserInputError, match="dtype float64"):
        runner.infer(np.zeros((1, 3, 16, 16)))
    wrong = create_runner(results[False].path, scale=3)  # as if the artifact had frozen a shape
    with pytest.raises(UserInputError, match="froze a shape"):
        wrong.infer(np.zeros((1, 3, 16, 16), np.float32))
    lonely = tmp_path / "lonely.param"
    lonely.write_text(results[False].path.read_text())
    with pytest.raises(UserInputError, match="weights of lonely.param are missing"):
        create_runner(lonely).activate()


def test_bench_cli_runs_an_ncnn_artifact(exported, tmp_path) -> None:
    from click.testing import CliRunner

    from edgesr.cli.main import cli

    _, results = exported
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--artifact", str(results[False].path), "--size", "24x24",
                                      "--threads", "1", "--min-seconds", "0", "--min-iters", "1",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "ncnn" in out.read_text()


def test_cli_export_format_ncnn(weights_dir, tmp_path) -> None:
    _need_mobile()
    from click.testing import CliRunner

    from edgesr.cli.main import cli
    from edgesr.export.formats import get_format

    assert get_format("ncnn").suffixes == (".param", ".bin")
    result = CliRunner().invoke(cli, ["export", "rlfn_ntire", "--scale", "4", "--format", "ncnn", "--fp16",
                                      "--parity-size", "32x32", "--parity-size", "23x41", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rlfn_ntire_x4_fp16.bin", "rlfn_ntire_x4_fp16.param",
                                                          "rlfn_ntire_x4_fp16.param.json"]
    assert "parity 23x41" in result.output and "fp16 vs fp32" in result.output
    side = json.loads((tmp_path / "rlfn_ntire_x4_fp16.param.json").read_text())
    assert side["model"]["variant"] == "rlfn_ntire_x4" and side["halo"] == 32 and side["min_size"] == 15
