"""Shared fixtures.

Tests that need the real data in ../shared fail in CI (CI=true) when it is missing and skip,
with the reason, only on a developer machine without it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from edgesr.paths import shared_dir

torch.set_num_threads(min(2, os.cpu_count() or 1))


def _require(path: Path) -> Path:
    if path.exists():
        return path
    msg = f"shared data not found: {path} (set EDGESR_SHARED or place shared/ beside the repo)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def shared() -> Path:
    """Root of the shared data folder (weights/, datasets/)."""
    return _require(shared_dir())


@pytest.fixture(scope="session")
def weights_dir(shared: Path) -> Path:
    return _require(shared / "weights")


@pytest.fixture(scope="session")
def datasets_dir(shared: Path) -> Path:
    return _require(shared / "datasets")
