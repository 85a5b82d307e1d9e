"""Fold tests run tiny convolutions: one intra-op thread is as fast, and does not spin-wait on a shared
machine (two OpenMP threads on two busy cores made these tests several times slower)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
