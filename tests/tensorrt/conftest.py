"""Fixtures of the TensorRT tests: the recording fakes of `tensorrt` and of the CUDA runtime installed
under Polygraphy (see fake_trt.py), a pretend GPU, and small ONNX artifacts exported by edgesr."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn


def _load_fake_module() -> Any:
    path = Path(__file__).with_name("fake_trt.py")
    spec = importlib.util.spec_from_file_location("edgesr_tests_fake_trt", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fakes = _load_fake_module()


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("EDGESR_OFFLINE", "1")


@pytest.fixture
def fake_trt(monkeypatch) -> Callable[..., Any]:
    """`fake_trt(version, **kw)`: a new fake `tensorrt`, installed as the module Polygraphy imports."""

    def make(version: str = "10.13.0.35", **kw: Any) -> Any:
        return fakes.install_fake_trt(monkeypatch, fakes.make_fake_trt(version, **kw))

    yield make
    fakes.reset_polygraphy_trt()


@pytest.fixture
def fake_cudart(monkeypatch) -> Any:
    """Host-memory CUDA runtime under Polygraphy's CUDA wrapper (device buffers are ordinary memory)."""
    return fakes.install_fake_cudart(monkeypatch)


@pytest.fixture
def gpu():
    from edgesr.export.tensorrt.runtime import GpuInfo

    return GpuInfo("NVIDIA GeForce RTX 4090", "8.9", 0, 24.0, "550.54")


class TinySR(nn.Module):
    """conv -> spatial gate (pool, Resize back to the input size, like ESA) -> conv -> PixelShuffle(2)."""

    min_input_size = 4

    def __init__(self) -> None:
        super().__init__()
        self.scale = 2
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.leaky_relu(self.head(x), 0.05)
        pooled = torch.nn.functional.max_pool2d(y, 2, ceil_mode=True)
        y = y * torch.sigmoid(torch.nn.functional.interpolate(pooled, size=(y.shape[2], y.shape[3]),
                                                               mode="bilinear", align_corners=False))
        return self.shuffle(self.tail(y))


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory) -> dict[str, Path]:
    """The tiny model exported by edgesr (dynamo exporter, with sidecars): fp32, fp16, uint8 I/O."""
    os.environ.setdefault("EDGESR_OFFLINE", "1")
    from edgesr.export import ExportOptions, export_onnx

    torch.manual_seed(0)
    model = TinySR().eval()
    root = tmp_path_factory.mktemp("trt_tiny")
    out = {}
    for key, kw in (("fp32", {}), ("fp16", {"fp16": True}), ("uint8", {"io": "uint8"})):
        path = root / f"tiny_{key}.onnx"
        export_onnx(model, path, ExportOptions(parity_sizes=((24, 20),), opt_shape=(64, 64), max_shape=(128, 128),
                                               reparam=False, **kw))
        out[key] = path
    return out


@pytest.fixture
def tiny_model() -> TinySR:
    torch.manual_seed(0)
    return TinySR().eval()
