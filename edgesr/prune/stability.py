"""How stable are Fisher scores? Two independent estimates on disjoint batches, compared by rank.

A prune decision only needs the ranking of the normalised scores, so the figure that matters is the
Spearman rank correlation between two estimates from different samples, and how much the sets of
channels each estimate would prune first (its lowest 10 %) overlap. `fisher_agreement` measures both
without changing the model (no optimizer step), which tells how many samples one prune decision needs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np
from torch import nn

from edgesr.prune.pruner import Pruner

__all__ = ["Agreement", "fisher_agreement"]


@dataclass
class Agreement:
    """Agreement of two Fisher estimates of `samples` samples each."""

    samples: int
    channels: int  # prunable channels compared
    spearman: float  # rank correlation of the normalised channel scores
    bottom_overlap: float  # |A ∩ B| / k for the k = 10 % lowest-scored channels of each estimate
    block_spearman: float | None = None  # the same for block gates (depth pruning), None without

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _estimate(pruner: Pruner, batches: Iterable, teacher: nn.Module | None) -> tuple[np.ndarray, np.ndarray, int]:
    from edgesr.prune.schedule import fisher_step

    pruner._reset_scores()
    n = 0
    for batch in batches:
        n += int(fisher_step(pruner, batch, teacher).shape[0])
    flat = np.concatenate(pruner.scores()) if pruner.groups else np.zeros(0)
    costs = pruner.block_costs()
    blocks = pruner.block_scores / np.where(costs > 0, costs, np.nan)
    return flat, blocks, n


def fisher_agreement(model: nn.Module, batches_a: Iterable, batches_b: Iterable, *, teacher: nn.Module | None = None,
                     normalize: str = "memory", depth: bool = False, **pruner_kwargs: Any) -> Agreement:
    """Compare the Fisher estimates of `model` from `batches_a` and from `batches_b` (disjoint samples)."""
    from scipy.stats import spearmanr

    pruner = Pruner(model, normalize=normalize, depth=depth, **pruner_kwargs)
    a, blocks_a, n = _estimate(pruner, batches_a, teacher)
    b, blocks_b, _ = _estimate(pruner, batches_b, teacher)
    pruner._reset_scores()
    live = np.isfinite(a) & np.isfinite(b)
    a, b = a[live], b[live]
    k = max(1, int(round(0.1 * len(a))))
    low_a, low_b = set(np.argsort(a, kind="stable")[:k]), set(np.argsort(b, kind="stable")[:k])
    block_rho = None
    if len(blocks_a) > 2 and np.isfinite(blocks_a).all() and np.isfinite(blocks_b).all():
        block_rho = float(spearmanr(blocks_a, blocks_b).statistic)
    return Agreement(samples=n, channels=int(len(a)), spearman=float(spearmanr(a, b).statistic),
                     bottom_overlap=len(low_a & low_b) / k, block_spearman=block_rho)
