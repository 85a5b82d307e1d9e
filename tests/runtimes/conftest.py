"""A tiny SR network and its ONNX export (dynamic H/W), shared by the runtime tests."""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn


class TinySR(nn.Module):
    """conv -> relu -> conv -> pixel shuffle x2; float 0..1 in and out like edgesr models."""

    min_input_size = 4

    def __init__(self) -> None:
        super().__init__()
        self.scale = 2
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1))
        self.up = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.body(x))


def export_onnx(model: nn.Module, path: Path) -> str:
    """Export with dynamic H/W; returns the exporter used. The dynamo exporter (the one edgesr
    uses) needs onnxscript; without it the TorchScript exporter keeps the parity tests running."""
    x = torch.rand(1, 3, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if importlib.util.find_spec("onnxscript") is not None:
            h, w = torch.export.Dim("h", min=4, max=1024), torch.export.Dim("w", min=4, max=1024)
            torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False, input_names=["input"],
                              output_names=["output"], dynamic_shapes={"x": {2: h, 3: w}}, verbose=False)
            return "dynamo"
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "H", 3: "W"}}, opset_version=17)
        return "torchscript"


@pytest.fixture(scope="session")
def onnx_exporter():
    return export_onnx


@pytest.fixture(scope="session")
def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return TinySR().eval()


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "tiny_sr.onnx"
    export_onnx(tiny_model, path)
    return path


@pytest.fixture()
def lr_batch() -> np.ndarray:
    return np.random.default_rng(0).random((1, 3, 20, 28), dtype=np.float32)
