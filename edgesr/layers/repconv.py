"""Re-parameterizable convolution (RepVGG / ECB style): several linear branches at training time,
one plain kxk convolution for deployment.

Training-time branches, all on the same input and summed (no activation inside; the caller applies it):

* ``conv_kxk``: kxk conv ('same' padding) [+ BN];
* ``conv_1x1``: 1x1 conv [+ BN];
* identity (when in == out channels and stride 1) [+ BN];
* ``expand`` -> ``squeeze``: a 1x1 conv to ``expand_ratio * out`` channels then a kxk conv, as in ECB
  (Zhang et al., "Edge-oriented Convolution Block", ACM MM 2021). The kxk conv reads the 1x1 output
  padded with the 1x1's *bias*, not with zeros, so the branch folds exactly (a zero-padded intermediate
  would not: see `edgesr.layers.fold_math`) [+ BN after the kxk].

`reparameterize()` folds the branches in place into this module's own ``weight`` / ``bias`` (the same
state_dict keys as an ``nn.Conv2d`` at this path), and ``RepConv(..., deploy=True)`` builds that form
directly. The model-level fold (`edgesr.transforms.reparameterize`, pass ``repconv``) goes one step further
and replaces each RepConv by an ``nn.Conv2d`` (`to_conv`). BatchNorm branches fold with their running
statistics.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgesr.layers import fold_math
from edgesr.layers.reparam import ReparamConv, pad_with_bias, replace_convs

__all__ = ["RepConv", "convert_to_repconv"]


class RepConv(ReparamConv):
    """Multi-branch conv at training time, one kxk conv after `reparameterize()` (or with ``deploy=True``).

    Args:
        in_channels, out_channels: channels.
        kernel_size: odd kernel of the main branch (3).
        stride: stride of every branch (the identity branch needs 1).
        deploy: build the folded single-conv form directly.
        expand_ratio: width of the expand-squeeze branch as a multiple of `out_channels`; 0 drops it.
        identity: add the identity branch; None = when in == out channels and stride is 1.
        use_1x1: add the 1x1 branch.
        use_bn: a BatchNorm after each branch (RepVGG style); SR nets usually go without.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 deploy: bool = False, expand_ratio: float = 2, identity: bool | None = None,
                 use_1x1: bool = True, use_bn: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, deploy)
        can_identity = in_channels == out_channels and stride == 1
        if identity and not can_identity:
            raise ValueError("an identity branch needs in_channels == out_channels and stride 1")
        self.expand_ratio = expand_ratio
        self.use_bn = bool(use_bn)
        self.has_identity = can_identity if identity is None else bool(identity)
        if self.deploy:
            return
        k, bias = kernel_size, not use_bn
        self.conv_kxk = nn.Conv2d(in_channels, out_channels, k, stride, self.padding, bias=bias)
        self.bn_kxk = nn.BatchNorm2d(out_channels) if use_bn else None
        self.conv_1x1 = nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=bias) if use_1x1 else None
        self.bn_1x1 = nn.BatchNorm2d(out_channels) if use_bn and use_1x1 else None
        self.bn_identity = nn.BatchNorm2d(out_channels) if use_bn and self.has_identity else None
        mid = int(round(expand_ratio * out_channels))
        if mid > 0:
            # The expand 1x1 always has a bias: its value pads the squeeze conv's input.
            self.expand = nn.Conv2d(in_channels, mid, 1)
            # Declared with 'same' padding (its folded geometry); forward pads by hand with the bias.
            self.squeeze = nn.Conv2d(mid, out_channels, k, stride, self.padding, bias=bias)
            self.bn_expand = nn.BatchNorm2d(out_channels) if use_bn else None
        else:
            self.expand = self.squeeze = self.bn_expand = None

    # ------------------------------------------------------------------------------------------- forward
    def _expand_squeeze(self, x: torch.Tensor) -> torch.Tensor:
        mid = pad_with_bias(self.expand(x), self.expand.bias, self.padding)
        return F.conv2d(mid, self.squeeze.weight, self.squeeze.bias, self.stride)

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        out = self._bn(self.bn_kxk, self.conv_kxk(x))
        if self.conv_1x1 is not None:
            out = out + self._bn(self.bn_1x1, self.conv_1x1(x))
        if self.has_identity:
            out = out + self._bn(self.bn_identity, x)
        if self.expand is not None:
            out = out + self._bn(self.bn_expand, self._expand_squeeze(x))
        return out

    @staticmethod
    def _bn(bn: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
        return x if bn is None else bn(x)

    # ---------------------------------------------------------------------------------------------- fold
    def num_branch_convs(self) -> int:
        return 1 + (self.conv_1x1 is not None) + 2 * (self.expand is not None)

    def branch_convs(self) -> list[nn.Conv2d]:
        """Each branch as one kxk conv on the input (exact, BN folded with running statistics)."""

        def with_bn(conv: nn.Conv2d, bn: nn.Module | None) -> nn.Conv2d:
            if bn is None:
                return conv
            fused = fold_math.fuse_conv_bn(conv, bn)
            if fused is None:
                raise ValueError("RepConv BatchNorm without running statistics cannot be folded")
            return fused

        branches = [with_bn(self.conv_kxk, self.bn_kxk)]
        if self.conv_1x1 is not None:
            branches.append(with_bn(self.conv_1x1, self.bn_1x1))
        if self.has_identity:
            ident = fold_math.identity_conv(self.out_channels, 1, dtype=self.conv_kxk.weight.dtype,
                                            device=self.conv_kxk.weight.device)
            branches.append(with_bn(ident, self.bn_identity))
        if self.expand is not None:
            composed = fold_math.compose_convs(self.expand, self.squeeze, pad_with_bias=True)
            branches.append(with_bn(composed, self.bn_expand))
        return branches

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"]
        if self.stride != 1:
            parts.append(f"stride={self.stride}")
        if self.deploy:
            parts.append("deploy=True")
        else:
            parts.append(f"identity={self.has_identity}, expand_ratio={self.expand_ratio}")
        return ", ".join(parts)


def convert_to_repconv(model: nn.Module, paths: list[str], expand_ratio: float = 2,
                       identity: bool | None = None, use_bn: bool = False) -> None:
    """Replace the square, 'same'-padded Conv2d at each of `paths` by a training-time `RepConv` of the same
    shape (fresh initialisation; same device and dtype). Folding it later gives back a Conv2d at that path."""
    def make(conv: nn.Conv2d) -> RepConv:
        k = conv.kernel_size[0]
        if (conv.kernel_size != (k, k) or conv.padding != (k // 2, k // 2) or conv.groups != 1
                or conv.dilation != (1, 1) or conv.stride[0] != conv.stride[1] or conv.bias is None):
            raise TypeError(f"{conv} is not a square, 'same'-padded, biased, ungrouped Conv2d")
        return RepConv(conv.in_channels, conv.out_channels, k, conv.stride[0], expand_ratio=expand_ratio,
                       identity=identity, use_bn=use_bn)

    replace_convs(model, paths, make)
