"""Channel importance: one score per channel of a group (lower = pruned first), Torch-Pruning style.

An importance is any callable ``importance(model, group) -> Tensor[group.width]``. Stateful ones may
also define ``update(group_index, per_sample_grads)`` (fed by `Pruner.accumulate` with the gradient of
each sample's loss w.r.t. the group's shared mask, shape [N, width]), ``reset()`` (called after every
prune) and ``state_dict()`` / ``load_state_dict()`` (checkpoints).
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from edgesr.prune.trace import ChannelGroup

__all__ = ["GroupFisher", "Importance", "MagnitudeImportance"]


@runtime_checkable
class Importance(Protocol):
    def __call__(self, model: nn.Module, group: ChannelGroup) -> torch.Tensor: ...


class GroupFisher:
    """Group Fisher importance (Liu et al., ICML 2021): s_c = Σ_n (Σ_consumers ∂L_n/∂m_c)².

    The sum over consumers is done by autograd (one shared mask per group); `update` squares the
    per-sample gradients and sums them over samples. Accumulates in float64 until `reset`.
    """

    def __init__(self) -> None:
        self.scores: dict[int, torch.Tensor] = {}

    def update(self, group_index: int, per_sample_grads: torch.Tensor) -> None:
        g = per_sample_grads.detach().to(torch.float64)
        if g.dim() != 2:
            raise ValueError(f"expected [N, width] per-sample gradients, got shape {tuple(g.shape)}")
        sq = g.pow(2).sum(0).cpu()
        if group_index in self.scores:
            self.scores[group_index] += sq
        else:
            self.scores[group_index] = sq

    def __call__(self, model: nn.Module, group: ChannelGroup) -> torch.Tensor:
        s = self.scores.get(group.index)
        return s.clone() if s is not None else torch.zeros(group.width, dtype=torch.float64)

    def reset(self) -> None:
        self.scores.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"scores": {int(k): v.clone() for k, v in self.scores.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores = {int(k): v.to(torch.float64) for k, v in state.get("scores", {}).items()}


class MagnitudeImportance:
    """Data-free baseline: Σ over producers of the L_p norm of each output channel's weights.

    Channels of a PixelShuffle block or a depthwise multiplier sum over all their producer channels.
    """

    def __init__(self, p: float = 2.0) -> None:
        self.p = p

    def __call__(self, model: nn.Module, group: ChannelGroup) -> torch.Tensor:
        modules = dict(model.named_modules())
        score = torch.zeros(group.width, dtype=torch.float64)
        for member in group.producers:
            w = modules[member.module].weight.detach().to(torch.float64)
            norms = w.flatten(1).norm(p=self.p, dim=1).cpu()
            for c, chans in enumerate(member.channels):
                if chans:
                    score[c] += norms[chans].sum()
        return score
