"""Fixtures for the pruning tests."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from edgesr.prune import Pruner


def _set_keep(pruner: Pruner, keep: np.ndarray) -> None:
    """Load a flat keep vector (all groups, in order) into `pruner`."""
    pruner.load_keep_state([k.tolist() for k in np.split(keep, pruner.offsets[1:-1])])


def _random_prune(pruner: Pruner, fraction: float = 0.4, seed: int = 0) -> None:
    """Drop a random `fraction` of every group's free channels (at least one channel stays)."""
    rng = np.random.default_rng(seed)
    keep = pruner.keep.copy()
    for g in pruner.groups:
        free = np.flatnonzero(~np.asarray(g.frozen, dtype=bool))
        gone = rng.permutation(free)[:min(int(len(free) * fraction), g.width - 1)]
        keep[pruner.offsets[g.index] + gone] = False
    _set_keep(pruner, keep)


@pytest.fixture(scope="session")
def random_prune() -> Callable[..., None]:
    """`random_prune(pruner, fraction=0.4, seed=0)`: mask a random share of every prunable group."""
    return _random_prune


@pytest.fixture(scope="session")
def set_keep() -> Callable[[Pruner, np.ndarray], None]:
    """`set_keep(pruner, keep)`: load a flat keep vector (all groups, in order)."""
    return _set_keep
