"""Losses: RLFN's contrastive loss against a hand-computed case, the composed objective, distillation."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.errors import UserInputError
from edgesr.train.losses import ContrastiveLoss, ShallowTanhExtractor, SRLoss, pixel_loss


def _const(values: list[float], size: int = 4) -> torch.Tensor:
    return torch.stack([torch.full((1, size, size), v) for v in values])


def test_contrastive_loss_hand_computed() -> None:
    # 1-channel extractor with centre-tap kernels: phi_1 = tanh(x), phi_2 = 0.5 * tanh(x) + 0.1 (borders
    # are exact too: the zero padding is only read by zero kernel taps). Constant images.
    ext = ShallowTanhExtractor(in_channels=1, channels=1)
    with torch.no_grad():
        ext.conv1.weight.zero_()
        ext.conv1.weight[0, 0, 1, 1] = 1.0
        ext.conv1.bias.zero_()
        ext.conv2.weight.zero_()
        ext.conv2.weight[0, 0, 1, 1] = 0.5
        ext.conv2.bias.fill_(0.1)
    loss = ContrastiveLoss(layer_weights=(1.0, 0.25), extractor=ext, eps=0.0)
    sr, hr, lr = _const([0.5, 0.1], 4), _const([0.6, 0.3], 4), _const([0.2, 0.9], 2)
    t = math.tanh
    # image A: d(sr, hr) / d(sr, lr_up) on layer 1; layer 2 scales both by 0.5 (same ratio)
    ratio_a = abs(t(0.5) - t(0.6)) / abs(t(0.5) - t(0.2))
    ratio_b = abs(t(0.1) - t(0.3)) / abs(t(0.1) - t(0.9))
    expected = 1.0 * (ratio_a + ratio_b) / 2 + 0.25 * (ratio_a + ratio_b) / 2
    assert loss(sr, hr, lr).item() == pytest.approx(expected, rel=1e-6)
    # by hand: A = 0.074933 / 0.264742 = 0.283042, B = 0.191645 / 0.616630 = 0.310793,
    # 1.25 * (A + B) / 2 = 0.371147
    assert loss(sr, hr, lr).item() == pytest.approx(0.371147, abs=2e-6)


def test_contrastive_loss_gradients_flow_to_sr_only() -> None:
    loss = ContrastiveLoss(seed=0)
    assert all(not p.requires_grad for p in loss.parameters())
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 16, 16, generator=g)
    lr = F.avg_pool2d(hr, 2)
    sr = (hr + 0.05 * torch.randn(2, 3, 16, 16, generator=g)).requires_grad_(True)
    value = loss(sr, hr, lr)
    value.backward()
    assert value.item() > 0 and sr.grad is not None and sr.grad.abs().sum() > 0
    assert loss(hr, hr, lr).item() == 0.0  # SR == positive
    # the random extractor is reproducible from its seed and leaves the global RNG alone
    state = torch.random.get_rng_state()
    a, b = ShallowTanhExtractor(seed=5), ShallowTanhExtractor(seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    assert not torch.equal(a.conv1.weight, ShallowTanhExtractor(seed=6).conv1.weight)
    a.train()
    assert not a.training


def test_composed_objective() -> None:
    class Half(nn.Module):  # a "teacher" with a known output
        def forward(self, x):
            return F.interpolate(x, scale_factor=2, mode="nearest") * 0.5

    g = torch.Generator().manual_seed(1)
    lr = torch.rand(2, 3, 8, 8, generator=g)
    hr = torch.rand(2, 3, 16, 16, generator=g)
    sr = torch.rand(2, 3, 16, 16, generator=g)
    obj = SRLoss("l1", contrastive=0.1, distill=0.3, teacher=Half(), seed=0)
    total, parts = obj(sr, hr, lr)
    cl = ContrastiveLoss(seed=0)(sr, hr, lr)
    want = F.l1_loss(sr, hr) + 0.1 * cl + 0.3 * F.l1_loss(sr, Half()(lr))
    assert total.item() == pytest.approx(want.item(), rel=1e-6)
    assert set(parts) == {"l1", "contrastive", "distill"}
    mse, _ = SRLoss("mse")(sr, hr, lr)
    assert mse.item() == pytest.approx(F.mse_loss(sr, hr).item())


def test_bad_loss_options() -> None:
    with pytest.raises(UserInputError, match="unknown loss"):
        pixel_loss("ssim")
    with pytest.raises(UserInputError, match="teacher"):
        SRLoss(distill=0.5)
