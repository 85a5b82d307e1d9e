"""Fixtures for the training tests: one thread (faster than two on a shared 2-core machine, where
OpenMP threads of several processes fight), offline weights, a tiny RLFN-S configuration."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread) -> None:
    """Every training test runs on one torch thread (`one_torch_thread` in tests/conftest.py)."""


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("EDGESR_OFFLINE", "1")


@pytest.fixture(scope="session")
def set5(datasets_dir: Path) -> Path:
    return datasets_dir / "Set5"


@pytest.fixture(scope="session")
def set5_hr(set5: Path) -> Path:
    return set5 / "HR"


@pytest.fixture(scope="session")
def bsd68_hr(datasets_dir: Path) -> Path:
    return datasets_dir / "BSD68" / "HR"


@pytest.fixture
def tiny() -> dict:
    """A 1-block, 8-channel RLFN-S configuration: milliseconds per step, the real code paths."""
    return {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4}
