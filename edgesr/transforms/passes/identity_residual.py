"""``identity_residual``: fold ``conv(x) + x`` into the conv (the identity becomes its centre tap).

RFDN's shallow residual blocks compute ``c*_r(x) + x``. Found on the torch.fx graph: an add whose
operands are a Conv2d's output and that conv's own input, the conv output read by nothing else. The conv
gets the identity; the add disappears, which needs new forward code for the module that makes the add
(RFDN's RFDB): that module is replaced by a ``torch.fx.GraphModule`` of its forward without the add
(class name kept, same child modules, same state_dict keys); the model itself keeps its class. A pattern
in the model's own forward cannot be rewritten in place and is reported instead.

Convs, parameters, MACs and #Acts do not change: the pass removes one elementwise add (a full read of
two tensors and a write) per pattern.
"""
from __future__ import annotations

from collections import defaultdict

import torch
import torch.fx
from torch import nn

from edgesr.analysis.tracing import TraceError
from edgesr.layers import fold_math
from edgesr.transforms.graph import (ADD_TARGETS, data_users, is_conv2d, module_calls, owner_path, relative,
                                     rewrite_owner, trace)
from edgesr.transforms.registry import FoldContext, FoldPass, PassOutcome, register_pass


def _is_add(node: torch.fx.Node) -> bool:
    if node.kwargs:  # alpha=, out=
        return False
    if node.op == "call_function" and node.target in ADD_TARGETS:
        return len(node.args) == 2
    return node.op == "call_method" and node.target == "add" and len(node.args) == 2


def find_patterns(graph: torch.fx.Graph, modules: dict[str, nn.Module]) -> list[tuple[torch.fx.Node, torch.fx.Node]]:
    """(add node, conv node) pairs of ``conv(x) + x`` with a single-use conv output."""
    found = []
    for node in graph.nodes:
        if not _is_add(node):
            continue
        a, b = node.args
        for conv_node, other in ((a, b), (b, a)):
            if not (isinstance(conv_node, torch.fx.Node) and conv_node.op == "call_module"):
                continue
            conv = modules.get(conv_node.target)
            if is_conv2d(conv) and conv_node.args and conv_node.args[0] is other \
                    and data_users(conv_node) == [node]:
                found.append((node, conv_node))
                break
    return found


@register_pass("identity_residual", order=60)
class IdentityResidualPass(FoldPass):
    description = "conv(x) + x -> conv with the identity in its centre tap (the add is removed)"

    def apply(self, model: nn.Module, ctx: FoldContext) -> PassOutcome:
        out = PassOutcome()
        try:
            graph = trace(model)
        except TraceError as exc:
            out.notes.append(f"skipped: {exc}")
            return out
        modules = dict(model.named_modules())
        calls = module_calls(graph)
        by_owner: dict[str, list[str]] = defaultdict(list)
        for add, conv_node in find_patterns(graph, modules):
            conv = modules[conv_node.target]
            why = fold_math.add_identity_blocker(conv)
            if why is None and calls[conv_node.target] != 1:
                why = f"the conv is called {calls[conv_node.target]} times"
            owner = owner_path(add)
            if why is None and not owner:
                why = "the add is in the model's own forward, which cannot be rewritten in place"
            if why is None and not conv_node.target.startswith(owner + "."):
                why = f"the conv is not inside {owner}"
            if why is not None:
                out.notes.append(f"{conv_node.target}(x) + x kept: {why}")
                continue
            by_owner[owner].append(relative(conv_node.target, owner))
        for owner, targets in by_owner.items():
            wanted = set(targets)

            def edit(g: torch.fx.Graph, mods: dict[str, nn.Module], root: nn.Module) -> int:
                done = 0
                for add, conv_node in find_patterns(g, mods):
                    if conv_node.target not in wanted:
                        continue
                    parent, _, leaf = conv_node.target.rpartition(".")
                    setattr(root.get_submodule(parent) if parent else root, leaf,
                            fold_math.add_identity(mods[conv_node.target]))
                    add.replace_all_uses_with(conv_node)
                    g.erase_node(add)
                    done += 1
                return done

            done = rewrite_owner(model, owner, targets, edit)
            out.changes += done
            if done:
                out.notes.append(f"{owner}: {', '.join(sorted(wanted))} took the identity; {done} adds removed "
                                 f"({owner} is now a torch.fx.GraphModule)")
            if done != len(wanted):
                out.notes.append(f"{owner}: {len(wanted) - done} patterns were not found again when rewriting")
        return out
