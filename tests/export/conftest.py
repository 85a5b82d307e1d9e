"""Fixtures for the export tests: tiny models, and a session cache of real-model exports.

Exports of the real models are the expensive part (export + PyTorch and ONNX Runtime runs at three
sizes); each (variant, fp16, io, sizes) is exported once per session and shared between tests.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.export import ExportOptions, ExportResult, export_onnx


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("EDGESR_OFFLINE", "1")


class TinySR(nn.Module):
    """conv -> spatial gate (pool, Resize to the input's size, like ESA) -> conv -> PixelShuffle(scale)."""

    def __init__(self, scale: int = 2, feats: int = 8) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, feats, 3, padding=1)
        self.tail = nn.Conv2d(feats, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.head(x), 0.05)
        pooled = F.avg_pool2d(y, 2, ceil_mode=True)
        y = y * torch.sigmoid(F.interpolate(pooled, size=(y.shape[2], y.shape[3]), mode="bilinear",
                                            align_corners=False))
        return self.shuffle(self.tail(y))


class TinyInterp(nn.Module):
    """Bilinear x2 upsampling by a constant factor (a Resize with float `scales`) and a residual conv."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = 2
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return up + 0.1 * self.conv(up)


class HotSR(nn.Module):
    """Activations of 4e4..1.3e5 (beyond float16's 65504; the weights themselves fit) in the middle,
    a normal 0.4..1.3 image at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = 1
        self.amplify = nn.Conv2d(3, 3, 1)
        self.restore = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.amplify.weight.fill_(3.0e4)
            self.amplify.bias.fill_(4.0e4)
            self.restore.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * 1.0e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.restore(torch.relu(self.amplify(x)))


@pytest.fixture
def tiny_sr() -> TinySR:
    torch.manual_seed(0)
    return TinySR().eval()


@pytest.fixture
def tiny_interp() -> TinyInterp:
    torch.manual_seed(0)
    return TinyInterp().eval()


@pytest.fixture
def hot_sr() -> HotSR:
    return HotSR().eval()


@pytest.fixture
def fast() -> dict:
    """ExportOptions for tests that are not about parity at the acceptance sizes."""
    return dict(parity_sizes=((24, 20),), exporter="torchscript")


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory) -> Callable[..., ExportResult]:
    """export(variant, fp16=False, io="float01", **options) -> ExportResult, cached for the session."""
    from edgesr.models import create_model

    cache: dict[tuple, ExportResult] = {}
    root = tmp_path_factory.mktemp("exports")

    def export(variant: str, fp16: bool = False, io: str = "float01", **options) -> ExportResult:
        key = (variant, fp16, io, tuple(sorted(options.items())))
        if key not in cache:  # called inside tests, where `_offline` has set EDGESR_OFFLINE=1
            if variant == "edsr_baseline":
                torch.manual_seed(0)
                model = create_model("edsr_baseline", scale=4)  # random init: no official weights
            else:
                model = create_model(variant)
            path = Path(root) / f"{variant}_{'fp16' if fp16 else 'fp32'}_{io}_{len(cache)}.onnx"
            cache[key] = export_onnx(model, path, ExportOptions(fp16=fp16, io=io, **options))
        return cache[key]

    return export
