"""ONNX Runtime and OpenVINO runners against the torch module they were exported from."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from edgesr.artifacts import Sidecar
from edgesr.errors import UserInputError
from edgesr.inference import upscale_array
from edgesr.runtimes import create_runner
from edgesr.runtimes.registry import get_backend

needs_openvino = pytest.mark.skipif(not get_backend("openvino").is_available(),
                                    reason="openvino not installed (pip install edgesr[openvino])")


def _reference(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("shape", [(1, 3, 20, 28), (1, 3, 33, 17)])
def test_onnxruntime_parity_at_dynamic_sizes(tiny_model, tiny_onnx, shape):
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    with create_runner(tiny_onnx, threads=1) as runner:
        y = runner.infer(x)
        info = runner.describe()
    np.testing.assert_allclose(y, _reference(tiny_model, x), atol=1e-5, rtol=0)
    assert info["providers"] == ["CPUExecutionProvider"] and info["threads"] == 1
    assert runner.scale == 2 and runner.input_spec.shape[1] == 3


def test_onnxruntime_validates_against_the_model(tiny_onnx):
    runner = create_runner(tiny_onnx, min_size=8)
    with pytest.raises(UserInputError, match=r"\(1, 3, H, W\) with H, W >= 8"):
        runner.infer(np.zeros((1, 3, 6, 6), np.float32))
    assert runner.input_spec.shape == (1, 3, None, None)  # batch exported static, H/W dynamic
    with pytest.raises(UserInputError, match="N=2"):
        runner.infer(np.zeros((2, 3, 8, 8), np.float32))


def test_sr_function_over_onnxruntime_matches_torch(tiny_model, tiny_onnx):
    from edgesr.inference import torch_sr_function

    lr = np.random.default_rng(2).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    fn = create_runner(tiny_onnx).as_sr_function()
    got = upscale_array(fn, lr, 2, tile=16, halo=8)
    want = upscale_array(torch_sr_function(tiny_model), lr, 2, tile=16, halo=8)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


class Float255(nn.Module):
    """The tiny model behind an `--io float255` interface."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x / 255.0) * 255.0


def test_sidecar_float255_io_is_adapted(tiny_model, tmp_path, onnx_exporter):
    path = tmp_path / "tiny255.onnx"
    onnx_exporter(Float255(tiny_model).eval(), path)
    x = np.random.default_rng(3).random((1, 3, 16, 16), dtype=np.float32)
    plain = create_runner(path).infer(x)  # no sidecar: taken as 0..1 I/O
    np.testing.assert_allclose(plain, _reference(Float255(tiny_model), x), atol=1e-4)
    Sidecar.minimal(path, scale=2, io="float255").save(tmp_path)
    runner = create_runner(path)
    np.testing.assert_allclose(runner.infer(x), _reference(tiny_model, x), atol=1e-5)
    assert runner.describe()["io"].startswith("float32 0..255")


@needs_openvino
def test_openvino_f32_parity(tiny_model, tiny_onnx):
    x = np.random.default_rng(4).random((1, 3, 24, 20), dtype=np.float32)
    with create_runner(tiny_onnx, backend="openvino", precision="f32", threads=1) as runner:
        y = runner.infer(x)
        info = runner.describe()
    assert info["precision"] == "f32" and info["precision_hint"] == "f32"
    np.testing.assert_allclose(y, _reference(tiny_model, x), atol=1e-5, rtol=0)


@needs_openvino
def test_openvino_bf16_runs_close(tiny_model, tiny_onnx):
    x = np.random.default_rng(5).random((1, 3, 24, 20), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = create_runner(tiny_onnx, backend="openvino", precision="bf16", threads=1)
        y = runner.infer(x)
    assert runner.compile_config()["INFERENCE_PRECISION_HINT"] == "bf16"
    np.testing.assert_allclose(y, _reference(tiny_model, x), atol=0.05, rtol=0)


@needs_openvino
def test_openvino_bad_options(tiny_onnx):
    with pytest.raises(UserInputError, match="f32, bf16 or f16"):
        create_runner(tiny_onnx, backend="openvino", precision="int8")
    with pytest.raises(UserInputError, match="not available here"):
        create_runner(tiny_onnx, backend="openvino", device="NPU").activate()
