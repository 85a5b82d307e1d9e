"""Fold tests run tiny convolutions: one intra-op thread is as fast, and does not spin-wait on a shared
machine (two OpenMP threads on two busy cores made these tests several times slower)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread) -> None:
    """Every fold test runs on one torch thread (`one_torch_thread` in tests/conftest.py)."""
