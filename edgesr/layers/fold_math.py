"""Exact fold arithmetic for convolutions: pure functions, no graph, no model.

Every function takes modules, never mutates them, and returns a *new* ``nn.Conv2d`` (same dtype and
device, fresh parameters) or ``None`` when the fold would not be exact. The functions take modules rather
than bare tensors because whether a fold is exact depends on the conv's geometry (padding, stride,
groups, dilation, padding mode), not only on its weights. The ``*_blocker`` companions say *why* a
fold is refused, for reports.

Exactness, in one place:

* ``scale_output`` (``a * conv(x) + b``, per output channel, also through PixelShuffle) is always exact.
* ``scale_input`` (``conv(a * x + b)``, per input channel): the scale ``a`` always folds (zero padding
  stays zero: ``a * 0 = 0``); the shift ``b`` folds exactly only when no tap reads padding (padding 0) or
  the padding copies real values (reflect / replicate / circular). With zero padding a shifted input is
  padded with 0, not with ``b``, so a folded bias would be wrong on the border pixels. This is EDSR's
  ``sub_mean`` before its padded 3x3 head conv: not foldable exactly.
* ``compose_convs``: 1x1 -> kxk and kxk -> 1x1 (groups 1). 1x1 -> kxk has the same border issue for the
  first conv's bias unless the kxk pads with something other than zeros, its padding is 0, or the
  intermediate is known to be padded with the first conv's bias (``pad_with_bias=True``, ECB style).
* ``add_identity`` (``conv(x) + s x``): a centre tap; exact for stride 1, odd kernels and 'same'
  alignment (the centre tap never reads padding).
* ``fuse_conv_bn`` uses BatchNorm's running statistics (eval-mode semantics).
* ``ungroup`` writes a grouped (e.g. depthwise) conv as the equivalent dense conv, so it can be composed.

Arithmetic is done in float64 and cast back, so float32 folds lose no more than one rounding.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = [
    "add_identity",
    "add_identity_blocker",
    "compose_convs",
    "compose_blocker",
    "fuse_conv_bn",
    "identity_conv",
    "merge_parallel",
    "pad_kernel",
    "scale_input",
    "scale_input_blocker",
    "scale_output",
    "ungroup",
]

Scalar = float | int | torch.Tensor | Sequence[float]


# ----------------------------------------------------------------------------------------------- helpers
def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def explicit_padding(conv: nn.Conv2d) -> tuple[int, int] | None:
    """The conv's padding as (ph, pw); None for an asymmetric 'same' (even kernel)."""
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0)
        k, d = _pair(conv.kernel_size), _pair(conv.dilation)
        if any((kk - 1) * dd % 2 for kk, dd in zip(k, d)):
            return None
        return tuple((kk - 1) * dd // 2 for kk, dd in zip(k, d))  # type: ignore[return-value]
    return _pair(conv.padding)


def _is_plain_conv(conv: nn.Module) -> bool:
    return isinstance(conv, nn.Conv2d) and not getattr(conv, "transposed", False)


def _hi(t: torch.Tensor) -> torch.Tensor:
    """Work in float64 (cast back by `_make_conv`)."""
    return t.detach().to(torch.float64)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    w = conv.weight
    return _hi(conv.bias) if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64,
                                                                        device=w.device)


def _vector(v: Scalar | None, n: int, like: torch.Tensor, name: str) -> torch.Tensor:
    """A per-channel float64 vector of length `n` from a scalar, sequence or tensor."""
    if v is None:
        return torch.zeros(n, dtype=torch.float64, device=like.device)
    t = torch.as_tensor(v, dtype=torch.float64, device=like.device).detach().to(torch.float64).flatten()
    if t.numel() == 1:
        return t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"{name} has {t.numel()} values; expected 1 or {n}")
    return t


def _make_conv(template: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None, *,
               stride=None, padding=None, dilation=None, groups=None, padding_mode=None) -> nn.Conv2d:
    """A new Conv2d like `template` (dtype, device, geometry unless overridden) holding weight/bias."""
    dtype, device = template.weight.dtype, template.weight.device
    conv = nn.Conv2d(weight.shape[1] * (groups if groups is not None else template.groups), weight.shape[0],
                     tuple(weight.shape[2:]),
                     stride=stride if stride is not None else template.stride,
                     padding=padding if padding is not None else template.padding,
                     dilation=dilation if dilation is not None else template.dilation,
                     groups=groups if groups is not None else template.groups,
                     bias=bias is not None,
                     padding_mode=padding_mode if padding_mode is not None else template.padding_mode,
                     device=device, dtype=dtype)
    with torch.no_grad():
        conv.weight.copy_(weight.to(dtype))
        conv.weight.requires_grad_(template.weight.requires_grad)
        if bias is not None:
            conv.bias.copy_(bias.to(dtype))
            conv.bias.requires_grad_(template.weight.requires_grad)
    conv.train(template.training)
    return conv


def _needs_bias(bias: torch.Tensor, *convs: nn.Conv2d) -> bool:
    return any(c.bias is not None for c in convs) or bool(torch.any(bias != 0))


# --------------------------------------------------------------------------------------------- BatchNorm
def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift) with ``bn(z) = scale * z + shift`` per channel in eval mode; None without running stats."""
    if bn.running_mean is None or bn.running_var is None:
        return None
    std = torch.sqrt(_hi(bn.running_var) + bn.eps)
    gamma = _hi(bn.weight) if bn.weight is not None else torch.ones_like(std)
    beta = _hi(bn.bias) if bn.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    return scale, beta - _hi(bn.running_mean) * scale


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> nn.Conv2d | None:
    """``bn(conv(x))`` as one conv, using BN's running statistics; None when BN tracks none."""
    affine = bn_affine(bn)
    if affine is None or not _is_plain_conv(conv) or bn.num_features != conv.out_channels:
        return None
    return scale_output(conv, affine[0], affine[1])


# ------------------------------------------------------------------------------------ scaling in and out
def scale_output(conv: nn.Conv2d, a: Scalar, b: Scalar | None = None, upscale: int = 1) -> nn.Conv2d:
    """``a * conv(x) + b`` as one conv. Always exact.

    `a`, `b` are scalars or per-channel vectors of the tensor they act on. With ``upscale = r`` they
    act after ``PixelShuffle(r)`` (one or more stages with product r): channel c there is made of the
    conv's channels ``c r^2 .. c r^2 + r^2 - 1``, so each value is repeated r^2 times.
    """
    out = conv.out_channels
    r2 = int(upscale) ** 2
    if out % r2:
        raise ValueError(f"{out} output channels cannot feed PixelShuffle({upscale})")
    a_v = _vector(a, out // r2, conv.weight, "a").repeat_interleave(r2)
    b_v = _vector(b, out // r2, conv.weight, "b").repeat_interleave(r2)
    weight = _hi(conv.weight) * a_v.view(-1, 1, 1, 1)
    bias = _bias(conv) * a_v + b_v
    return _make_conv(conv, weight, bias if _needs_bias(bias, conv) else None)


def scale_input_blocker(conv: nn.Module, b: Scalar | None = None) -> str | None:
    """Why ``conv(a * x + b)`` cannot fold exactly into one conv (None: it can)."""
    if not _is_plain_conv(conv):
        return f"{type(conv).__name__} is not a Conv2d"
    shift = torch.as_tensor(b if b is not None else 0.0, dtype=torch.float64)
    if not bool(torch.any(shift != 0)):
        return None
    pad = explicit_padding(conv)
    if pad == (0, 0) or conv.padding_mode != "zeros":
        return None
    return (f"the input shift is non-zero and the conv zero-pads by {pad}: padding of the shifted input "
            "would be 0, not the shift, so border pixels would change")


def scale_input(conv: nn.Conv2d, a: Scalar, b: Scalar | None = None) -> nn.Conv2d | None:
    """``conv(a * x + b)`` (per input channel) as one conv; None when not exact (see the module doc)."""
    if scale_input_blocker(conv, b) is not None:
        return None
    cin, g = conv.in_channels, conv.groups
    a_v = _vector(a, cin, conv.weight, "a")
    b_v = _vector(b, cin, conv.weight, "b")
    w = _hi(conv.weight)  # [out, cin/g, kh, kw]
    out = w.shape[0]
    wg = w.view(g, out // g, cin // g, *w.shape[2:])
    weight = (wg * a_v.view(g, 1, cin // g, 1, 1)).view_as(w)
    bias = _bias(conv) + (wg * b_v.view(g, 1, cin // g, 1, 1)).sum(dim=(2, 3, 4)).flatten()
    return _make_conv(conv, weight, bias if _needs_bias(bias, conv) else None)


# ------------------------------------------------------------------------------------------ composition
def ungroup(conv: nn.Conv2d) -> nn.Conv2d:
    """The same conv with ``groups=1``: a block-diagonal dense weight (zeros across groups). Exact.

    Lets a grouped or depthwise conv take part in `compose_convs` (e.g. EDBB's 1x1 -> depthwise Sobel).
    """
    g = conv.groups
    if g == 1:
        return _make_conv(conv, _hi(conv.weight), _hi(conv.bias) if conv.bias is not None else None)
    w = _hi(conv.weight)  # [out, in/g, kh, kw]
    out, cin_g = w.shape[0], w.shape[1]
    out_g = out // g
    dense = torch.zeros(out, cin_g * g, *w.shape[2:], dtype=torch.float64, device=w.device)
    for i in range(g):
        dense[i * out_g:(i + 1) * out_g, i * cin_g:(i + 1) * cin_g] = w[i * out_g:(i + 1) * out_g]
    return _make_conv(conv, dense, _hi(conv.bias) if conv.bias is not None else None, groups=1)


def _is_pointwise(conv: nn.Conv2d) -> bool:
    return _pair(conv.kernel_size) == (1, 1) and explicit_padding(conv) == (0, 0)


def compose_blocker(first: nn.Module, second: nn.Module, pad_with_bias: bool = False) -> str | None:
    """Why ``second(first(x))`` cannot become one conv exactly (None: `compose_convs` can do it)."""
    for name, c in (("first", first), ("second", second)):
        if not _is_plain_conv(c):
            return f"{name} is {type(c).__name__}, not a Conv2d"
        if c.groups != 1:
            return f"{name} conv is grouped (groups={c.groups})"
        if explicit_padding(c) is None:
            return f"{name} conv has asymmetric padding"
    if first.out_channels != second.in_channels:
        return "channel mismatch"
    if _is_pointwise(first) and _pair(first.stride) == (1, 1):
        if pad_with_bias or explicit_padding(second) == (0, 0) or second.padding_mode != "zeros":
            return None
        if first.bias is None or not bool(torch.any(first.bias != 0)):
            return None
        return (f"{second.kernel_size[0]}x{second.kernel_size[1]} conv zero-pads the 1x1 conv's output "
                f"(padding {explicit_padding(second)}) and the 1x1 bias is non-zero: border pixels would change")
    if _is_pointwise(second) and _pair(second.stride) == (1, 1):
        return None
    k1, k2 = _pair(first.kernel_size), _pair(second.kernel_size)
    return (f"{k1[0]}x{k1[1]} -> {k2[0]}x{k2[1]}: one of them must be a stride-1 unpadded 1x1 (a kxk -> kxk "
            "chain needs a larger kernel and the zero padding between them changes the borders)")


def compose_convs(first: nn.Conv2d, second: nn.Conv2d, *, pad_with_bias: bool = False) -> nn.Conv2d | None:
    """``second(first(x))`` (no non-linearity between) as one conv, or None when not exact.

    Handles 1x1 -> kxk (the result has `second`'s geometry), kxk -> 1x1 (the result has `first`'s
    geometry) and 1x1 -> 1x1; both convs groups 1. ``pad_with_bias=True`` states that `second` sees its
    input padded with `first`'s bias instead of zeros (ECB's expand-squeeze branch), which makes
    1x1 -> padded kxk exact.
    """
    if compose_blocker(first, second, pad_with_bias) is not None:
        return None
    w1, w2 = _hi(first.weight), _hi(second.weight)
    b1, b2 = _bias(first), _bias(second)
    if _is_pointwise(first) and _pair(first.stride) == (1, 1):
        weight = torch.einsum("omhw,mi->oihw", w2, w1[:, :, 0, 0])
        bias = b2 + torch.einsum("omhw,m->o", w2, b1)
        template = second
    else:  # kxk -> 1x1
        m2 = w2[:, :, 0, 0]
        weight = torch.einsum("om,mihw->oihw", m2, w1)
        bias = b2 + m2 @ b1
        template = first
    result = _make_conv(template, weight, bias if _needs_bias(bias, first, second) else None)
    for p in result.parameters():
        p.requires_grad_(second.weight.requires_grad)
    return result


# ----------------------------------------------------------------------------------- identity / merging
def add_identity_blocker(conv: nn.Module) -> str | None:
    """Why ``conv(x) + x`` cannot be one conv (None: it can)."""
    if not _is_plain_conv(conv):
        return f"{type(conv).__name__} is not a Conv2d"
    if conv.in_channels != conv.out_channels:
        return f"in ({conv.in_channels}) and out ({conv.out_channels}) channels differ"
    if _pair(conv.stride) != (1, 1):
        return f"stride {conv.stride}"
    k, d = _pair(conv.kernel_size), _pair(conv.dilation)
    if any(kk % 2 == 0 for kk in k):
        return f"even kernel {conv.kernel_size}"
    if explicit_padding(conv) != tuple((kk - 1) // 2 * dd for kk, dd in zip(k, d)):
        return f"padding {conv.padding} does not keep the size (the centre tap would be misaligned)"
    return None


def add_identity(conv: nn.Conv2d, scale: float = 1.0) -> nn.Conv2d | None:
    """``conv(x) + scale * x`` as one conv (identity added as the centre tap); None when not exact."""
    if add_identity_blocker(conv) is not None:
        return None
    w = _hi(conv.weight)
    weight = w + scale * _hi(identity_conv(conv.in_channels, conv.kernel_size, conv.groups,
                                           dtype=torch.float64, device=w.device).weight)
    return _make_conv(conv, weight, _hi(conv.bias) if conv.bias is not None else None)


def identity_conv(channels: int, kernel_size: int | Sequence[int] = 1, groups: int = 1, *,
                  dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> nn.Conv2d:
    """A 'same'-padded conv computing the identity (a one at each channel's centre tap), no bias."""
    kh, kw = _pair(kernel_size)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"the identity needs an odd kernel, got {kernel_size}")
    if channels % groups:
        raise ValueError(f"{channels} channels cannot be split into {groups} groups")
    conv = nn.Conv2d(channels, channels, (kh, kw), padding=(kh // 2, kw // 2), groups=groups, bias=False,
                     dtype=dtype, device=device)
    cpg = channels // groups
    with torch.no_grad():
        conv.weight.zero_()
        idx = torch.arange(channels)
        conv.weight[idx, idx % cpg, kh // 2, kw // 2] = 1.0
    return conv


def pad_kernel(conv: nn.Conv2d, kernel_size: int | Sequence[int]) -> nn.Conv2d:
    """The same conv with its kernel zero-padded (centred) to a larger odd `kernel_size`. Exact.

    Padding grows by the same amount (times the dilation), so every output keeps its position; the new
    taps are zero, so what they read (padding or not) does not matter.
    """
    kh, kw = _pair(conv.kernel_size)
    th, tw = _pair(kernel_size)
    if (th - kh) % 2 or (tw - kw) % 2 or th < kh or tw < kw:
        raise ValueError(f"cannot centre a {kh}x{kw} kernel in {th}x{tw}")
    pad = explicit_padding(conv)
    if pad is None:
        raise ValueError("asymmetric padding")
    dh, dw = _pair(conv.dilation)
    ph, pw = (th - kh) // 2, (tw - kw) // 2
    weight = torch.nn.functional.pad(_hi(conv.weight), (pw, pw, ph, ph))
    return _make_conv(conv, weight, _hi(conv.bias) if conv.bias is not None else None,
                      padding=(pad[0] + ph * dh, pad[1] + pw * dw))


def merge_parallel(convs: Sequence[nn.Conv2d]) -> nn.Conv2d | None:
    """``sum_i conv_i(x)`` (same input) as one conv; smaller odd kernels are centred in the largest.

    All convs need the same in/out channels, stride, groups, dilation (for kernels > 1) and padding
    mode, and the same alignment (padding minus half the dilated kernel). None otherwise.
    """
    if not convs or not all(_is_plain_conv(c) for c in convs):
        return None
    kh = max(_pair(c.kernel_size)[0] for c in convs)
    kw = max(_pair(c.kernel_size)[1] for c in convs)
    padded = []
    for c in convs:
        try:
            padded.append(c if _pair(c.kernel_size) == (kh, kw) else pad_kernel(c, (kh, kw)))
        except ValueError:
            return None
    ref = padded[0]

    def geometry(c: nn.Conv2d) -> tuple:
        return (c.in_channels, c.out_channels, _pair(c.stride), c.groups, explicit_padding(c), c.padding_mode,
                _pair(c.dilation) if (kh, kw) != (1, 1) else None)

    if any(geometry(c) != geometry(ref) for c in padded):
        return None
    weight = sum(_hi(c.weight) for c in padded)
    bias = sum(_bias(c) for c in padded)
    return _make_conv(ref, weight, bias if _needs_bias(bias, *convs) else None)
