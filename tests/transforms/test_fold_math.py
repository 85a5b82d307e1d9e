"""Each fold_math function against the computation it replaces (float64, random tensors, 1e-10)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.layers import fold_math as fm

TOL = 1e-10


def _conv(cin: int, cout: int, k: int, **kw) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, k, dtype=torch.float64, **kw)
    with torch.no_grad():
        if conv.bias is not None:
            conv.bias.uniform_(-1, 1)  # non-zero biases: the border cases must show
    return conv


def _x(c: int = 4, h: int = 9, w: int = 7) -> torch.Tensor:
    return torch.randn(2, c, h, w, dtype=torch.float64)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return float((a - b).detach().abs().max())


def test_fuse_conv_bn() -> None:
    conv, bn = _conv(4, 6, 3, padding=1), nn.BatchNorm2d(6, dtype=torch.float64)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    x = _x()
    fused = fm.fuse_conv_bn(conv, bn)
    assert _maxdiff(fused(x), bn(conv(x))) < TOL
    assert fm.fuse_conv_bn(conv, nn.BatchNorm2d(6, track_running_stats=False)) is None


def test_compose_1x1_then_kxk_exact_when_padding_allows() -> None:
    x = _x()
    first, second = _conv(4, 5, 1), _conv(5, 6, 3, padding=0)
    assert _maxdiff(fm.compose_convs(first, second)(x), second(first(x))) < TOL
    # bias-free 1x1 before a padded 3x3: the zero padding is the same either way
    first_nb, padded = _conv(4, 5, 1, bias=False), _conv(5, 6, 3, padding=1, stride=2)
    composed = fm.compose_convs(first_nb, padded)
    assert _maxdiff(composed(x), padded(first_nb(x))) < TOL
    # reflect padding copies real values, so the 1x1 bias survives at the border too
    reflect = _conv(5, 6, 3, padding=1, padding_mode="reflect")
    assert _maxdiff(fm.compose_convs(first, reflect)(x), reflect(first(x))) < TOL


def test_compose_refuses_a_biased_1x1_before_a_zero_padded_kxk() -> None:
    first, second = _conv(4, 5, 1), _conv(5, 6, 3, padding=1)
    assert fm.compose_convs(first, second) is None
    assert "border" in fm.compose_blocker(first, second)
    # ... and the reason is real: a forced fold is right inside and wrong on the border
    forced = fm.compose_convs(first, second, pad_with_bias=True)
    x = _x()
    diff = (forced(x) - second(first(x))).detach().abs()
    assert float(diff[..., 1:-1, 1:-1].max()) < TOL and float(diff.max()) > 1e-3


def test_compose_pad_with_bias_matches_a_bias_padded_intermediate() -> None:
    first, second = _conv(4, 5, 1), _conv(5, 6, 3, padding=1)
    x = _x()
    mid = first(x)
    padded = F.pad(mid - first.bias.view(1, -1, 1, 1), (1, 1, 1, 1)) + first.bias.view(1, -1, 1, 1)
    expected = F.conv2d(padded, second.weight, second.bias)
    assert _maxdiff(fm.compose_convs(first, second, pad_with_bias=True)(x), expected) < TOL


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 0, 1)])
def test_compose_kxk_then_1x1(stride: int, padding: int, dilation: int) -> None:
    first = _conv(4, 5, 3, stride=stride, padding=padding, dilation=dilation)
    second = _conv(5, 6, 1)
    x = _x()
    assert _maxdiff(fm.compose_convs(first, second)(x), second(first(x))) < TOL


def test_compose_1x1_chain_and_refusals() -> None:
    a, b = _conv(4, 5, 1), _conv(5, 3, 1)
    x = _x()
    assert _maxdiff(fm.compose_convs(a, b)(x), b(a(x))) < TOL
    assert fm.compose_convs(_conv(4, 5, 3, padding=1), _conv(5, 6, 3, padding=1)) is None  # kxk -> kxk
    assert "grouped" in fm.compose_blocker(_conv(4, 4, 1, groups=2), _conv(4, 4, 1))
    assert fm.compose_convs(_conv(4, 5, 1), _conv(6, 6, 1)) is None  # channel mismatch


@pytest.mark.parametrize("k,groups,dilation", [(3, 1, 1), (5, 1, 1), (3, 2, 1), (3, 6, 1), (3, 1, 2), (1, 1, 1)])
def test_add_identity(k: int, groups: int, dilation: int) -> None:
    conv = _conv(6, 6, k, padding=dilation * (k // 2), groups=groups, dilation=dilation)
    x = _x(6)
    assert _maxdiff(fm.add_identity(conv)(x), conv(x) + x) < TOL
    assert _maxdiff(fm.add_identity(conv, scale=0.25)(x), conv(x) + 0.25 * x) < TOL


@pytest.mark.parametrize("conv,reason", [
    (nn.Conv2d(4, 6, 3, padding=1), "differ"),
    (nn.Conv2d(4, 4, 3, padding=1, stride=2), "stride"),
    (nn.Conv2d(4, 4, 2, padding=1), "even"),
    (nn.Conv2d(4, 4, 3, padding=0), "padding"),
])
def test_add_identity_refusals(conv: nn.Conv2d, reason: str) -> None:
    assert fm.add_identity(conv) is None
    assert reason in fm.add_identity_blocker(conv)


def test_scale_input_scale_always_folds_shift_only_where_exact() -> None:
    x = _x(3)
    a = torch.tensor([255.0, 2.0, -0.5], dtype=torch.float64)
    b = torch.tensor([-114.4, -111.5, -103.0], dtype=torch.float64)
    padded = _conv(3, 8, 3, padding=1)
    scaled = fm.scale_input(padded, a)  # scale only: exact even with zero padding
    assert _maxdiff(scaled(x), padded(a.view(1, -1, 1, 1) * x)) < TOL
    assert fm.scale_input(padded, a, b) is None  # a shift before a zero-padded conv is not exact
    assert "border" in fm.scale_input_blocker(padded, b)
    for conv in (_conv(3, 8, 3, padding=0), _conv(3, 8, 1), _conv(3, 8, 3, padding=1, padding_mode="replicate")):
        folded = fm.scale_input(conv, a, b)
        assert _maxdiff(folded(x), conv(a.view(1, -1, 1, 1) * x + b.view(1, -1, 1, 1))) < TOL


def test_scale_input_grouped() -> None:
    conv = _conv(4, 6, 3, padding=1, groups=2)
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    x = _x(4)
    assert _maxdiff(fm.scale_input(conv, a)(x), conv(a.view(1, -1, 1, 1) * x)) < TOL
    unpadded = _conv(4, 6, 3, groups=2)
    assert _maxdiff(fm.scale_input(unpadded, a, a)(x), unpadded(a.view(1, -1, 1, 1) * (x + 1))) < TOL


@pytest.mark.parametrize("upscale", [1, 2, 3])
def test_scale_output_through_pixel_shuffle(upscale: int) -> None:
    conv = _conv(4, 3 * upscale**2, 3, padding=1)
    shuffle = nn.PixelShuffle(upscale)
    a = torch.tensor([0.5, 2.0, -1.0], dtype=torch.float64)
    b = torch.tensor([114.4, 111.5, 103.0], dtype=torch.float64)
    x = _x()
    expected = shuffle(conv(x)) * a.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)
    assert _maxdiff(shuffle(fm.scale_output(conv, a, b, upscale)(x)), expected) < TOL
    assert _maxdiff(fm.scale_output(conv, 1 / 255)(x), conv(x) / 255) < TOL


def test_scale_output_adds_a_bias_when_needed() -> None:
    conv = _conv(4, 3, 3, padding=1, bias=False)
    x = _x()
    folded = fm.scale_output(conv, 2.0, 1.5)
    assert folded.bias is not None and _maxdiff(folded(x), 2 * conv(x) + 1.5) < TOL
    assert fm.scale_output(conv, 2.0).bias is None


def test_merge_parallel_pad_kernel_identity_conv() -> None:
    k3, k1 = _conv(5, 5, 3, padding=1), _conv(5, 5, 1)
    ident = fm.identity_conv(5, 3, dtype=torch.float64)
    x = _x(5)
    assert _maxdiff(ident(x), x) == 0.0
    assert _maxdiff(fm.pad_kernel(k1, 3)(x), k1(x)) < TOL
    merged = fm.merge_parallel([k3, k1, ident])
    assert merged.kernel_size == (3, 3) and _maxdiff(merged(x), k3(x) + k1(x) + x) < TOL
    strided = fm.merge_parallel([_conv(5, 5, 3, padding=1, stride=2), _conv(5, 5, 1, stride=2)])
    assert strided is not None
    assert fm.merge_parallel([k3, _conv(5, 5, 3, padding=1, stride=2)]) is None  # different strides
    assert fm.merge_parallel([k3, _conv(5, 5, 3, padding=0)]) is None  # misaligned


def test_float32_folds_keep_dtype_and_device() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    folded = fm.scale_input(conv, 255.0)
    assert folded.weight.dtype == torch.float32 and folded.weight.device == conv.weight.device
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(folded(x), conv(255 * x), rtol=1e-5, atol=1e-3)
    assert conv.weight.grad is None and folded is not conv  # inputs untouched
