"""How a pruned model's shape is expressed: plain convolutions at other widths, and configurable splits.

A pruned model is its registered architecture with some `nn.Conv2d` layers replaced by narrower ones;
`resize_convs` applies such a per-layer width table (weights come later, from a state_dict).

Channel splits are the other half. A ``torch.split(t, sizes, dim=1)`` whose sizes are written in the
forward code ties the split conv's width to that code, so those channels cannot be pruned. A module
that takes its split sizes from its constructor config subclasses `ConfigSplits` instead: the channel
tracer then gives every piece its own channel range, and the pruned sizes go back into the model's
`create_model` keyword arguments through `split_config` (IMDN's ``splits``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from edgesr.errors import UserInputError

__all__ = ["ConfigSplits", "conv_like", "resize_convs", "set_module", "set_split_sizes", "split_config"]


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


class ConfigSplits(nn.Module):
    """A module whose forward splits channels (``torch.split(t, sizes, dim=1)``) at sizes from its config.

    `split_sizes` lists the sizes of each split in forward order; the k-th channel split a call of the
    module makes must use ``split_sizes[k]`` exactly (the tracer checks, and freezes any other split).
    The model owning such modules implements ``split_config(sizes)`` (see `split_config`).
    """

    split_sizes: tuple[tuple[int, ...], ...] = ()


def split_config(model: nn.Module, sizes: Mapping[str, Sequence[Sequence[int]]]) -> dict[str, Any]:
    """The `create_model` keyword arguments that rebuild `model` with these split sizes.

    `sizes` maps the path of every `ConfigSplits` module of `model` to its new sizes (one entry per
    split, in forward order); the model's ``split_config`` method turns them into its config keys.
    """
    build = getattr(model, "split_config", None)
    if build is None:
        raise UserInputError(f"{type(model).__name__} has configurable channel splits but no split_config() to "
                             "write their pruned sizes into its config.")
    return dict(build({path: [list(map(int, s)) for s in per] for path, per in sizes.items()}))


def set_split_sizes(model: nn.Module, sizes: Mapping[str, Sequence[Sequence[int]]]) -> None:
    """Give each `ConfigSplits` module at a path of `sizes` those split sizes (in place; its convs are
    resized separately), as a model built from the matching `split_config` would have them."""
    for path, per in sizes.items():
        module = model.get_submodule(path)
        if not isinstance(module, ConfigSplits) or len(per) != len(module.split_sizes):
            raise UserInputError(f"{path} of {type(model).__name__} does not take {len(per)} configurable split(s).")
        module.split_sizes = tuple(tuple(int(n) for n in s) for s in per)
