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
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch import nn

from edgesr.errors import UserInputError

if TYPE_CHECKING:
    from edgesr.prune.pruner import Pruner

__all__ = ["BlockFamily", "block_family", "block_paths", "carry_keep", "drop_blocks", "path_renamer"]


@dataclass(frozen=True)
class BlockFamily:
    """How an architecture numbers its removable residual blocks."""

    count_key: str  # create_model keyword holding the number of blocks
    pattern: str  # module path of block i, e.g. "block_{}"
    first: int  # index of the first block
    tail: bool = False  # a module numbered right after the last block follows it (EDSR's body.{n} conv)


def _families() -> dict[type, BlockFamily]:
    from edgesr.models.edsr import EDSR
    from edgesr.models.rlfn import RLFN

    return {RLFN: BlockFamily("num_blocks", "block_{}", 1),
            EDSR: BlockFamily("n_resblocks", "body.{}", 0, tail=True)}


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


def path_renamer(model: nn.Module, dropped: list[str]) -> Callable[[str], str | None]:
    """old module path / state_dict key -> its name once `dropped` blocks are gone (None: removed)."""
    family = block_family(model)
    if family is None:
        raise UserInputError(f"{type(model).__name__} has no removable residual blocks.")
    paths = block_paths(model)
    unknown = [p for p in dropped if p not in paths]
    if unknown:
        raise UserInputError(f"{type(model).__name__} has no block {unknown[0]!r}; its blocks: {', '.join(paths)}.")
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


def drop_blocks(model: nn.Module, dropped: list[str]) -> nn.Module:
    """A copy of `model` (unsliced widths) without the blocks `dropped`, built by `create_model` with the
    smaller block count, weights of every other layer carried over (strict load)."""
    from edgesr.models import create_model
    from edgesr.prune.slicing import resolve_base_config

    family = block_family(model)
    if family is None:
        raise UserInputError(f"{type(model).__name__} has no removable residual blocks.")
    if not dropped:
        return model
    name, scale, cfg = resolve_base_config(model)
    n = len(block_paths(model))
    if len(set(dropped)) >= n:
        raise UserInputError(f"cannot drop {len(set(dropped))} of {n} blocks: at least one must stay.")
    rename = path_renamer(model, list(dropped))
    ref = next(model.parameters())
    new = create_model(name, scale=scale, **{**cfg, family.count_key: n - len(set(dropped))})
    state = {}
    for key, value in model.state_dict().items():
        new_key = rename(key)
        if new_key is not None:
            state[new_key] = value
    new.load_state_dict(state, strict=True)
    new = new.to(device=ref.device, dtype=ref.dtype)
    new.train(model.training)
    return new


def carry_keep(old: "Pruner", new: "Pruner", rename: Callable[[str], str | None]
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """(`new`'s keep vector, the matching keep vector of `old`) for removing blocks.

    Every conv call of the new model reads its input channels through the masks its old counterpart
    read them with. Where the removal merges two old channel groups (block k-1's output, also read
    inside block k-1 by RLFN's ESA, meets block k's output), a merged channel stays only if every old
    channel it comes from was kept; the second vector is `old.keep` with that intersection applied, and
    `old`'s model masked with it and the removed blocks' gates at 0 equals the new model masked with the
    first. None when a structural mismatch or an empty group makes the removal impossible.
    """
    new_index = {(c.module, c.call): in_g for c, _, in_g in new._calls}
    pairs_new, pairs_old = [], []
    for call, _, in_g in old._calls:
        path = rename(call.module)
        if path is None or not len(in_g):
            continue
        new_in = new_index.get((path, call.call))
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
