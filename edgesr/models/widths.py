"""Plain convolutions rebuilt at other channel widths: how a pruned model's shape is expressed.

A pruned model is its registered architecture with some `nn.Conv2d` layers replaced by narrower ones;
`resize_convs` applies such a per-layer width table (weights come later, from a state_dict).
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from edgesr.errors import UserInputError

__all__ = ["conv_like", "resize_convs", "set_module"]


def conv_like(old: nn.Module, in_channels: int, out_channels: int, groups: int) -> nn.Conv2d:
    """A fresh `nn.Conv2d` like `old` (kernel, stride, padding, bias, device, dtype) at new widths."""
    if type(old) is not nn.Conv2d:
        raise UserInputError(f"cannot resize {type(old).__name__}: only torch.nn.Conv2d layers can be resized.")
    return nn.Conv2d(in_channels, out_channels, old.kernel_size, old.stride, old.padding, old.dilation, groups,
                     old.bias is not None, old.padding_mode, device=old.weight.device, dtype=old.weight.dtype)


def set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, new)


def resize_convs(model: nn.Module, layers: Mapping[str, Mapping[str, Any]]) -> nn.Module:
    """Replace each conv at a path of `layers` by one of its ``in_channels/out_channels/groups`` (in place)."""
    for path, spec in layers.items():
        try:
            old = model.get_submodule(path)
        except AttributeError:
            raise UserInputError(f"{type(model).__name__} has no layer {path!r} to resize.") from None
        new = conv_like(old, int(spec["in_channels"]), int(spec["out_channels"]), int(spec["groups"]))
        new.train(old.training)
        set_module(model, path, new)
    return model
