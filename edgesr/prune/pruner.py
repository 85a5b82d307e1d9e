"""The pruning state of one model: shared group masks, Fisher accumulation, channel selection, metrics.

`Pruner` is the reusable core of `fisher_prune` (and of a training loop that prunes while it trains)::

    pruner = Pruner(model, normalize="memory", round_to=4)
    with pruner.attached():                   # forward pre-hooks mask every consumer conv's input
        for step, (lr, hr) in enumerate(batches):
            with pruner.fisher():             # batch-expanded masks [N, C_g, 1, 1] that require grad
                sr = model(lr)
            per_sample = (sr - hr).abs().flatten(1).mean(1)
            per_sample.mean().backward()
            pruner.accumulate(scale=len(per_sample))   # grads of Σ_n L_n: one score update per sample
            optimizer.step(); optimizer.zero_grad()
            if (step + 1) % 10 == 0:
                pruner.step()                 # prune the lowest normalised-score channel(s)
    small, config = pruner.export()           # a physically smaller nn.Module + its JSON config

Masking a channel is exactly what removing it does: a removed channel reaches no conv (its input is
zeroed at every consumer), and everything between producers and consumers is channel-wise.
"""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from edgesr.errors import UserInputError
from edgesr.prune.importance import GroupFisher
from edgesr.prune.trace import ChannelGraph, ChannelGroup, trace_channels

log = logging.getLogger(__name__)

__all__ = ["METRICS", "NORMALIZATIONS", "PruneEvent", "Pruner"]

NORMALIZATIONS = ("memory", "flops", "latency", "none")
METRICS = ("params", "flops", "acts", "latency")


@dataclass
class PruneEvent:
    """One pruning decision."""

    step: int
    group: int
    name: str
    channels: list[int]  # channel indices inside the group (original numbering)
    score: float  # normalised importance of the removed channels (sum of scores / sum of costs)
    width: int  # group width after the prune
    metrics: dict[str, float]  # params / flops / acts (/ latency) after the prune
    block: str | None = None  # a whole residual block removed (its path before the removal), else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Pruner:
    """Channel masks and pruning decisions for `model` (see the module docstring).

    Args:
        model: the network; it is not modified except for the hooks `attach` installs.
        example_input: tensor or shape used to trace (default 2x3x32x32).
        deploy_size: LR (H, W) at which memory costs and complexity are measured (256x256: NTIRE).
        graph: a `ChannelGraph` already traced for this model.
        importance: callable ``(model, group) -> scores``; default `GroupFisher()`.
        normalize: "memory" (ΔM: conv-output elements saved per channel), "flops" (MACs saved),
            "latency" (`latency_table` ms per channel) or "none".
        latency_table: {group name or index: ms saved per removed channel}.
        latency_base_ms: constant part of the latency estimate (for absolute latency targets).
        round_to: widths stay multiples of k: k channels of one group go at a time (the first prune of
            a group whose width is not a multiple of k removes ``width % k``), never below k.
        depth: also score whole residual blocks (a Fisher gate per block, `edgesr.prune.depth`); when
            dropping a block costs less per saved memory/MAC than thinning a channel, `step` returns a
            block event and `without_blocks` gives the pruner of the model without it.
        min_blocks: depth pruning keeps at least this many blocks.
    """

    def __init__(self, model: nn.Module, *, example_input: torch.Tensor | Sequence[int] | None = None,
                 deploy_size: Sequence[int] | int = (256, 256), graph: ChannelGraph | None = None,
                 importance: Callable[[nn.Module, ChannelGroup], torch.Tensor] | None = None,
                 normalize: str | None = "memory", latency_table: Mapping[str | int, float] | None = None,
                 latency_base_ms: float = 0.0, round_to: int = 1, depth: bool = False,
                 min_blocks: int = 1) -> None:
        normalize = "none" if normalize is None else str(normalize).lower()
        if normalize not in NORMALIZATIONS:
            raise UserInputError(f"unknown normalisation {normalize!r}; choose one of {', '.join(NORMALIZATIONS)}.")
        if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
            raise UserInputError(f"round_to must be a positive integer, got {round_to!r}.")
        self.model = model
        self.graph = graph if graph is not None else trace_channels(model, example_input, deploy_size)
        self.groups = self.graph.groups
        self.importance = importance if importance is not None else GroupFisher()
        self.normalize = normalize
        self.round_to = round_to
        self.step_count = 0
        widths = np.array([g.width for g in self.groups], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
        self.total = int(self.offsets[-1])
        self.frozen = np.concatenate([np.array(g.frozen, dtype=bool) for g in self.groups]) if self.groups \
            else np.zeros(0, dtype=bool)
        self.keep = np.ones(self.total, dtype=bool)
        self.comp_group = np.repeat(np.arange(len(self.groups)), widths)
        self.gidx = self.offsets[self.graph.elem_group] + self.graph.elem_comp  # element -> global channel
        self.latency_table = self._check_latency(latency_table) if latency_table is not None else None
        self.latency_base_ms = float(latency_base_ms)
        if normalize == "latency" and self.latency_table is None:
            raise UserInputError("normalize='latency' needs a latency_table: {group name: ms per channel}.")
        self._prepare_calls()
        self._memory = np.concatenate(self.graph.memory_costs()) if self.groups else np.zeros(0)
        self._handles: list[Any] = []
        self._fisher_mode = False
        self._leaves: dict[int, torch.Tensor] = {}
        self._flat: torch.Tensor | None = None
        self._flat_plain: torch.Tensor | None = None
        self._keep_t: torch.Tensor | None = None
        self._active: set[str] = set()
        self._refresh_active()
        self._settings = {"deploy_size": deploy_size, "importance": self.importance, "normalize": normalize,
                          "latency_table": latency_table, "latency_base_ms": latency_base_ms, "round_to": round_to,
                          "depth": depth, "min_blocks": min_blocks}
        self._example_input = example_input
        self.depth = bool(depth)
        self.min_blocks = int(min_blocks)
        self.blocks: list[str] = []
        if self.depth:
            if normalize not in ("memory", "flops"):
                raise UserInputError("depth pruning compares blocks and channels by memory or FLOPs saved: "
                                     "use normalize='memory' or 'flops'.")
            if not hasattr(self.importance, "update"):
                raise UserInputError("depth pruning needs a Fisher importance (block gates are scored by Fisher).")
            from edgesr.prune.depth import droppable_paths

            self.blocks = droppable_paths(model)
        self.block_scores = np.zeros(len(self.blocks), dtype=np.float64)
        self._trials: dict[str, Pruner] = {}
        self.gate_values: dict[str, float] = {}  # fixed gates (0 = block removed), for analysis and tests
        self._gate_leaves: dict[str, torch.Tensor] = {}
        self.pending_block: str | None = None
        self.block_floor: tuple[str, float] | None = None  # (metric, value) a block drop must not go below

    # ------------------------------------------------------------------ setup
    def _block_trial(self, path: str) -> "Pruner":
        """The (cached) pruner of the model without block `path`: its structure, for costs and carrying."""
        trial = self._trials.get(path)
        if trial is None:
            from edgesr.prune.depth import drop_blocks

            trial = Pruner(drop_blocks(self.model, [path]), example_input=self._example_input,
                           deploy_size=self._settings["deploy_size"], normalize="none")
            self._trials[path] = trial
        return trial

    def _carry_or_none(self, path: str) -> tuple[np.ndarray, np.ndarray] | None:
        from edgesr.prune.depth import carry_keep

        return carry_keep(self, self._block_trial(path), [path])

    def _carry(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        out = self._carry_or_none(path)
        if out is None:
            raise UserInputError(f"block {path} cannot be removed at the current widths (a merged channel group "
                                 "would be empty).")
        return out

    def _check_latency(self, table: Mapping[str | int, float]) -> np.ndarray:
        per = np.zeros(len(self.groups), dtype=np.float64)
        names = {g.name: g.index for g in self.groups}
        for key, ms in table.items():
            if isinstance(key, int) and 0 <= key < len(self.groups):
                per[key] = float(ms)
            elif key in names:
                per[names[key]] = float(ms)
            else:
                raise UserInputError(f"latency table names unknown group {key!r}; groups: {', '.join(names)}.")
        missing = [g.name for g in self.groups if not g.is_frozen and g.name not in table and g.index not in table]
        if missing:
            raise UserInputError(f"latency table misses {len(missing)} prunable group(s): {', '.join(missing[:8])}"
                                 f"{' ...' if len(missing) > 8 else ''} (give 0 to never prune one).")
        return per

    def _prepare_calls(self) -> None:
        """Per conv call / channel-wise module: global channel index arrays of outputs and inputs."""
        self._calls = []
        for call in self.graph.conv_calls:
            out_g = self.gidx[np.array(call.out_elems, dtype=np.int64)]
            in_g = self.gidx[np.array(call.in_elems, dtype=np.int64)] if call.in_elems else np.zeros(0, np.int64)
            self._calls.append((call, out_g, in_g))
        self._modules: dict[str, tuple[Any, np.ndarray, np.ndarray]] = {}
        for call, out_g, in_g in self._calls:
            self._modules.setdefault(call.module, (call, out_g, in_g))
        self._bn: dict[str, np.ndarray] = {}
        for bn in self.graph.channelwise_calls:
            self._bn.setdefault(bn.module, self.gidx[np.array(bn.elems, dtype=np.int64)])
        model_modules = dict(self.model.named_modules())
        sliced = set(self._modules) | set(self._bn)
        self._param_fixed = sum(p.numel() for p in self.model.parameters()) - sum(
            p.numel() for path in sliced for p in model_modules[path].parameters(recurse=False))
        self._bn_params = {path: sum(p.numel() for p in model_modules[path].parameters(recurse=False))
                           // max(len(g), 1) for path, g in self._bn.items()}
        # consumer masks: index into [1 | all channels]; frozen channels read the constant 1
        self._mask_index: dict[str, np.ndarray] = {}
        for path, (call, _, in_g) in self._modules.items():
            if call.frozen or not len(in_g):
                continue
            idx = np.where(self.frozen[in_g], 0, in_g + 1)
            if idx.any():
                self._mask_index[path] = idx
        self._mask_index_t: dict[tuple[str, torch.device], torch.Tensor] = {}

    # ------------------------------------------------------------------ keep state
    def group_keep(self, group: int | str) -> np.ndarray:
        g = self.graph.group_by_name(group).index if isinstance(group, str) else group
        return self.keep[self.offsets[g]:self.offsets[g + 1]].copy()

    def widths(self) -> list[int]:
        return [int(self.keep[self.offsets[g]:self.offsets[g + 1]].sum()) for g in range(len(self.groups))]

    def keep_state(self) -> list[list[bool]]:
        return [self.group_keep(g).tolist() for g in range(len(self.groups))]

    def load_keep_state(self, state: Sequence[Sequence[bool]]) -> None:
        if len(state) != len(self.groups) or any(len(s) != g.width for s, g in zip(state, self.groups)):
            raise UserInputError("pruning state does not match this model's channel groups.")
        keep = np.concatenate([np.asarray(s, dtype=bool) for s in state]) if state else self.keep
        if (~keep & self.frozen).any():
            raise UserInputError("pruning state removes frozen channels.")
        self.keep = keep.copy()
        self._keep_changed()

    def prune(self, group: int | str, channels: Sequence[int]) -> None:
        """Remove `channels` (indices inside the group) of `group` now (mask; slicing comes at `export`)."""
        g = self.graph.group_by_name(group) if isinstance(group, str) else self.groups[group]
        chans = sorted({int(c) for c in channels})
        if not chans:
            return
        if chans[0] < 0 or chans[-1] >= g.width:
            raise UserInputError(f"group {g.name} has {g.width} channels; cannot prune {chans}.")
        idx = self.offsets[g.index] + np.array(chans)
        if self.frozen[idx].any():
            raise UserInputError(f"channels {[c for c in chans if g.frozen[c]]} of group {g.name} are frozen "
                                 f"({'; '.join(g.frozen_reasons) or 'model input/output'}).")
        if self.keep[self.offsets[g.index]:self.offsets[g.index + 1]].sum() - self.keep[idx].sum() < 1:
            raise UserInputError(f"pruning {chans} would leave group {g.name} with no channel.")
        self.keep[idx] = False
        self._keep_changed()

    def _keep_changed(self) -> None:
        self._flat_plain = None
        self._keep_t = None
        self._refresh_active()

    def _refresh_active(self) -> None:
        self._active = {p for p, idx in self._mask_index.items()
                        if self._fisher_mode or not self.keep[idx[idx > 0] - 1].all()}

    # ------------------------------------------------------------------ hooks
    def attach(self) -> "Pruner":
        """Install the mask hooks (idempotent)."""
        if self._handles:
            return self
        modules = dict(self.model.named_modules())
        self._handles.append(self.model.register_forward_pre_hook(self._root_hook))
        for path in self._mask_index:
            self._handles.append(modules[path].register_forward_pre_hook(self._make_hook(path)))
        from edgesr.prune.depth import block_paths

        for path in sorted(set(self.blocks) | set(self.gate_values) & set(block_paths(self.model))):
            self._handles.append(modules[path].register_forward_hook(self._make_gate_hook(path)))
        return self

    def _make_gate_hook(self, path: str) -> Callable:
        from edgesr.prune.depth import gate_output

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
            leaf = self._gate_leaves.get(path) if self._fisher_mode else None
            value = self.gate_values.get(path, 1.0)
            if leaf is None and value == 1.0:
                return None
            gate = leaf.to(output.dtype) * value if leaf is not None else value
            return gate_output(args[0], output, gate)

        return hook

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._leaves = {}
        self._gate_leaves = {}
        self._flat = None

    @contextlib.contextmanager
    def attached(self) -> Iterator["Pruner"]:
        was = bool(self._handles)
        self.attach()
        try:
            yield self
        finally:
            if not was:
                self.detach()

    def __enter__(self) -> "Pruner":
        return self.attach()

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    @contextlib.contextmanager
    def fisher(self) -> Iterator[None]:
        """Forwards inside use per-sample masks that require grad; call `accumulate` after backward."""
        self._fisher_mode = True
        self._refresh_active()
        try:
            yield
        finally:
            self._fisher_mode = False
            self._refresh_active()

    def _root_hook(self, module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor):
            return
        if self._fisher_mode:
            b = x.shape[0]
            parts = [torch.ones(b, 1, device=x.device, dtype=x.dtype)]
            self._leaves = {}
            keep_all = self._keep_tensor(x.device, x.dtype)
            for g in self.groups:
                keep = keep_all[self.offsets[g.index]:self.offsets[g.index + 1]]
                if g.is_frozen:
                    parts.append(keep.expand(b, -1))
                    continue
                leaf = torch.ones(b, g.width, device=x.device, dtype=x.dtype, requires_grad=True)
                self._leaves[g.index] = leaf
                parts.append(leaf * keep)
            self._flat = torch.cat(parts, dim=1)
            self._gate_leaves = {p: torch.ones(b, 1, 1, 1, device=x.device, dtype=x.dtype, requires_grad=True)
                                 for p in self.blocks}
        else:
            flat = self._flat_plain
            if flat is None or flat.device != x.device or flat.dtype != x.dtype:
                flat = torch.cat([torch.ones(1, device=x.device, dtype=x.dtype),
                                  self._keep_tensor(x.device, x.dtype)]).unsqueeze(0)
                self._flat_plain = flat
            self._flat = flat

    def _keep_tensor(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        cached = self._keep_t
        if cached is None or cached.device != device or cached.dtype != dtype:
            cached = torch.as_tensor(self.keep, device=device).to(dtype)
            self._keep_t = cached
        return cached

    def _make_hook(self, path: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> tuple | None:
            if path not in self._active or self._flat is None:
                return None
            x = args[0]
            key = (path, x.device)
            idx = self._mask_index_t.get(key)
            if idx is None:
                idx = torch.as_tensor(self._mask_index[path], device=x.device)
                self._mask_index_t[key] = idx
            flat = self._flat
            mask = flat.index_select(1, idx)
            if mask.shape[0] != x.shape[0] and mask.shape[0] != 1:
                raise RuntimeError(f"mask batch {mask.shape[0]} != input batch {x.shape[0]} at {path}: one "
                                   "model call per forward is supported while computing Fisher scores")
            mask = mask.view(mask.shape[0], mask.shape[1], 1, 1).to(x.dtype)
            return (x * mask,) + tuple(args[1:])

        return hook

    def accumulate(self, scale: float = 1.0) -> None:
        """Feed the importance with the per-sample mask gradients of the last fisher forward.

        `scale` multiplies the gradients first: pass the batch size when the loss was a batch mean, so
        that each row is ∂L_n/∂m of the sample's own loss (scores then do not depend on batch size).
        """
        for i, path in enumerate(self.blocks):
            leaf = self._gate_leaves.get(path)
            if leaf is not None and leaf.grad is not None:
                self.block_scores[i] += float((leaf.grad.detach().double().flatten() * scale).pow(2).sum())
        self._gate_leaves = {}
        update = getattr(self.importance, "update", None)
        if update is None:
            self._leaves = {}
            return
        if not self._leaves:
            raise RuntimeError("no Fisher masks to read: run the forward inside `with pruner.fisher():` "
                               "with the hooks attached, then backward, then accumulate")
        for g, leaf in self._leaves.items():
            grad = leaf.grad
            if grad is None:
                grad = torch.zeros_like(leaf)
            update(g, grad.detach() * scale)
        self._leaves = {}

    # ------------------------------------------------------------------ metrics
    def complexity(self, keep: np.ndarray | None = None) -> dict[str, float]:
        """params / flops (conv MACs) / acts (conv output elements) / convs at the deployment size.

        NTIRE definitions (batch 1); with a latency table also the latency estimate in ms.
        """
        keep = self.keep if keep is None else keep
        macs = acts = 0
        params = self._param_fixed
        seen: set[str] = set()
        for call, out_g, in_g in self._calls:
            out_k, per_out, call_macs, call_acts = self._call_cost(call, out_g, in_g, keep)
            macs += call_macs
            acts += call_acts
            if call.module not in seen:
                seen.add(call.module)
                params += out_k * per_out + (out_k if call.bias else 0)
        for path, g in self._bn.items():
            params += int(keep[g].sum()) * self._bn_params[path]
        out = {"params": float(params), "flops": float(macs), "acts": float(acts),
               "convs": float(len(self._calls))}
        if self.latency_table is not None:
            widths = np.array([keep[self.offsets[i]:self.offsets[i + 1]].sum() for i in range(len(self.groups))])
            out["latency"] = float(self.latency_base_ms + (widths * self.latency_table).sum())
        return out

    @staticmethod
    def _call_cost(call: Any, out_g: np.ndarray, in_g: np.ndarray, keep: np.ndarray) -> tuple[int, int, int, int]:
        """(kept outputs, MACs per output element, MACs, output elements) of one conv call at the deploy size."""
        out_k = int(keep[out_g].sum())
        in_k = int(keep[in_g].sum()) if len(in_g) else call.in_channels
        groups = in_k if call.depthwise else call.groups
        per_out = call.kernel[0] * call.kernel[1] * (in_k // groups)
        hw = call.deploy_out_hw[0] * call.deploy_out_hw[1]
        return out_k, per_out, out_k * per_out * hw, out_k * hw

    def block_costs(self) -> np.ndarray:
        """Per droppable block: what removing it saves now (conv output elements, or MACs with
        normalize="flops"), at the current widths and the deployment size."""
        from edgesr.prune.depth import block_family, block_paths

        which = 2 if self.normalize == "flops" else 3
        costs = np.zeros(len(self.blocks), dtype=np.float64)
        for i, path in enumerate(self.blocks):
            for call, out_g, in_g in self._calls:
                if call.module.startswith(path + "."):
                    costs[i] += self._call_cost(call, out_g, in_g, self.keep)[which]
        family = block_family(self.model)
        if which == 2 and family is not None and family.concat in self._modules:
            # the concat conv loses the block's input slice too (its outputs stay)
            call, out_g, in_g = self._modules[family.concat]
            paths = block_paths(self.model)
            width = len(in_g) // len(paths)
            for i, path in enumerate(self.blocks):
                b = paths.index(path)
                part = in_g[b * width:(b + 1) * width]
                costs[i] += (int(self.keep[out_g].sum()) * int(self.keep[part].sum()) * call.kernel[0]
                             * call.kernel[1] * call.deploy_out_hw[0] * call.deploy_out_hw[1])
        return costs

    def block_metrics(self, path: str) -> dict[str, float]:
        """`complexity()` of the model once block `path` is removed (the masks carried over)."""
        return self._block_trial(path).complexity(self._carry(path)[0])

    def equivalent_keep(self, path: str) -> np.ndarray:
        """This model's keep vector that, with block `path`'s gate at 0, equals the model without it."""
        return self._carry(path)[1]

    def metric(self, kind: str, keep: np.ndarray | None = None) -> float:
        kind = "flops" if kind == "macs" else kind
        values = self.complexity(keep)
        if kind not in values:
            if kind == "latency":
                raise UserInputError("a latency target needs a latency_table: {group name: ms per channel}.")
            raise UserInputError(f"unknown metric {kind!r}; choose one of {', '.join(METRICS)}.")
        return values[kind]

    def min_width(self, group: ChannelGroup) -> int:
        """The smallest width `step` can bring `group` to (round_to rules, frozen channels kept)."""
        w = group.width
        k = self.round_to
        floor = max(k, group.width - group.prunable, 1)
        if w <= floor:
            return w
        if k == 1:
            return floor
        # w -> w - w % k -> ... multiples of k, never below floor
        first = w - (w % k) if w % k else w
        if first < floor:
            return w
        lowest = first - ((first - floor) // k) * k
        return lowest

    def minimal_keep(self) -> np.ndarray:
        """A keep vector with every prunable group at its minimum width (for reachability checks)."""
        keep = np.ones(self.total, dtype=bool)
        for g in self.groups:
            n_remove = g.width - self.min_width(g)
            if n_remove <= 0:
                continue
            prunable = [c for c in range(g.width) if not g.frozen[c]][:n_remove]
            keep[self.offsets[g.index] + np.array(prunable, dtype=np.int64)] = False
        return keep

    # ------------------------------------------------------------------ scoring and selection
    def costs(self) -> list[np.ndarray]:
        """Per group, per channel: the normaliser (memory elements, MACs, ms, or 1)."""
        if self.normalize == "memory":
            flat = self._memory
        elif self.normalize == "flops":
            flat = self._flops_costs()
        elif self.normalize == "latency":
            flat = self.latency_table[self.comp_group]
        else:
            flat = np.ones(self.total)
        return [flat[self.offsets[g]:self.offsets[g + 1]].astype(np.float64) for g in range(len(self.groups))]

    def _flops_costs(self) -> np.ndarray:
        cost = np.zeros(self.total, dtype=np.float64)
        keep = self.keep
        for call, out_g, in_g in self._calls:
            hw = call.deploy_out_hw[0] * call.deploy_out_hw[1] * call.kernel[0] * call.kernel[1]
            ao = np.bincount(out_g, minlength=self.total) * keep
            if call.depthwise:
                cost += ao * hw
                continue
            if call.groups != 1:
                continue
            bi = np.bincount(in_g, minlength=self.total) * keep if len(in_g) else np.zeros(self.total)
            out_k = keep[out_g].sum()
            in_k = keep[in_g].sum() if len(in_g) else call.in_channels
            touched = (ao > 0) | (bi > 0)
            cost[touched] += hw * (out_k * in_k - (out_k - ao[touched]) * (in_k - bi[touched]))
        return cost

    def raw_scores(self) -> list[torch.Tensor]:
        return [torch.as_tensor(self.importance(self.model, g), dtype=torch.float64).flatten().cpu()
                if not g.is_frozen else torch.zeros(g.width, dtype=torch.float64) for g in self.groups]

    def scores(self) -> list[np.ndarray]:
        """Normalised scores per group (raw importance / cost); removed and frozen channels are inf."""
        out = []
        for g, raw, cost in zip(self.groups, self.raw_scores(), self.costs()):
            s = raw.numpy() / np.where(cost > 0, cost, np.nan)
            s = np.where(np.isnan(s), np.inf, s)
            s[np.array(g.frozen, dtype=bool) | ~self.group_keep(g.index)] = np.inf
            out.append(s)
        return out

    def select(self, exclude: Collection[int] = ()) -> tuple[int, list[int], float] | None:
        """(group, channels, normalised score) of the cheapest legal prune, or None if nothing is prunable.
        Groups in `exclude` are not considered."""
        best: tuple[float, int, list[int]] | None = None
        raws = self.raw_scores()
        costs = self.costs()
        k = self.round_to
        for g, raw, cost in zip(self.groups, raws, costs):
            if g.is_frozen or g.index in exclude:
                continue
            keep = self.group_keep(g.index)
            width = int(keep.sum())
            n = (width % k or k) if k > 1 else 1
            if width - n < max(k, 1):
                continue
            cand = [c for c in range(g.width) if keep[c] and not g.frozen[c] and cost[c] > 0]
            if len(cand) < n:
                continue
            r = raw.numpy()
            per = np.array([r[c] / cost[c] for c in cand])
            per = np.where(np.isnan(per), np.inf, per)
            order = np.argsort(per, kind="stable")[:n]
            chans = sorted(cand[i] for i in order)
            value = float(sum(r[c] for c in chans) / sum(cost[c] for c in chans))
            if math.isnan(value):
                value = math.inf
            if best is None or value < best[0]:
                best = (value, g.index, chans)
        if best is None:
            return None
        return best[1], best[2], best[0]

    def select_block(self) -> tuple[str, float] | None:
        """(path, normalised Fisher score) of the cheapest droppable block, None without depth pruning,
        scores or blocks to spare. With `block_floor` = (metric, value) a block whose removal would take
        the metric below value is not offered (channels finish the last stretch to a target), nor one
        whose removal would empty a merged channel group (`carry_keep`)."""
        if not self.blocks or not self.block_scores.any():
            return None
        from edgesr.prune.depth import block_paths

        if len(block_paths(self.model)) - 1 < max(self.min_blocks, 1):
            return None
        per = self.block_scores / np.where(self.block_costs() > 0, self.block_costs(), np.nan)
        per = np.where(np.isnan(per), np.inf, per)
        for i in np.argsort(per, kind="stable"):
            if not np.isfinite(per[i]):
                return None
            path = self.blocks[int(i)]
            carried = self._carry_or_none(path)
            if carried is None:  # merging its channel groups would leave one empty
                continue
            floor = self.block_floor
            if floor is not None and self._block_trial(path).complexity(carried[0])[floor[0]] < floor[1]:
                continue
            return path, float(per[i])
        return None

    def step_many(self, count: int, step: int | None = None,
                  stop: Callable[[PruneEvent], bool] | None = None) -> list[PruneEvent]:
        """Up to `count` prunes on one set of scores, each from a different group (a group is never thinned
        twice on stale scores), ending early at a block removal or when `stop(event)` says so; then the
        scores are reset."""
        events: list[PruneEvent] = []
        used: set[int] = set()
        for _ in range(max(int(count), 1)):
            event = self.step(step, reset=False, exclude=used, blocks=not events)
            if event is None:
                break
            events.append(event)
            if event.block is not None or (stop is not None and stop(event)):
                break
            used.add(event.group)
        self._reset_scores()
        return events

    def _reset_scores(self) -> None:
        reset = getattr(self.importance, "reset", None)
        if reset is not None:
            reset()
        self.block_scores[:] = 0.0

    def step(self, step: int | None = None, *, reset: bool = True, exclude: Collection[int] = (),
             blocks: bool = True) -> PruneEvent | None:
        """Prune the lowest normalised-score channel(s) and reset the importance; None when nothing is left.

        With `depth`, a block whose normalised score is lower than the best channels' wins instead: the
        event has ``block`` set, nothing is masked, and the caller continues with
        ``pruner.without_blocks([event.block])`` (a physically shallower model).
        """
        choice = self.select(exclude)
        block = self.select_block() if blocks else None
        if choice is None and block is None:
            return None
        if block is not None and (choice is None or block[1] <= choice[2]):
            path, value = block
            metrics = self.block_metrics(path)
            self.pending_block = path
            if reset:
                self._reset_scores()
            self.step_count += 1
            return PruneEvent(step=self.step_count if step is None else step, group=-1, name=path, channels=[],
                              score=value, width=0, metrics=metrics, block=path)
        g, chans, value = choice
        self.prune(g, chans)
        if reset:
            self._reset_scores()
        self.step_count += 1
        return PruneEvent(step=self.step_count if step is None else step, group=g, name=self.groups[g].name,
                          channels=chans, score=value, width=self.widths()[g], metrics=self.complexity())

    def without_blocks(self, paths: Sequence[str]) -> "Pruner":
        """A pruner of a physical copy of the model without the blocks `paths` (removed one at a time),
        same settings, with the channel keep-state carried over (`equivalent_keep`)."""
        from edgesr.prune.depth import drop_blocks

        pruner = self
        for path in paths:
            keep = pruner._carry(path)[0]
            new = Pruner(drop_blocks(pruner.model, [path]), example_input=self._example_input, **self._settings)
            new.keep = keep.copy()
            new._keep_changed()
            new.step_count = pruner.step_count
            new.block_floor = pruner.block_floor
            pruner = new
        reset = getattr(pruner.importance, "reset", None)
        if reset is not None:
            reset()
        return pruner

    # ------------------------------------------------------------------ export
    def export(self, base_config: Mapping[str, Any] | None = None, verify: torch.Tensor | None = None,
               atol: float = 1e-4) -> tuple[nn.Module, Any]:
        """A physically smaller copy of the model (hooks not copied) and its `PrunedConfig`.

        With `verify` (an input batch) the copy's output is checked against the masked model's.
        """
        from edgesr.prune.slicing import slice_model

        small, config = slice_model(self.model, self, base_config=base_config)
        if verify is not None:
            _verify(self, small, verify, atol)
        return small, config


def _verify(pruner: Pruner, small: nn.Module, x: torch.Tensor, atol: float) -> None:
    """The sliced model must reproduce the masked one. Both run in float64 (and go back to their dtype
    exactly): RLFN-like networks carry activations in the thousands, where float32 rounding of a
    differently ordered sum is not a slicing error."""
    from edgesr.errors import EdgesrError

    dtype = next(small.parameters()).dtype
    was, was_small = pruner.model.training, small.training
    try:
        pruner.model.double().eval()
        small.double().eval()
        with torch.no_grad(), pruner.attached():
            ref = pruner.model(x.double())
        with torch.no_grad():
            got = small(x.double())
    finally:
        pruner.model.to(dtype).train(was)
        small.to(dtype).train(was_small)
        pruner._keep_t = pruner._flat_plain = None
    diff = float((ref - got).abs().max()) if ref.numel() else 0.0
    scale = 1.0 + float(ref.abs().max()) if ref.numel() else 1.0
    if not diff <= atol * scale:
        raise EdgesrError(f"internal error: the sliced model differs from the masked one by {diff:.3g} "
                          f"(allowed {atol * scale:.3g}); please report this with the model name.")
