"""Masking a channel == physically removing it; PixelShuffle blocks; zero-width guard; zero-producer channels."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.models import create_model
from edgesr.prune import Pruner, fisher_step, slice_model


def masked_and_sliced(model: nn.Module, pruner: Pruner, x: torch.Tensor, base_config: dict | None = None):
    model.eval()
    with torch.no_grad(), pruner.attached():
        masked = model(x)
    small, config = slice_model(model, pruner, base_config=base_config)
    with torch.no_grad():
        sliced = small.eval()(x)
    return masked, sliced, small, config


CASES = [
    ("rlfn", 4, {"feature_channels": 12, "num_blocks": 2, "esa_channels": 6}),
    ("rfdn", 2, {"nf": 8, "num_modules": 2}),  # cat offsets shift when branches shrink
    ("imdn", 3, {"nc": 16, "nb": 2}),  # split pieces pruned apart, their sizes written into the config
    ("edsr", 4, {"n_resblocks": 2, "n_feats": 8}),  # two PixelShuffle(2) stages, MeanShift frozen
    ("rdn", 2, {"G0": 8, "D": 2, "C": 2, "G": 4}),  # dense concatenations, a group read twice by GFF.0
    ("rcan", 2, {"n_resgroups": 1, "n_resblocks": 2, "n_feats": 8, "reduction": 2}),  # [N, C, 1, 1] gates
]


@pytest.mark.parametrize("name,scale,cfg", CASES, ids=[c[0] for c in CASES])
def test_masking_equals_slicing_float32(name: str, scale: int, cfg: dict, random_prune) -> None:
    torch.manual_seed(0)
    model = create_model(name, scale=scale, **cfg)
    pruner = Pruner(model)
    random_prune(pruner)
    x = torch.rand(2, 3, 17, 19)  # odd sizes
    masked, sliced, small, config = masked_and_sliced(model, pruner, x, cfg)
    assert sliced.shape == (2, 3, 17 * scale, 19 * scale)
    assert (masked - sliced).abs().max().item() <= 2e-6 * (1 + masked.abs().max().item())
    # physically smaller, and the analytic count matches the sliced module
    assert sum(p.numel() for p in small.parameters()) == pruner.complexity()["params"]
    assert pruner.complexity()["params"] < sum(p.numel() for p in model.parameters())
    assert config.layers and all(spec["type"] == "Conv2d" for spec in config.layers.values())


def test_masking_equals_slicing_float64_rlfn(random_prune) -> None:
    torch.manual_seed(1)
    cfg = {"feature_channels": 12, "num_blocks": 2, "esa_channels": 6}
    model = create_model("rlfn", scale=2, **cfg).double()
    pruner = Pruner(model)
    random_prune(pruner, 0.5, seed=3)
    x = torch.rand(2, 3, 16, 21, dtype=torch.float64)
    masked, sliced, _, _ = masked_and_sliced(model, pruner, x, cfg)
    assert (masked - sliced).abs().max().item() <= 1e-12


class _DepthwiseBN(nn.Module):
    """Depthwise conv with a channel multiplier, BatchNorm, PReLU(C), a broadcast C=1 gate."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.dw = nn.Conv2d(6, 12, 3, padding=1, groups=6)
        self.act = nn.PReLU(12)
        self.gate = nn.Conv2d(12, 1, 1)
        self.b = nn.Conv2d(12, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.dw(self.bn(self.a(x))))
        return self.b(y * torch.sigmoid(self.gate(y)))


def test_depthwise_bn_prelu_and_broadcast_gate() -> None:
    torch.manual_seed(0)
    model = _DepthwiseBN()
    with torch.no_grad():  # non-trivial running statistics
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    pruner = Pruner(model, example_input=(2, 3, 12, 12))
    by_name = {g.name: g for g in pruner.groups}
    # the depthwise conv ties its input channel i to outputs 2i, 2i+1: one group with `a`
    a = by_name["a"]
    assert set(a.modules("out")) == {"a", "dw"} and a.width == 6
    assert [len(c) for c in next(m for m in a.producers if m.module == "dw").channels] == [2] * 6
    assert by_name["gate"].width == 1  # the C=1 gate couples nothing
    pruner.prune(a.index, [1, 4])
    x = torch.rand(2, 3, 11, 13)
    model.eval()
    with torch.no_grad(), pruner.attached():
        masked = model(x)
    small, config = slice_model(model, pruner)
    assert config.model == ""  # not a registered model: sliced, but not rebuildable
    with torch.no_grad():
        sliced = small.eval()(x)
    assert small.dw.groups == 4 and small.dw.weight.shape == (8, 1, 3, 3)
    assert small.bn.num_features == 4 and small.act.weight.shape == (8,)
    assert (masked - sliced).abs().max().item() <= 1e-5


class _Shuffle(nn.Module):
    def __init__(self, r: int) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 6, 3, padding=1)
        self.up = nn.Conv2d(6, 5 * r * r, 3, padding=1)
        self.ps = nn.PixelShuffle(r)
        self.tail = nn.Conv2d(5, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(F.leaky_relu(self.ps(self.up(self.head(x))), 0.1))


@pytest.mark.parametrize("r", [2, 3, 4])
def test_pixelshuffle_blocks_stay_whole_odd_sizes_no_zero_width(r: int) -> None:
    torch.manual_seed(r)
    model = _Shuffle(r)
    pruner = Pruner(model, example_input=(2, 3, 9, 7), normalize="none",
                    importance=lambda m, g: torch.rand(g.width, dtype=torch.float64))
    up = next(g for g in pruner.groups if g.name == "up")
    assert up.width == 5 and [len(c) for c in up.producers[0].channels] == [r * r] * 5
    events = []
    while (ev := pruner.step()) is not None:  # prune everything that may go
        events.append(ev)
    assert pruner.widths()[up.index] == 1 and all(w >= 1 for w in pruner.widths())
    x = torch.rand(1, 3, 9, 7)
    model.eval()
    with torch.no_grad(), pruner.attached():
        masked = model(x)
    small, _ = slice_model(model, pruner)
    with torch.no_grad():
        sliced = small.eval()(x)
    assert sliced.shape == (1, 3, 9 * r, 7 * r)
    assert (masked - sliced).abs().max().item() <= 1e-5
    out_idx = np.nonzero(pruner.keep[pruner._modules["up"][1]])[0]
    assert len(out_idx) == r * r and out_idx[0] % (r * r) == 0
    assert out_idx.tolist() == list(range(out_idx[0], out_idx[0] + r * r))  # one whole block
    assert small.up.out_channels == r * r and small.tail.in_channels == 1


def test_round_to_keeps_multiples_and_never_zero() -> None:
    model = create_model("rlfn", scale=2, feature_channels=10, num_blocks=1, esa_channels=6)
    pruner = Pruner(model, round_to=4, normalize="flops",
                    importance=lambda m, g: torch.arange(g.width, dtype=torch.float64))
    first = pruner.step()
    assert len(first.channels) == 2 and first.width == 8  # 10 -> 8: the remainder first
    while pruner.step() is not None:
        pass
    for g, w in zip(pruner.groups, pruner.widths()):
        if g.is_frozen:
            continue
        assert w == (4 if g.width >= 4 else g.width) or (g.width % 4 and w == g.width), (g.name, w)
        assert w >= 1
    with pytest.raises(Exception, match="no channel"):
        g = next(g for g in pruner.groups if not g.is_frozen)
        pruner.prune(g.index, np.nonzero(pruner.group_keep(g.index))[0].tolist())


def test_zero_producer_channel_scores_zero_and_goes_first() -> None:
    torch.manual_seed(0)
    cfg = {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4}
    model = create_model("rlfn", scale=2, **cfg).double()
    with torch.no_grad():
        model.block_1.c1_r.weight[3].zero_()
        model.block_1.c1_r.bias[3] = 0.0
    pruner = Pruner(model)
    g = next(g for g in pruner.groups if g.name == "block_1.c1_r")
    x = torch.rand(4, 3, 16, 16, dtype=torch.float64)
    hr = torch.rand(4, 3, 32, 32, dtype=torch.float64)
    fisher_step(pruner, (x, hr), None)
    scores = pruner.raw_scores()
    assert scores[g.index][3].item() == 0.0
    for grp, s in zip(pruner.groups, scores):
        if not grp.is_frozen:
            assert (s > 0).sum() >= grp.width - (1 if grp.index == g.index else 0)
    model.eval()
    with torch.no_grad():
        before = model(x)
    event = pruner.step()
    assert (event.group, event.channels, event.score) == (g.index, [3], 0.0)
    with torch.no_grad(), pruner.attached():
        after_mask = model(x)
    assert torch.equal(before, after_mask)  # masking a channel that is exactly 0 changes nothing
    small, _ = slice_model(model, pruner, base_config=cfg)
    with torch.no_grad():
        sliced = small.eval()(x)
    assert small.block_1.c1_r.out_channels == 7
    assert (before - sliced).abs().max().item() <= 1e-12
