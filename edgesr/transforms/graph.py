"""Graph view for the fold passes: torch.fx tracing with convs as leaves, and in-place module surgery.

Passes *analyse* a whole-model fx graph (convs, BatchNorm, ValueScale, PixelShuffle, re-parameterizable blocks are leaves,
so each is one ``call_module`` node whose target is its module path) and *apply* their result to the
original model:

* weight changes replace a submodule at its path (`replace_module`); the model keeps its class and its
  state_dict keys;
* a removed module (ValueScale, MeanShift, BatchNorm, the first conv of a folded chain) is replaced by
  ``nn.Identity``;
* removing a *function* call (the ``+ x`` of a residual folded into a conv) needs new forward code: the
  module whose forward makes the call (its "owner", e.g. an RFDB block) is replaced by a
  ``torch.fx.GraphModule`` traced from it with the call removed (`rewrite_owner`). Its children (same
  objects, same classes) and parameters stay where they were, so state_dict keys do not change. The
  model root cannot be replaced in place; a pattern in the root's own forward is reported, not folded.
"""
from __future__ import annotations

import operator
from collections import Counter
from typing import Callable, Iterable

import torch
import torch.fx
from torch import nn

from edgesr.analysis.tracing import ModelTracer, trace_model
from edgesr.layers.reparam import ReparamConv
from edgesr.layers.scale import ValueScale

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_SHAPE_METHODS = {"size", "dim", "ndimension"}
ADD_TARGETS = (operator.add, torch.add, operator.iadd)
MUL_TARGETS = (operator.mul, torch.mul, operator.imul)


def leaf_types() -> tuple[type, ...]:
    """What the fold passes see as one node: convs, BatchNorm, PixelShuffle, Linear, ValueScale and the
    re-parameterizable convs (`ReparamConv`)."""
    return (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.PixelShuffle, nn.Linear,
            ValueScale, ReparamConv)


def fold_tracer(keep: Callable[[nn.Module, str], bool] | None = None) -> ModelTracer:
    """Inlines every module except the fold-relevant leaves (and torch.nn's own modules); ``nn.Identity``
    is traced through, so what a fold left behind is invisible to the next pass."""
    return ModelTracer(leaf_types(), inline=(nn.Identity,), keep=keep)


def trace(model: nn.Module, tracer: ModelTracer | None = None) -> torch.fx.Graph:
    """The fx graph of `model` (not a GraphModule: nothing is copied); `TraceError` when it cannot be traced."""
    return trace_model(model, tracer or fold_tracer(), purpose="folding")


def module_calls(graph: torch.fx.Graph) -> Counter:
    """How often each module path is called in the graph."""
    return Counter(n.target for n in graph.nodes if n.op == "call_module")


def is_shape_query(node: torch.fx.Node) -> bool:
    if node.op == "call_method" and node.target in _SHAPE_METHODS:
        return True
    return node.op == "call_function" and node.target is getattr and len(node.args) > 1 \
        and node.args[1] in ("shape", "ndim")


def data_users(node: torch.fx.Node) -> list[torch.fx.Node]:
    """Users that read the tensor's values (not only its shape)."""
    return [u for u in node.users if not is_shape_query(u)]


def shape_users(node: torch.fx.Node) -> list[torch.fx.Node]:
    return [u for u in node.users if is_shape_query(u)]


def call_module_of(node: object, modules: dict[str, nn.Module], types: type | tuple[type, ...]) -> nn.Module | None:
    """The module a ``call_module`` node calls when it is an instance of `types`, else None."""
    if isinstance(node, torch.fx.Node) and node.op == "call_module":
        m = modules.get(node.target)
        if isinstance(m, types):
            return m
    return None


def is_conv2d(m: object) -> bool:
    return isinstance(m, nn.Conv2d) and not getattr(m, "transposed", False)


def owner_path(node: torch.fx.Node) -> str:
    """Path of the module whose forward made this call ('' for the model itself)."""
    stack = list((node.meta.get("nn_module_stack") or {}).values())
    paths = [entry[0] if isinstance(entry, tuple) else str(entry) for entry in stack]
    if node.op == "call_module" and paths and paths[-1] == node.target:
        paths = paths[:-1]
    return paths[-1] if paths else ""


def relative(path: str, owner: str) -> str:
    return path[len(owner) + 1:] if owner else path


def get_module(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path) if path else model


def replace_module(model: nn.Module, path: str, new: nn.Module) -> None:
    """Put `new` at `path` (the old module's training flag is kept)."""
    if not path:
        raise ValueError("the model itself cannot be replaced in place")
    parent_path, _, name = path.rpartition(".")
    parent = get_module(model, parent_path)
    old = getattr(parent, name)
    new.train(old.training)
    setattr(parent, name, new)


def rewrite_owner(model: nn.Module, owner: str, targets: Iterable[str],
                  edit: Callable[[torch.fx.Graph, dict[str, nn.Module], nn.Module], int]) -> int:
    """Replace the module at `owner` by a GraphModule of its forward after `edit(graph, modules, owner_module)`.

    `targets` are module paths (relative to the owner) the edit needs to see as ``call_module`` nodes;
    the modules on the way to them are inlined, every other child stays a leaf, so the rewritten
    forward calls the same child objects. `edit` returns how many rewrites it made; nothing is replaced
    when it returns 0. The owner's children, parameters and buffers are all kept (also unused ones).
    """
    if not owner:
        raise ValueError("the model itself cannot be rewritten in place")
    root = get_module(model, owner)
    targets = tuple(targets)

    def keep(m: nn.Module, qualname: str) -> bool:
        if isinstance(m, _CONTAINERS):
            return False
        return not any(t == qualname or t.startswith(qualname + ".") for t in targets)

    graph = trace(root, fold_tracer(keep))
    modules = dict(root.named_modules())
    changed = edit(graph, modules, root)
    if not changed:
        return 0
    for node in graph.nodes:
        # Annotations are strings under `from __future__ import annotations`; torch.fx cannot pickle
        # a GraphModule whose code refers to them (torch.save(model) would fail), and they add nothing.
        node.type = None
    graph.lint()
    gm = torch.fx.GraphModule(root, graph, class_name=type(root).__name__)
    # The owner's own children (same objects and classes, unused ones too), parameters and buffers, in the
    # owner's order, so the state_dict keeps its keys and their order.
    for table in ("_modules", "_parameters", "_buffers"):
        mine, theirs = getattr(gm, table), getattr(root, table)
        extra = {k: v for k, v in mine.items() if k not in theirs}
        mine.clear()
        mine.update(theirs)
        mine.update(extra)
    gm._non_persistent_buffers_set = set(root._non_persistent_buffers_set)
    for key, value in vars(root).items():  # plain attributes (flags, sizes) the rest of the code may read
        if not key.startswith("_") and key != "training" and not hasattr(gm, key):
            setattr(gm, key, value)
    gm.recompile()
    replace_module(model, owner, gm)
    return changed


def producer_conv(node: object, modules: dict[str, nn.Module], calls: Counter) -> tuple[torch.fx.Node, int] | None:
    """The Conv2d node feeding `node` through zero or more PixelShuffles, and the total upscale.

    Every tensor on the way must be read by exactly one op (its successor) and the conv module must be
    called once, so scaling the conv's output changes nothing else.
    """
    upscale = 1
    while isinstance(node, torch.fx.Node) and node.op == "call_module":
        m = modules.get(node.target)
        if len(data_users(node)) != 1:
            return None
        if isinstance(m, nn.PixelShuffle):
            upscale *= int(m.upscale_factor)
            node = node.args[0]
            continue
        if is_conv2d(m) and calls[node.target] == 1:
            return node, upscale
        return None
    return None
