"""Base class of the training-time multi-branch convolutions that fold exactly into one kxk conv.

A subclass (`RepConv`, `Conv3XC`, `EDBB`) declares its branches and says how each one is a single conv on
the block's input (`branch_convs`, built with `edgesr.layers.fold_math`); everything else is shared:

* ``to_conv()`` sums the branches into one new ``nn.Conv2d`` (what the ``repconv`` fold pass puts at the
  block's path, so a folded model has the plain architecture's state_dict);
* ``reparameterize()`` folds in place into the block's own ``weight`` / ``bias`` (the keys of an
  ``nn.Conv2d`` at that path), and ``deploy=True`` builds that form directly;
* ``num_convs()`` counts the convolution calls of one forward, for the fold report.

No activation inside: the caller applies it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from typing import Callable, Iterable

from edgesr.layers import fold_math

__all__ = ["ReparamConv", "pad_with_bias", "replace_convs"]


def pad_with_bias(x: torch.Tensor, bias: torch.Tensor, padding: int) -> torch.Tensor:
    """Pad `x` by `padding` on every side with the per-channel values `bias` instead of zeros.

    What a kxk conv after a 1x1 conv sees when the 1x1 runs on a zero-padded input (1x1 of 0 = its bias),
    and what makes ``1x1 -> padded kxk`` fold exactly (ECB's expand-squeeze, SPAN's Conv3XC, EDBB).
    """
    if not padding:
        return x
    p = padding
    border = F.pad(torch.zeros_like(x[:1, :1]), (p, p, p, p), value=1.0)
    return F.pad(x, (p, p, p, p)) + border * bias.view(1, -1, 1, 1)


class ReparamConv(nn.Module):
    """Several linear branches on one input at training time, one kxk conv once folded.

    Args:
        in_channels, out_channels: channels.
        kernel_size: odd kernel of the folded conv ('same' padding).
        stride: stride of the folded conv.
        deploy: build the folded single-conv form directly (subclasses then build no branches).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 deploy: bool = False) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ValueError(f"{type(self).__name__} needs an odd kernel size, got {kernel_size}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), kernel_size // 2
        self.deploy = bool(deploy)
        if self.deploy:
            proto = nn.Conv2d(in_channels, out_channels, kernel_size, stride, self.padding)
            self.weight, self.bias = proto.weight, proto.bias

    # ------------------------------------------------------------------------- what a subclass defines
    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The training-time computation (sum of the branches)."""
        raise NotImplementedError

    def branch_convs(self) -> list[nn.Conv2d]:  # pragma: no cover - abstract
        """Each branch as one conv on the block's input, with this block's geometry or a smaller
        centred kernel (exact; BatchNorm folded with running statistics)."""
        raise NotImplementedError

    def num_branch_convs(self) -> int:  # pragma: no cover - abstract
        """Convolution calls of one training-time forward."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ shared
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return self.forward_branches(x)

    def num_convs(self) -> int:
        """Convolution calls of one forward (1 once folded)."""
        return 1 if self.deploy else self.num_branch_convs()

    def to_conv(self) -> nn.Conv2d:
        """A new ``nn.Conv2d`` computing exactly this block (this module is not changed)."""
        if self.deploy:
            conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                             bias=self.bias is not None, dtype=self.weight.dtype, device=self.weight.device)
            with torch.no_grad():
                conv.weight.copy_(self.weight)
                if self.bias is not None:
                    conv.bias.copy_(self.bias)
            conv.train(self.training)
            return conv
        fused = fold_math.merge_parallel(self.branch_convs())
        if fused is None:  # pragma: no cover - the branches are built compatible
            raise RuntimeError(f"{type(self).__name__} branches are not compatible")
        if fused.bias is None:  # always keep a bias: the plain architectures' convs have one
            fused.bias = nn.Parameter(torch.zeros(self.out_channels, dtype=fused.weight.dtype,
                                                  device=fused.weight.device))
        fused.train(self.training)
        return fused

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the branches into this module's own ``weight`` / ``bias``, in place. Idempotent."""
        if self.deploy:
            return
        conv = self.to_conv()
        for table in ("_modules", "_parameters", "_buffers"):
            for name in list(getattr(self, table)):
                delattr(self, name)
        self.weight, self.bias = conv.weight, conv.bias
        self.deploy = True


def replace_convs(model: nn.Module, paths: Iterable[str], make: Callable[[nn.Conv2d], nn.Module]) -> None:
    """Put ``make(conv)`` in place of the ``nn.Conv2d`` at each dotted path (same device and dtype).

    How a model builds its training-time form: each deploy conv is replaced by a re-parameterizable block
    of the same shape, which folds back into a conv at that path.
    """
    for path in paths:
        parent_path, _, name = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        conv = getattr(parent, name)
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"{path} is a {type(conv).__name__}, not an nn.Conv2d")
        setattr(parent, name, make(conv).to(device=conv.weight.device, dtype=conv.weight.dtype))
