"""``conv_chain``: compose two convs with nothing between them (1x1 -> 1x1, 1x1 -> kxk, kxk -> 1x1).

Two cases, decided by the cost measured with `edgesr.analysis.complexity` at the report's input size:

* the first conv's output is read only by the second: the pair becomes one conv (the first module is
  replaced by ``nn.Identity``, the second by the composed conv). One conv call and the intermediate
  tensor go away, but the composed conv can cost *more* MACs (a 1x1 bottleneck before a 3x3: the 3x3
  then runs on the wide input). Folded when the MACs do not grow by more than `max_mac_increase`
  (a fraction; 0 by default).
* the intermediate is also read elsewhere (RLFN/RFDN: ``c5``'s output feeds ESA's ``conv1`` and ESA's
  final multiply; ESA's ``conv1`` output feeds ``conv2`` and ``conv_f``): the first conv must stay, so the
  fold only replaces the second conv by the composed one reading the first conv's input. Conv count and
  #Acts stay the same; it is done only when it strictly lowers the MACs and both calls are in the same
  module's forward (the rewiring then rewrites that module, as ``identity_residual`` does).

Every decision not to fold is in the report's notes with its numbers.
"""
from __future__ import annotations

import math

import torch.fx
from torch import nn

from edgesr.analysis.complexity import Complexity
from edgesr.analysis.tracing import TraceError
from edgesr.layers import fold_math
from edgesr.transforms.graph import (data_users, is_conv2d, module_calls, owner_path, relative,
                                     replace_module, rewrite_owner, shape_users, trace)
from edgesr.transforms.registry import FoldContext, FoldPass, PassOutcome, register_pass


def _cost(profile: Complexity, path: str) -> tuple[int, int, tuple[int, ...]] | None:
    """(MACs, acts, output shape) of the single call of the conv at `path`."""
    hits = [r for r in profile.per_layer if r.name == path]
    return (hits[0].macs, hits[0].acts, hits[0].out_shape) if len(hits) == 1 else None


def _macs_of(conv: nn.Conv2d, out_shape: tuple[int, ...]) -> int:
    return math.prod(out_shape) * conv.weight.shape[1] * math.prod(conv.weight.shape[2:])


def _g(v: int) -> str:
    return f"{v / 1e9:+.4f} G"


def _m(v: int) -> str:
    return f"{v / 1e6:.3f} M"


@register_pass("conv_chain", order=70)
class ConvChainPass(FoldPass):
    description = "conv -> conv with no non-linearity between -> one conv, when it does not cost more MACs"

    def __init__(self, max_mac_increase: float = 0.0) -> None:
        self.max_mac_increase = float(max_mac_increase)

    def __repr__(self) -> str:
        return f"ConvChainPass(max_mac_increase={self.max_mac_increase:g})"

    def apply(self, model: nn.Module, ctx: FoldContext) -> PassOutcome:
        out = PassOutcome()
        while True:  # one fold at a time, then look again (a fold can make a new chain)
            try:
                graph = trace(model)
            except TraceError as exc:
                out.notes.append(f"skipped: {exc}")
                return out
            notes: dict[tuple[str, str], str] = {}  # decisions of the last look only
            if self._fold_one(model, graph, ctx.profile(model), out, notes):
                ctx.invalidate()
                continue
            break
        out.notes.extend(notes.values())
        return out

    def _fold_one(self, model: nn.Module, graph: torch.fx.Graph, profile: Complexity, out: PassOutcome,
                  notes: dict[tuple[str, str], str]) -> bool:
        modules = dict(model.named_modules())
        calls = module_calls(graph)
        for b_node in graph.nodes:
            second = modules.get(b_node.target) if b_node.op == "call_module" else None
            if not is_conv2d(second) or not b_node.args:
                continue
            a_node = b_node.args[0]
            is_module = isinstance(a_node, torch.fx.Node) and a_node.op == "call_module"
            first = modules.get(a_node.target) if is_module else None
            if not is_conv2d(first):
                continue
            key = (a_node.target, b_node.target)
            label = f"{a_node.target} -> {b_node.target}"
            if first.kernel_size != (1, 1) and second.kernel_size != (1, 1):
                continue  # kxk -> kxk never folds; not worth a note per pair
            why = fold_math.compose_blocker(first, second)
            if why is None and (calls[a_node.target] != 1 or calls[b_node.target] != 1):
                why = "a conv module is called more than once"
            if why is not None:
                notes[key] = f"{label} not foldable: {why}"
                continue
            cost_a, cost_b = _cost(profile, a_node.target), _cost(profile, b_node.target)
            if cost_a is None or cost_b is None:
                notes[key] = f"{label} not folded: no cost measured for it"
                continue
            composed = fold_math.compose_convs(first, second)
            macs_c = _macs_of(composed, cost_b[2])
            users = data_users(a_node)
            if users == [b_node] and not shape_users(a_node):
                before = cost_a[0] + cost_b[0]
                if macs_c > before * (1 + self.max_mac_increase):
                    notes[key] = (f"{label} not folded: {_g(macs_c - before)} MACs (more than allowed), "
                                  f"would save {_m(cost_a[1])} acts and 1 conv")
                    continue
                replace_module(model, b_node.target, composed)
                replace_module(model, a_node.target, nn.Identity())
                out.changes += 1
                out.convs_removed += 1
                out.notes.append(f"{label} folded: {_g(macs_c - before)} MACs, -{_m(cost_a[1])} acts, -1 conv")
                return True
            # The intermediate is read elsewhere too: `first` stays; `second` could read first's input.
            delta = macs_c - cost_b[0]
            readers = [str(u.target if u.op == "call_module" else getattr(u.target, "__name__", u.target))
                       for u in users if u is not b_node]
            shapes = len(shape_users(a_node))
            also = ", ".join(readers) + (f" (+{shapes} shape reads)" if shapes else "")
            head = (f"{label} not folded: {a_node.target}'s output is also read by {also}, so it stays; "
                    f"{b_node.target} as a {composed.in_channels}->{composed.out_channels} "
                    f"{composed.kernel_size[0]}x{composed.kernel_size[1]} conv on {a_node.target}'s input "
                    f"would change MACs by {_g(delta)} and save 0 acts, 0 convs")
            if delta >= 0:
                notes[key] = head
                continue
            owner = owner_path(b_node)
            if not owner or owner_path(a_node) != owner or not isinstance(a_node.args[0], torch.fx.Node):
                where = ("the model's own forward (cannot be rewritten in place)" if not owner
                         else "across modules")
                notes[key] = head.replace("not folded:", f"not folded (needs rewiring {where}):", 1)
                continue
            if self._rewire(model, owner, a_node, b_node, composed):
                out.changes += 1
                out.notes.append(f"{label} folded beside {a_node.target}: {_g(delta)} MACs")
                return True
            notes[key] = head
        return False

    @staticmethod
    def _rewire(model: nn.Module, owner: str, a_node: torch.fx.Node, b_node: torch.fx.Node,
                composed: nn.Conv2d) -> bool:
        a_rel, b_rel = relative(a_node.target, owner), relative(b_node.target, owner)

        def edit(g: torch.fx.Graph, mods: dict[str, nn.Module], root: nn.Module) -> int:
            nodes = {n.target: n for n in g.nodes if n.op == "call_module"}
            a, b = nodes.get(a_rel), nodes.get(b_rel)
            if a is None or b is None or b.args[0] is not a:
                return 0
            b.args = (a.args[0],) + tuple(b.args[1:])
            parent, _, leaf = b_rel.rpartition(".")
            setattr(root.get_submodule(parent) if parent else root, leaf, composed)
            return 1

        return rewrite_owner(model, owner, (a_rel, b_rel), edit) == 1

