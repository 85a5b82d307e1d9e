"""Depth pruning: residual blocks that can be removed whole, their gates, and the physical removal.

A block's gate g turns its output y = f(x) into ``x + g * (f(x) - x)``: g = 1 is the block, g = 0 is
the identity, i.e. the block deleted. The Group Fisher importance of a block is Σ_n (∂L_n/∂g)² (the
same first-order estimate of the loss increase as a channel's), normalised by what deleting the block
saves (its conv outputs or MACs at the current widths), so `Pruner.select` can compare dropping a
block with thinning channels on one scale.

Removal is physical: the model is rebuilt by `create_model` with one block fewer in its config and
the remaining blocks' weights renumbered (``block_5`` -> ``block_4``), so the pruned artifact rebuilds
from its config like any other. The channel keep-state carries over through the consumers: after the
drop, block k+1 reads what block k-1 produces, masked exactly as the gate-0 model masked it (the
mask of block k's output group). A block is droppable only when that mapping is a function of the old
channels (e.g. RLFN's first block is not: its input is the long skip, read by the upsampler too).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch
from torch import nn

from edgesr.errors import UserInputError

if TYPE_CHECKING:
    from edgesr.prune.pruner import Pruner

__all__ = ["BlockFamily", "block_family", "block_paths", "carry_keep", "concat_positions", "drop_blocks",
           "droppable_paths", "path_renamer"]


@dataclass(frozen=True)
class BlockFamily:
    """How an architecture numbers its removable residual blocks."""

    count_key: str  # create_model keyword holding the number of blocks
    pattern: str  # module path of block i, e.g. "block_{}"
    first: int  # index of the first block
    tail: bool = False  # a module numbered right after the last block follows it (EDSR's body.{n} conv)
    # conv reading cat(every block's output) in block order (RFDN's "c.0"): a removed block's input slice
    # is added into the slice of the block before it
    concat: str | None = None
    fixed: int = 0  # leading blocks that cannot be removed (RFDN's first: its input is not in the concat)


def _families() -> dict[type, BlockFamily]:
    from edgesr.models.edsr import EDSR
    from edgesr.models.rfdn import RFDN
    from edgesr.models.rlfn import RLFN

    return {RLFN: BlockFamily("num_blocks", "block_{}", 1),
            EDSR: BlockFamily("n_resblocks", "body.{}", 0, tail=True),
            RFDN: BlockFamily("num_modules", "B{}", 1, concat="c.0", fixed=1)}


def block_family(model: nn.Module) -> BlockFamily | None:
    """The block numbering of `model`'s architecture, or None when it has no removable block chain."""
    return _families().get(type(model))


def _count(model: nn.Module, family: BlockFamily) -> int:
    cfg = getattr(model, "edgesr_config", None) or {}
    n = getattr(model, family.count_key, None)
    if n is None:
        n = cfg.get(family.count_key)
    if n is None:  # count the blocks that exist
        modules = dict(model.named_modules())
        n = 0
        while family.pattern.format(family.first + n) in modules:
            n += 1
        if family.tail:
            n -= 1
    return int(n)


def block_paths(model: nn.Module) -> list[str]:
    """Module paths of `model`'s residual blocks in order ([] for architectures without a block chain)."""
    family = block_family(model)
    if family is None:
        return []
    return [family.pattern.format(family.first + i) for i in range(_count(model, family))]


def droppable_paths(model: nn.Module) -> list[str]:
    """The blocks of `model` that depth pruning may remove (all but the family's fixed leading ones)."""
    family = block_family(model)
    return block_paths(model)[family.fixed:] if family is not None else []


def _check_dropped(model: nn.Module, dropped: Sequence[str]) -> BlockFamily:
    family = block_family(model)
    if family is None:
        raise UserInputError(f"{type(model).__name__} has no removable residual blocks.")
    paths = block_paths(model)
    unknown = [p for p in dropped if p not in paths]
    if unknown:
        raise UserInputError(f"{type(model).__name__} has no block {unknown[0]!r}; its blocks: {', '.join(paths)}.")
    fixed = [p for p in dropped if p in paths[:family.fixed]]
    if fixed:
        reason = f" (its input is not among the blocks read by {family.concat})" if family.concat else ""
        raise UserInputError(f"block {fixed[0]} of {type(model).__name__} cannot be removed{reason}; removable: "
                             f"{', '.join(paths[family.fixed:]) or 'none'}.")
    return family


def path_renamer(model: nn.Module, dropped: Sequence[str]) -> Callable[[str], str | None]:
    """old module path / state_dict key -> its name once `dropped` blocks are gone (None: removed)."""
    family = _check_dropped(model, dropped)
    paths = block_paths(model)
    n = len(paths)
    numbered = paths + ([family.pattern.format(family.first + n)] if family.tail else [])
    mapping: dict[str, str | None] = {}
    j = 0
    for p in numbered:
        if p in dropped:
            mapping[p] = None
            continue
        mapping[p] = family.pattern.format(family.first + j)
        j += 1

    def rename(name: str) -> str | None:
        for old, new in mapping.items():
            if name == old or name.startswith(old + "."):
                return None if new is None else new + name[len(old):]
        return name

    return rename


def concat_positions(model: nn.Module, dropped: Sequence[str]) -> tuple[str, np.ndarray] | None:
    """(path of the family's concat conv, its new input position for each old input position) once
    `dropped` are gone: a removed block's slice lands on the slice of the nearest kept block before it
    (with its gate at 0 it reads that block's output). None for families without a concat."""
    family = _check_dropped(model, dropped)
    if family.concat is None:
        return None
    paths = block_paths(model)
    conv = model.get_submodule(family.concat)
    width, rest = divmod(int(conv.in_channels), len(paths))
    if rest or getattr(conv, "groups", 1) != 1:
        raise UserInputError(f"{family.concat} of {type(model).__name__} does not read {len(paths)} equal block "
                             f"slices ({conv.in_channels} inputs, groups={getattr(conv, 'groups', 1)}).")
    target, j = [], -1
    for p in paths:
        if p not in dropped:
            j += 1
        target.append(j)
    slots = np.repeat(np.array(target, dtype=np.int64), width) * width
    return family.concat, slots + np.tile(np.arange(width, dtype=np.int64), len(paths))


def drop_blocks(model: nn.Module, dropped: Sequence[str]) -> nn.Module:
    """A copy of `model` (unsliced widths) without the blocks `dropped`, built by `create_model` with the
    smaller block count, weights of every other layer carried over (strict load); a concat conv's input
    slices of removed blocks are added into the slices they now share (`concat_positions`)."""
    from edgesr.models import create_model
    from edgesr.prune.slicing import resolve_base_config

    family = _check_dropped(model, dropped)
    if not dropped:
        return model
    name, scale, cfg = resolve_base_config(model)
    n = len(block_paths(model))
    if len(set(dropped)) >= n:
        raise UserInputError(f"cannot drop {len(set(dropped))} of {n} blocks: at least one must stay.")
    rename = path_renamer(model, dropped)
    ref = next(model.parameters())
    # in the model's dtype before loading: a float64 model's weights (and merged slices) stay exact
    new = create_model(name, scale=scale, **{**cfg, family.count_key: n - len(set(dropped))}).to(
        device=ref.device, dtype=ref.dtype)
    state = {}
    for key, value in model.state_dict().items():
        new_key = rename(key)
        if new_key is not None:
            state[new_key] = value
    concat = concat_positions(model, dropped)
    if concat is not None:
        path, positions = concat
        w = state[path + ".weight"]
        merged = w.new_zeros((w.shape[0], int(positions.max()) + 1, *w.shape[2:]))
        merged.index_add_(1, torch.as_tensor(positions, device=w.device), w)
        state[path + ".weight"] = merged
    new.load_state_dict(state, strict=True)
    new.train(model.training)
    return new


def carry_keep(old: "Pruner", new: "Pruner", dropped: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(`new`'s keep vector, the matching keep vector of `old`) for removing blocks.

    Every conv call of the new model reads its input channels through the masks its old counterpart
    read them with. Where the removal merges two old channel groups (block k-1's output, also read
    inside block k-1 by RLFN's ESA, meets block k's output; a concat conv's slices k-1 and k become one),
    a merged channel stays only if every old channel it comes from was kept; the second vector is
    `old.keep` with that intersection applied, and `old`'s model masked with it and the removed blocks'
    gates at 0 equals the new model masked with the first. None when a structural mismatch or an empty
    group makes the removal impossible.
    """
    rename = path_renamer(old.model, dropped)
    concat = concat_positions(old.model, dropped)
    new_index = {(c.module, c.call): in_g for c, _, in_g in new._calls}
    pairs_new, pairs_old = [], []
    for call, _, in_g in old._calls:
        path = rename(call.module)
        if path is None or not len(in_g):
            continue
        new_in = new_index.get((path, call.call))
        if new_in is not None and concat is not None and call.module == concat[0]:
            positions = concat[1]
            if len(positions) != len(in_g) or len(new_in) != int(positions.max()) + 1:
                return None
            new_in = new_in[positions]
        if new_in is None or len(new_in) != len(in_g):
            return None
        pairs_new.append(new_in)
        pairs_old.append(in_g)
    if not pairs_new:
        return None
    n_idx, o_idx = np.concatenate(pairs_new), np.concatenate(pairs_old)
    keep = np.ones(new.total, dtype=bool)
    np.logical_and.at(keep, n_idx, old.keep[o_idx])
    keep[new.frozen] = True
    old_keep = old.keep.copy()
    np.logical_and.at(old_keep, o_idx, keep[n_idx])
    old_keep[old.frozen] = True
    for g in range(len(new.groups)):
        if not keep[new.offsets[g]:new.offsets[g + 1]].any():
            return None
    return keep, old_keep


def gate_output(x: torch.Tensor, out: torch.Tensor, gate: torch.Tensor | float) -> torch.Tensor:
    """The gated block: out at gate 1, the identity (block removed) at gate 0."""
    return x + gate * (out - x)
