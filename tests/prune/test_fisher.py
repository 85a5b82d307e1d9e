"""Group Fisher scores against an independent oracle; batch invariance; LR-only pseudo-targets; ΔM by hand."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.models import create_model
from edgesr.prune import GroupFisher, Pruner, fisher_step, trace_channels

CFG = {"feature_channels": 6, "num_blocks": 1, "esa_channels": 4}


def tiny_rlfn() -> nn.Module:
    torch.manual_seed(0)
    return create_model("rlfn", scale=2, **CFG).double()


def per_sample_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    return (sr - hr).abs().flatten(1).mean(1)


def oracle(model: nn.Module, pruner: Pruner, x: torch.Tensor, hr: torch.Tensor, square_of_sum: bool = True):
    """Per-sample weight gradients, no masks: g_{n,c} = Σ_consumers Σ W[:, j] · ∂L_n/∂W[:, j] (j in channel c)."""
    modules = dict(model.named_modules())
    scores = [torch.zeros(g.width, dtype=torch.float64) for g in pruner.groups]
    for n in range(x.shape[0]):
        model.zero_grad(set_to_none=True)
        per_sample_loss(model(x[n:n + 1]), hr[n:n + 1]).sum().backward()
        for g in pruner.groups:
            if g.is_frozen:
                continue
            contrib = torch.zeros(len(g.consumers), g.width, dtype=torch.float64)
            for i, member in enumerate(g.consumers):
                w = modules[member.module].weight
                per_in = (w * w.grad).sum(dim=(0, 2, 3))  # [in_channels]
                for c, chans in enumerate(member.channels):
                    contrib[i, c] = per_in[chans].sum()
            scores[g.index] += contrib.sum(0).pow(2) if square_of_sum else contrib.pow(2).sum(0)
    return scores


def test_fisher_matches_per_sample_weight_gradient_oracle() -> None:
    model = tiny_rlfn()
    pruner = Pruner(model)
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    hr = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    fisher_step(pruner, (x, hr), None)  # loss = L1 to HR, per sample
    got = pruner.raw_scores()
    want = oracle(model, pruner, x, hr)
    for g in pruner.groups:
        if not g.is_frozen:
            torch.testing.assert_close(got[g.index], want[g.index], rtol=1e-9, atol=1e-30)
            assert (got[g.index] > 0).all()
    # a coupled group scores the square of the summed member gradients, not the sum of squares
    skip = next(g for g in pruner.groups if g.name == "conv_1")
    assert len(skip.consumers) == 3
    sum_of_squares = oracle(model, pruner, x, hr, square_of_sum=False)[skip.index]
    assert not torch.allclose(got[skip.index], sum_of_squares, rtol=1e-3)


def test_batch_split_invariance() -> None:
    model = tiny_rlfn()
    x = torch.rand(4, 3, 16, 16, dtype=torch.float64)
    hr = torch.rand(4, 3, 32, 32, dtype=torch.float64)
    full = Pruner(model)
    fisher_step(full, (x, hr), None)
    halves = Pruner(model, graph=full.graph)
    fisher_step(halves, (x[:2], hr[:2]), None)
    fisher_step(halves, (x[2:], hr[2:]), None)
    for a, b in zip(full.raw_scores(), halves.raw_scores()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-30)
    # and a prune resets the accumulator
    halves.step()
    assert all(float(s.abs().sum()) == 0.0 for s in halves.raw_scores())


def test_lr_only_pseudo_targets_give_nonzero_scores() -> None:
    model = tiny_rlfn()
    teacher = copy.deepcopy(model)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    # pure distillation at step 0 (student == teacher): every gradient, hence every score, is 0
    zero = Pruner(model)
    fisher_step(zero, x, teacher, fisher_noise=0.0)
    assert all(float(s.abs().sum()) == 0.0 for s in zero.raw_scores())
    # teacher output + noise as the target: non-zero Fisher for every prunable channel
    torch.manual_seed(1)
    noisy = Pruner(model, graph=zero.graph)
    fisher_step(noisy, x, teacher, fisher_noise=0.01)
    for g, s in zip(noisy.groups, noisy.raw_scores()):
        if not g.is_frozen:
            assert (s > 0).all(), g.name


class _Costs(nn.Module):
    """A strided conv, max pooling, and a conv called twice at two resolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.s = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.c = nn.Conv2d(8, 5, 3, padding=1)
        self.out = nn.Conv2d(5, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.a(x))
        t = self.s(a) + F.max_pool2d(a, 2)  # couples a and s through the pooling
        hi = self.c(a)  # c, call 1: full resolution
        lo = self.c(F.avg_pool2d(t, 2))  # c, call 2: quarter resolution
        return self.out(hi + F.interpolate(lo, size=hi.shape[-2:], mode="nearest"))


def test_delta_m_by_hand_strided_pooling_called_twice() -> None:
    graph = trace_channels(_Costs(), (2, 3, 16, 16), deploy_size=(24, 40))
    by_name = {g.name: g for g in graph.groups}
    a, c = by_name["a"], by_name["c"]
    assert set(a.modules("out")) == {"a", "s"} and a.width == 8
    assert c.modules("out") == ["c"] and set(c.modules("in")) == {"out"}
    # a: 24x40 output; s: stride 2 -> 12x20; pooling creates no conv output
    assert a.memory_cost == 24 * 40 + 12 * 20
    # c called at 24x40 and at (12x20 pooled by 2) 6x10: both calls count
    assert c.memory_cost == 24 * 40 + 6 * 10
    # the deployment batch is 1; another deployment size changes the numbers accordingly
    assert trace_channels(_Costs(), (2, 3, 16, 16), deploy_size=(8, 8)).groups[a.index].memory_cost == 64 + 16


def test_normalisations_change_the_choice() -> None:
    model = create_model("rlfn", scale=2, **CFG)
    flat = lambda m, g: torch.ones(g.width, dtype=torch.float64)  # noqa: E731 - equal raw importance
    mem = Pruner(model, importance=flat, normalize="memory")
    # equal importance: memory normalisation prunes where one channel frees the most activation memory
    g, _, _ = mem.select()
    assert mem.groups[g].memory_cost == max(x.memory_cost for x in mem.groups if not x.is_frozen)
    flops = Pruner(model, graph=mem.graph, importance=flat, normalize="flops")
    costs = flops.costs()
    g2, _, _ = flops.select()
    assert costs[g2].max() == max(c.max() for grp, c in zip(flops.groups, costs) if not grp.is_frozen)
    # FLOPs cost of a channel = MACs the metric loses when it goes
    keep = flops.keep.copy()
    before = flops.metric("flops")
    flops.prune(g2, [0])
    assert before - flops.metric("flops") == pytest.approx(costs[g2][0])
    flops.keep = keep
    table = {grp.name: 1.0 for grp in mem.groups if not grp.is_frozen}
    table["block_1.c2_r"] = 5.0
    lat = Pruner(model, graph=mem.graph, importance=flat, normalize="latency", latency_table=table)
    assert lat.groups[lat.select()[0]].name == "block_1.c2_r"
    assert lat.metric("latency") == sum(g.width * table.get(g.name, 0.0) for g in lat.groups)


def test_custom_importance_is_pluggable() -> None:
    model = create_model("rlfn", scale=2, **CFG)
    calls = []

    def last_channels_first(m: nn.Module, group) -> torch.Tensor:
        calls.append(group.name)
        return -torch.arange(group.width, dtype=torch.float64)

    pruner = Pruner(model, importance=last_channels_first, normalize="none")
    group, chans, _ = pruner.select()
    assert chans == [pruner.groups[group].width - 1] and calls
    assert isinstance(Pruner(model, graph=pruner.graph).importance, GroupFisher)
