"""Re-parameterizable convolution (RepVGG / ECB style): several linear branches at training time,
one plain kxk convolution for deployment.

Training-time branches, all on the same input and summed (no activation inside; the caller applies it):

* ``conv_kxk``: kxk conv ('same' padding) [+ BN];
* ``conv_1x1``: 1x1 conv [+ BN];
* identity (when in == out channels and stride 1) [+ BN];
* ``expand`` -> ``squeeze``: a 1x1 conv to ``expand_ratio * out`` channels then a kxk conv, as in ECB
  (Zhang et al., "Edge-oriented Convolution Block", ACM MM 2021). The kxk conv reads the 1x1 output
  padded with the 1x1's *bias*, not with zeros, so the branch folds exactly (a zero-padded intermediate
  would not: see `edgesr.transforms.fold_math`) [+ BN after the kxk].

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

from edgesr.transforms import fold_math

__all__ = ["RepConv", "convert_to_repconv"]


class RepConv(nn.Module):
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
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ValueError(f"RepConv needs an odd kernel size, got {kernel_size}")
        can_identity = in_channels == out_channels and stride == 1
        if identity and not can_identity:
            raise ValueError("an identity branch needs in_channels == out_channels and stride 1")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), kernel_size // 2
        self.expand_ratio = expand_ratio
        self.use_bn = bool(use_bn)
        self.has_identity = can_identity if identity is None else bool(identity)
        self.deploy = bool(deploy)
        if self.deploy:
            proto = nn.Conv2d(in_channels, out_channels, kernel_size, stride, self.padding)
            self.weight, self.bias = proto.weight, proto.bias
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
        mid = self.expand(x)
        p = self.padding
        if p:
            # Pad with the expand bias: interior values untouched (+ 0), border values exactly the bias.
            border = F.pad(torch.zeros_like(mid[:1, :1]), (p, p, p, p), value=1.0)
            mid = F.pad(mid, (p, p, p, p)) + border * self.expand.bias.view(1, -1, 1, 1)
        return F.conv2d(mid, self.squeeze.weight, self.squeeze.bias, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
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
    def num_convs(self) -> int:
        """Convolution calls of one forward (1 once folded)."""
        if self.deploy:
            return 1
        return 1 + (self.conv_1x1 is not None) + 2 * (self.expand is not None)

    def _branch_convs(self) -> list[nn.Conv2d]:
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
        fused = fold_math.merge_parallel(self._branch_convs())
        if fused is None:  # pragma: no cover - the branches are built compatible
            raise RuntimeError("RepConv branches are not compatible")
        if fused.bias is None:  # always keep a bias: the deploy form (and plain RLFN/RFDN convs) have one
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
        for name in ("conv_kxk", "bn_kxk", "conv_1x1", "bn_1x1", "bn_identity", "expand", "squeeze", "bn_expand"):
            if hasattr(self, name):
                delattr(self, name)
        self.weight, self.bias = conv.weight, conv.bias
        self.deploy = True

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
    for path in paths:
        parent_path, _, name = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        conv = getattr(parent, name)
        k = conv.kernel_size[0] if isinstance(conv, nn.Conv2d) else None
        if (k is None or conv.kernel_size != (k, k) or conv.padding != (k // 2, k // 2) or conv.groups != 1
                or conv.dilation != (1, 1) or conv.stride[0] != conv.stride[1] or conv.bias is None):
            raise TypeError(f"{path} is not a square, 'same'-padded, biased, ungrouped Conv2d")
        rep = RepConv(conv.in_channels, conv.out_channels, k, conv.stride[0], expand_ratio=expand_ratio,
                      identity=identity, use_bn=use_bn)
        setattr(parent, name, rep.to(device=conv.weight.device, dtype=conv.weight.dtype))
