"""Fixtures for the export tests: tiny models. Real-model exports come from the session-wide
`export_cache` of tests/conftest.py (each (variant, fp16, io, options) is exported once per session)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn


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
