"""Complexity (params / MACs / #Acts / #Conv) against the reference table and hand counts."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.analysis.complexity import profile_complexity
from edgesr.errors import UserInputError
from edgesr.models import create_model

# ../shared/docs/reference.md, NTIRE 2022 definitions, 1x3x256x256: params, "MACs (G)", #Acts (M), #Conv.
REFERENCE = {
    "rlfn": (543_740, 33.993, 126.490, 57),
    "rlfn_s": (470_208, 29.177, 118.102, 57),
    "rlfn_ntire": (317_218, 19.695, 80.045, 39),
    "rfdn": (433_448, 27.103, 112.034, 64),
    "imdn": (893_936, 58.532, 154.141, 43),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_table(name: str) -> None:
    params, gmacs, macts, convs = REFERENCE[name]
    c = profile_complexity(create_model(name, scale=4), (256, 256))
    assert c.params == params and c.params_learned == params
    assert c.convs == convs
    assert c.acts / 1e6 == pytest.approx(macts, rel=1e-3)
    # The table's "MACs" is the NTIRE counter's FLOPs: conv MACs + LeakyReLU/ReLU output elements.
    assert c.ntire_flops / 1e9 == pytest.approx(gmacs, rel=1e-3)
    assert c.macs < c.ntire_flops and c.macs / 1e9 == pytest.approx(gmacs, rel=3e-3)
    assert f"#Conv {convs}" in str(c)


def test_hand_counts_conv_called_twice_functional_transposed_linear() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)  # called twice
            self.w = nn.Parameter(torch.randn(8, 4, 1, 1))  # used through F.conv2d
            self.up = nn.ConvTranspose2d(8, 2, 2, stride=2)
            self.fc = nn.Linear(2, 5)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.act(self.conv(self.conv(x)))
            x = F.conv2d(x, self.w)
            return self.fc(self.up(x).permute(0, 2, 3, 1))

    h, w = 6, 10
    c = profile_complexity(Net(), (h, w), in_channels=4)
    hw = h * w
    conv = 2 * hw * 4 * 4 * 9
    func = hw * 8 * 4
    up = (8 * hw) * 2 * 4  # transposed: one MAC per input element per output channel per tap
    fc = (4 * hw) * 2 * 5
    assert c.macs == conv + func + up + fc
    assert c.convs == 4
    assert c.acts == 2 * 4 * hw + 8 * hw + 2 * 4 * hw
    assert c.ntire_flops == c.macs + 4 * hw  # one ReLU call
    assert [r.name for r in c.per_layer] == ["conv", "conv", "", "up", "fc"]
    assert c.params == sum(p.numel() for p in Net().parameters())


def test_meta_fallback_and_model_untouched() -> None:
    class NeedsData(nn.Module):  # .item() cannot run on the meta device
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.bn(self.conv(x))
            return y * float(y.abs().max().item() > -1)

    model = NeedsData().train()
    stats = model.bn.running_mean.clone()
    c = profile_complexity(model, (5, 7))
    assert c.convs == 1 and c.macs == 35 * 8 * 27 and c.ntire_flops == c.macs + 2 * 8 * 35
    assert model.training and torch.equal(model.bn.running_mean, stats)


def test_meanshift_is_frozen_and_counted_apart() -> None:
    c = profile_complexity(create_model("edsr_baseline", scale=4, n_resblocks=1, n_feats=8), (16, 16))
    assert c.params - c.params_learned == 2 * (9 + 3)


def test_bad_input_size() -> None:
    with pytest.raises(UserInputError, match="input_size"):
        profile_complexity(nn.Conv2d(3, 3, 1), (0, 5))
    assert profile_complexity(nn.Conv2d(3, 3, 1), 8).input_size == (8, 8)
