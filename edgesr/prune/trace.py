"""Channel-group discovery: which output/input channels of which convolutions must be pruned together.

The model is traced with torch.fx (`edgesr.analysis.tracing`; `MeanShift` and `ValueScale` stay leaves) and its
shapes are propagated with `ShapeProp` on a real example input. Every 4-D tensor then carries one
*channel element* per channel; an element belongs to a *space* (the output of one conv call, the model
input, a PixelShuffle output, a constant). Ops relate elements:

* add / sub / same-shape mul / div, and cat on a non-channel dim, unify their operands' elements
  channel by channel (union-find); broadcasting a C=1 operand couples nothing;
* cat on dim 1 concatenates element lists (offsets come for free); split / chunk / slice on dim 1 take
  sub-ranges;
* PixelShuffle(r) ties consumer channel c to producer channels [c*r^2, (c+1)*r^2);
* a depthwise conv ties input channel i to its outputs [i*k, (i+1)*k) (k = channel multiplier);
* activations, BN, pooling, interpolate, pad pass channels through;
* a conv module called several times unifies its calls (they share weights).

A *component* (a union-find class of elements) is one prunable channel: removing it removes every
element in it (an output channel of each producer conv, an input channel of each consumer conv, a
BN channel). A *group* is a set of components joined through the spaces they touch; its channels share
one mask. Components touching the model input or output, a `MeanShift`/`ValueScale`, a constant, a
grouped (non-depthwise) conv or a split/slice with constant sizes are frozen: sizes written in a
module's code would have to change with the pruned channels, so edgesr keeps such channels (see
``docs`` in `edgesr.prune`). The exception is a ``torch.split`` inside a
`edgesr.models.widths.ConfigSplits` module (IMDN's blocks) at exactly its configured sizes: each piece
is then a channel range of its own (IMDN: the distilled part feeds the fusion conv, the remaining part
the next conv) and a `SplitCall` records it, so slicing can write the pruned sizes into the config.

Unknown functions/methods that touch channels raise `UnsupportedOpError` naming the op and the node;
control flow that torch.fx cannot trace raises `TraceError` naming the module and the code line.
"""
from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from edgesr.utils.shapes import parse_hw
from edgesr.analysis.tracing import ModelTracer, trace_model
from edgesr.errors import UserInputError
from edgesr.layers.mean_shift import MeanShift
from edgesr.layers.scale import ValueScale
from edgesr.models.widths import ConfigSplits

log = logging.getLogger(__name__)

__all__ = [
    "ChannelGraph",
    "ChannelGroup",
    "ConvCall",
    "GroupMember",
    "SplitCall",
    "UnsupportedOpError",
    "find_groups",
    "format_groups",
    "trace_channels",
]

DEFAULT_EXAMPLE = (2, 3, 32, 32)


class UnsupportedOpError(UserInputError):
    """The traced graph holds an op the channel analysis cannot see through."""


# --------------------------------------------------------------------------------------------------
# Op tables
# --------------------------------------------------------------------------------------------------

_PASS_MODULES: tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
    nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Identity, nn.Dropout,
    nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample,
    nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d, nn.ZeroPad2d, nn.ReflectionPad2d,
    nn.ReplicationPad2d, nn.ConstantPad2d,
)
_CHANNELWISE_MODULES: tuple[type, ...] = (nn.BatchNorm2d,)

_ELEMENTWISE_FUNCS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.isub,
    operator.imul, operator.itruediv, operator.neg, operator.pos, operator.pow, operator.abs,
    torch.add, torch.sub, torch.subtract, torch.mul, torch.multiply, torch.div, torch.divide,
    torch.maximum, torch.minimum, torch.relu, torch.sigmoid, torch.tanh, torch.abs, torch.exp,
    torch.sqrt, torch.neg, torch.clamp, torch.clip, torch.square, torch.pow, torch.where,
    F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish, F.sigmoid, F.tanh,
    F.hardtanh, F.hardswish, F.hardsigmoid, F.softplus, F.dropout, F.dropout2d,
    F.interpolate, F.upsample, F.upsample_bilinear, F.upsample_nearest, F.max_pool2d, F.avg_pool2d,
    F.adaptive_avg_pool2d, F.adaptive_max_pool2d,
}
_ELEMENTWISE_METHODS = {
    "add", "sub", "mul", "div", "add_", "sub_", "mul_", "div_", "relu", "relu_", "sigmoid", "sigmoid_",
    "tanh", "tanh_", "clamp", "clamp_", "clip", "clip_", "abs", "exp", "sqrt", "neg", "pow", "square",
    "contiguous", "float", "double", "half", "bfloat16", "to", "type", "type_as", "detach", "clone",
    "maximum", "minimum", "__radd__", "__rsub__", "__rmul__", "__rtruediv__",
}
_CAT_FUNCS = {torch.cat, torch.concat, torch.concatenate}
_SPLIT_FUNCS = {torch.split, torch.chunk, torch.tensor_split}
_SPLIT_METHODS = {"split", "chunk", "tensor_split", "split_with_sizes"}
_SHAPE_METHODS = {"size", "dim", "numel", "ndimension"}
_HARMLESS_ATTRS = {"dtype", "device", "ndim", "is_cuda", "requires_grad", "layout", "is_contiguous"}


def _op_name(node: fx.Node) -> str:
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", None) or str(target)
    if name == "fn" and node.name:  # boolean_dispatch wrappers such as F.max_pool2d
        name = node.name.rstrip("_0123456789")
    if mod in ("_operator", "operator"):
        return f"operator.{name}"
    if mod.startswith("torch.nn.functional") or target in vars(F).values():
        return f"F.{name}"
    if mod.startswith("torch") or getattr(torch, name, None) is target:
        return f"torch.{name}"
    return f"{mod}.{name}" if mod else name


# --------------------------------------------------------------------------------------------------
# Union-find over channel elements
# --------------------------------------------------------------------------------------------------

class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.frozen: list[bool] = []

    def add(self, n: int, frozen: bool = False) -> int:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        self.frozen.extend([frozen] * n)
        return start

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.frozen[ra] = self.frozen[ra] or self.frozen[rb]

    def freeze(self, a: int) -> None:
        self.frozen[self.find(a)] = True

    def is_frozen(self, a: int) -> bool:
        return self.frozen[self.find(a)]


@dataclass
class _Space:
    index: int
    base: int
    size: int
    kind: str  # conv | input | frozen | shuffle | const
    node: str
    module: str | None = None


class _ShapeOf:
    """Marker for `x.size()` / `x.shape` results: indexing the channel entry is an error."""


# --------------------------------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------------------------------

@dataclass
class ConvCall:
    """One call of an `nn.Conv2d` in the traced graph (shapes at the trace and deployment sizes)."""

    module: str
    node: str
    call: int
    in_elems: list[int]
    out_elems: list[int]
    in_channels: int
    out_channels: int
    groups: int
    kernel: tuple[int, int]
    bias: bool
    out_hw: tuple[int, int]  # at the example input
    deploy_out_hw: tuple[int, int] = (0, 0)  # at the deployment input (batch 1)
    frozen: bool = False  # MeanShift / grouped conv: never sliced
    depthwise: bool = False


@dataclass
class SplitCall:
    """A channel split whose sizes are its module's config (`ConfigSplits`): the pieces' channel elements.

    `index` is the split's position in ``module.split_sizes``; the pruned size of piece i is the number
    of kept channels among ``pieces[i]``.
    """

    module: str
    node: str
    index: int
    pieces: list[list[int]]


@dataclass
class ChannelwiseCall:
    """A module with one parameter per channel (BatchNorm2d) on a group's channels."""

    module: str
    node: str
    elems: list[int]


@dataclass
class GroupMember:
    """A module's channels inside one group: `channels[c]` = the module's channel indices of group channel c."""

    module: str
    role: str  # "out" (producer), "in" (consumer) or "bn" (per-channel parameters)
    channels: list[list[int]]

    def describe(self) -> str:
        flat = [i for chans in self.channels for i in chans]
        if not flat:
            return self.module
        per = {len(c) for c in self.channels if c}
        span = f"{min(flat)}:{max(flat) + 1}"
        block = ""
        if max(per) > 1:
            blocks = all(c == list(range(c[0], c[0] + len(c))) for c in self.channels if c)
            block = f", {'blocks of' if blocks else 'x'} {max(per)}" if len(per) == 1 else ", uneven"
        contiguous = sorted(flat) == list(range(min(flat), max(flat) + 1))
        where = f"[{span}{block}]" if contiguous else f"[{len(flat)} of {span}{block}]"
        return f"{self.module}{where}"


@dataclass
class ChannelGroup:
    """Coupled channels that are pruned together: one mask entry per channel (component).

    `producers` are convs whose *output* channels are in the group, `consumers` convs whose *input*
    channels are, `channelwise` BatchNorm layers. `frozen[c]` marks channels that are never pruned
    and `frozen_reasons` says why. `width` is the number of channels.
    """

    index: int
    name: str
    width: int
    frozen: list[bool]
    producers: list[GroupMember] = field(default_factory=list)
    consumers: list[GroupMember] = field(default_factory=list)
    channelwise: list[GroupMember] = field(default_factory=list)
    frozen_reasons: list[str] = field(default_factory=list)
    memory_cost: float = 0.0  # elements saved per removed channel at the deployment size (ΔM)

    @property
    def prunable(self) -> int:
        return sum(1 for f in self.frozen if not f)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for ``--show-groups --json``-style reports)."""
        def mem(members: list[GroupMember]) -> list[dict[str, Any]]:
            return [{"module": m.module, "role": m.role, "channels": m.channels} for m in members]

        return {"index": self.index, "name": self.name, "width": self.width, "prunable": self.prunable,
                "frozen": list(self.frozen), "frozen_reasons": list(self.frozen_reasons),
                "memory_cost": self.memory_cost, "producers": mem(self.producers),
                "consumers": mem(self.consumers), "channelwise": mem(self.channelwise)}

    @property
    def is_frozen(self) -> bool:
        return self.prunable == 0

    def modules(self, role: str | None = None) -> list[str]:
        members = self.producers + self.consumers + self.channelwise
        return sorted({m.module for m in members if role is None or m.role == role})


# --------------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------------

class ChannelGraph:
    """The result of `trace_channels`: traced graph, channel groups and every conv call's channel map.

    Attributes:
        groups: list of `ChannelGroup` (graph order).
        conv_calls: list of `ConvCall`.
        split_calls: list of `SplitCall` (splits whose sizes are config, not code).
        channelwise_calls: list of `ChannelwiseCall` (BatchNorm).
        example_shape / deploy_shape: input shapes used for tracing and for the deployment metrics.
        elem_group / elem_comp: per channel element, its group index and channel index in that group.
    """

    def __init__(self, model: nn.Module, example_input: torch.Tensor | Sequence[int] | None = None,
                 deploy_size: Sequence[int] | int = (256, 256)) -> None:
        self.model_type = type(model).__name__
        self.example_shape, example = _example(model, example_input)
        self.deploy_shape = (1, self.example_shape[1], *_hw(deploy_size))
        self.gm = _trace(model)
        self.modules = dict(self.gm.named_modules())
        self._model_modules = dict(model.named_modules())  # the graph module keeps only leaves' classes
        _propagate_shapes(self.gm, example, model)
        self._uf = _UnionFind()
        self._spaces: list[_Space] = []
        self._elem_space: list[int] = []
        self._reasons: dict[int, set[str]] = {}  # element -> reasons (only for the first element of a freeze)
        self.conv_calls: list[ConvCall] = []
        self.channelwise_calls: list[ChannelwiseCall] = []
        self.split_calls: list[SplitCall] = []
        self._splits_seen: dict[str, int] = {}  # ConfigSplits path -> channel splits met so far
        self._env: dict[fx.Node, Any] = {}
        self._walk()
        self._unify_repeated_calls()
        deploy_hw = _deploy_shapes(self.gm, model, self.deploy_shape)
        for call in self.conv_calls:
            call.deploy_out_hw = deploy_hw[call.node]
        self._build_groups()
        self.param_total = sum(p.numel() for p in model.parameters())

    # ---------------------------------------------------------------- helpers
    def _new_space(self, size: int, kind: str, node: fx.Node, module: str | None = None,
                   frozen: bool = False, reason: str | None = None) -> list[int]:
        base = self._uf.add(size, frozen)
        self._spaces.append(_Space(len(self._spaces), base, size, kind, node.name, module))
        self._elem_space.extend([len(self._spaces) - 1] * size)
        if frozen and reason:
            self._note(range(base, base + size), reason)
        return list(range(base, base + size))

    def _note(self, elems: Iterable[int], reason: str) -> None:
        for e in elems:
            self._reasons.setdefault(e, set()).add(reason)

    def _freeze(self, elems: Iterable[int], reason: str) -> None:
        elems = list(elems)
        for e in elems:
            self._uf.freeze(e)
        self._note(elems, reason)

    def _union_lists(self, a: Sequence[int], b: Sequence[int]) -> None:
        for x, y in zip(a, b):
            self._uf.union(x, y)

    def _info(self, arg: Any) -> Any:
        if isinstance(arg, fx.Node):
            return self._env.get(arg)
        return None

    @staticmethod
    def _meta_shape(node: fx.Node) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta")
        shape = getattr(meta, "shape", None)
        return tuple(shape) if shape is not None else None

    def _tensor_args(self, node: fx.Node) -> list[tuple[fx.Node, Any]]:
        found: list[tuple[fx.Node, Any]] = []

        def visit(a: Any) -> None:
            if isinstance(a, fx.Node):
                found.append((a, self._env.get(a)))
            elif isinstance(a, (list, tuple)):
                for x in a:
                    visit(x)
            elif isinstance(a, dict):
                for x in a.values():
                    visit(x)

        visit(node.args)
        visit(node.kwargs)
        return found

    def _touches_channels(self, node: fx.Node) -> bool:
        return any(isinstance(info, list) for _, info in self._tensor_args(node))

    def _unsupported(self, node: fx.Node, why: str = "") -> UnsupportedOpError:
        stack = node.meta.get("nn_module_stack") or {}
        where = ""
        if stack:
            path, kind = list(stack.values())[-1]
            where = f" (inside {path or 'the model'}: {getattr(kind, '__name__', kind)})"
        op = _op_name(node) if node.op != "call_module" else f"module {node.target!r} " \
            f"({type(self.modules[node.target]).__name__})"
        return UnsupportedOpError(
            f"cannot prune through {op} on node {node.name!r}{where}{': ' + why if why else ''}. "
            "Channel pruning supports convs, BatchNorm, element-wise ops, cat/split/slice, PixelShuffle, "
            "pooling, interpolate and activations; change the model or prune a model without this op.")

    # ---------------------------------------------------------------- the walk
    def _walk(self) -> None:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                shape = self._meta_shape(node)
                self._env[node] = (self._new_space(shape[1], "input", node, frozen=True, reason="model input")
                                   if shape is not None and len(shape) == 4 else None)
            elif node.op == "get_attr":
                shape = self._meta_shape(node)
                self._env[node] = (self._new_space(shape[1], "const", node, frozen=True,
                                                   reason=f"constant {node.target}")
                                   if shape is not None and len(shape) == 4 else None)
            elif node.op == "call_module":
                self._env[node] = self._module(node)
            elif node.op in ("call_function", "call_method"):
                self._env[node] = self._function(node)
            elif node.op == "output":
                for _, info in self._tensor_args(node):
                    if isinstance(info, list):
                        self._freeze(info, "model output")

    def _module(self, node: fx.Node) -> Any:
        m = self.modules[node.target]
        x = self._info(node.args[0]) if node.args else None
        shape = self._meta_shape(node)
        path = str(node.target)
        if isinstance(m, (MeanShift, ValueScale)):
            if isinstance(x, list):
                self._freeze(x, f"{type(m).__name__} {path}")
            if isinstance(m, ValueScale):
                return x
            out = self._new_space(m.out_channels, "frozen", node, module=path, frozen=True,
                                  reason=f"MeanShift {path}")
            self._record_conv(node, m, x, out, frozen=True)
            return out
        if isinstance(m, nn.Conv2d):
            if not isinstance(x, list):
                raise self._unsupported(node, "its input is not a 4-D feature map")
            out = self._new_space(m.out_channels, "conv", node, module=path)
            depthwise = m.groups > 1 and m.groups == m.in_channels
            frozen = m.groups > 1 and not depthwise
            if depthwise:
                k = m.out_channels // m.in_channels
                for i, e in enumerate(x):
                    for j in range(k):
                        self._uf.union(e, out[i * k + j])
            elif frozen:
                self._freeze(x + out, f"grouped conv {path} (groups={m.groups})")
            self._record_conv(node, m, x, out, frozen=frozen, depthwise=depthwise)
            return out
        if isinstance(m, _CHANNELWISE_MODULES) or (isinstance(m, nn.PReLU) and m.num_parameters > 1):
            if isinstance(x, list):
                self.channelwise_calls.append(ChannelwiseCall(path, node.name, list(x)))
            return x
        if isinstance(m, nn.PReLU):
            return x
        if isinstance(m, (nn.PixelShuffle, nn.PixelUnshuffle)):
            if not isinstance(x, list):
                return None
            r2 = (m.upscale_factor if isinstance(m, nn.PixelShuffle) else m.downscale_factor) ** 2
            if isinstance(m, nn.PixelShuffle):
                out = self._new_space(len(x) // r2, "shuffle", node, module=path)
                for c, e in enumerate(out):
                    for j in range(r2):
                        self._uf.union(e, x[c * r2 + j])
            else:
                out = self._new_space(len(x) * r2, "shuffle", node, module=path)
                for c, e in enumerate(x):
                    for j in range(r2):
                        self._uf.union(e, out[c * r2 + j])
            return out
        if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            if isinstance(x, list) and (m.dim is None or m.dim % 4 == 1):
                raise self._unsupported(node, "it normalises over channels")
            return x
        if isinstance(m, _PASS_MODULES):
            if shape is not None and isinstance(x, list) and (len(shape) != 4 or shape[1] != len(x)):
                raise self._unsupported(node, "it changes the channel count")
            return x
        if self._touches_channels(node):
            raise self._unsupported(node)
        return self._fresh(node)

    def _record_conv(self, node: fx.Node, m: nn.Conv2d, x: list[int] | None, out: list[int],
                     frozen: bool = False, depthwise: bool = False) -> None:
        shape = self._meta_shape(node)
        path = str(node.target)
        calls = sum(1 for c in self.conv_calls if c.module == path)
        ks = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
        self.conv_calls.append(ConvCall(
            module=path, node=node.name, call=calls, in_elems=list(x or []), out_elems=out,
            in_channels=m.in_channels, out_channels=m.out_channels, groups=m.groups, kernel=tuple(ks),
            bias=m.bias is not None, out_hw=(shape[2], shape[3]), frozen=frozen, depthwise=depthwise))

    def _fresh(self, node: fx.Node) -> Any:
        """A tensor that does not derive from any tracked channel: a frozen constant space."""
        shape = self._meta_shape(node)
        if shape is not None and len(shape) == 4:
            return self._new_space(shape[1], "const", node, frozen=True, reason=f"constant from {node.name}")
        return None

    def _function(self, node: fx.Node) -> Any:
        target = node.target
        is_method = node.op == "call_method"
        shape = self._meta_shape(node)
        if target is getattr and len(node.args) > 1 and node.args[1] != "shape":
            if node.args[1] in _HARMLESS_ATTRS or not isinstance(self._info(node.args[0]), list):
                return None
            raise self._unsupported(node, f"attribute {node.args[1]!r} of a feature map")
        # shape queries
        if (is_method and target in _SHAPE_METHODS) or (target is getattr and len(node.args) > 1
                                                         and node.args[1] == "shape"):
            src = self._info(node.args[0])
            if not isinstance(src, list):
                return None
            if target == "size":
                dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
                if dim is None:
                    return _ShapeOf()
                if isinstance(dim, int) and dim % 4 == 1 and node.users:
                    raise self._unsupported(node, "the model uses its channel count, which pruning changes")
                return None
            if target in ("numel",) and node.users:
                raise self._unsupported(node, "the model uses its element count, which pruning changes")
            return _ShapeOf() if target is getattr else None
        if target is operator.getitem:
            return self._getitem(node)
        if not is_method and target in _CAT_FUNCS:
            return self._cat(node)
        if (not is_method and target in _SPLIT_FUNCS) or (is_method and target in _SPLIT_METHODS):
            return self._split(node)
        elementwise = (is_method and target in _ELEMENTWISE_METHODS) or (
            not is_method and target in _ELEMENTWISE_FUNCS)
        if elementwise:
            return self._elementwise(node, shape)
        if not is_method and target is F.pad:
            pad = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
            if isinstance(pad, (list, tuple)) and len(pad) <= 4:
                return self._elementwise(node, shape)
            raise self._unsupported(node, "it pads the channel dimension")
        if (not is_method and target in (torch.flip, torch.roll)) or (is_method and target in ("flip", "roll")):
            dims = node.args[2] if target in (torch.roll, "roll") and len(node.args) > 2 else (
                node.args[1] if len(node.args) > 1 else node.kwargs.get("dims", node.kwargs.get("shifts")))
            dims = [dims] if isinstance(dims, int) else list(dims or [])
            if dims and all(isinstance(d, int) and d % 4 != 1 for d in dims):
                return self._elementwise(node, shape)
            raise self._unsupported(node, "it reorders channels")
        if (is_method and target in ("mean", "sum", "amax", "amin")) or (
                not is_method and target in (torch.mean, torch.sum, torch.amax, torch.amin)):
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            dims = [dims] if isinstance(dims, int) else list(dims) if isinstance(dims, (list, tuple)) else None
            keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
            if dims and keep and all(isinstance(d, int) and d % 4 != 1 for d in dims):
                return self._elementwise(node, shape)
            if self._touches_channels(node):
                raise self._unsupported(node, "it reduces over channels or drops dimensions")
            return self._fresh(node)
        if self._touches_channels(node):
            raise self._unsupported(node)
        return self._fresh(node)

    def _elementwise(self, node: fx.Node, shape: tuple[int, ...] | None) -> Any:
        out: list[int] | None = None
        if shape is None or len(shape) != 4:
            if self._touches_channels(node):
                raise self._unsupported(node, "its result is not a 4-D feature map")
            return None
        c = shape[1]
        for arg, info in self._tensor_args(node):
            if isinstance(info, list):
                if len(info) == c:
                    if out is None:
                        out = info
                    else:
                        self._union_lists(out, info)
                elif len(info) != 1:
                    raise self._unsupported(node, f"operands with {len(info)} and {c} channels")
            elif isinstance(info, _ShapeOf) or info is None:
                ashape = self._meta_shape(arg)
                # a non-4-D tensor operand that broadcasts over the channel dim (e.g. a [C, 1, 1] parameter)
                if ashape is not None and 3 <= len(ashape) < 4 and ashape[-3] == c and c > 1:
                    out = out if out is not None else self._fresh(node)
                    self._freeze(out, f"broadcast constant in {node.name}")
        if out is None:
            out = self._fresh(node)
        return out

    def _cat(self, node: fx.Node) -> Any:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        infos = [self._info(t) for t in tensors]
        if not any(isinstance(i, list) for i in infos):
            return self._fresh(node)
        if not all(isinstance(i, list) for i in infos):
            # a constant operand: give it a frozen space
            infos = [i if isinstance(i, list) else self._fresh(t) for i, t in zip(infos, tensors)]
            if not all(isinstance(i, list) for i in infos):
                raise self._unsupported(node, "it concatenates tensors of different ranks")
        if dim % 4 == 1:
            return [e for i in infos for e in i]
        out = infos[0]
        for info in infos[1:]:
            if len(info) != len(out):
                raise self._unsupported(node, "operands with different channel counts")
            self._union_lists(out, info)
        return out

    def _split(self, node: fx.Node) -> Any:
        src = self._info(node.args[0])
        if not isinstance(src, list):
            return None
        target = node.target if node.op == "call_method" else node.target.__name__
        dim = node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0)
        metas = node.meta.get("tensor_meta")
        sizes = [tuple(m.shape)[1] for m in metas] if isinstance(metas, (list, tuple)) else None
        if sizes is None:
            raise self._unsupported(node, "its output shapes are unknown")
        if dim % 4 != 1:
            return tuple(list(src) for _ in sizes)
        outs, start = [], 0
        for s in sizes:
            outs.append(src[start:start + s])
            start += s
        owner = self._config_split(node, target, sizes)
        if owner is None:
            self._freeze(src, f"{target} with constant sizes on node {node.name}")
        else:
            self.split_calls.append(SplitCall(owner[0], node.name, owner[1], outs))
            for piece in outs[1:]:  # each piece its own group (own mask, own round_to, never empty)
                self._carve_space(piece, "split", node, owner[0])
        return tuple(outs)

    def _carve_space(self, elems: Sequence[int], kind: str, node: fx.Node, module: str | None) -> None:
        """Move `elems` out of their space into a new one, so that they form a group of their own unless
        an op couples them to the rest."""
        self._spaces.append(_Space(len(self._spaces), elems[0] if elems else 0, len(elems), kind, node.name, module))
        for e in elems:
            self._elem_space[e] = len(self._spaces) - 1

    def _config_split(self, node: fx.Node, target: str, sizes: list[int]) -> tuple[str, int] | None:
        """(module path, index in its ``split_sizes``) when this split's sizes are its module's config."""
        if target not in ("split", "split_with_sizes"):
            return None
        asked = node.args[1] if len(node.args) > 1 else node.kwargs.get(
            "split_size_or_sections", node.kwargs.get("split_sizes", node.kwargs.get("split_size")))
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        if not isinstance(asked, (list, tuple)) or not stack:
            return None
        path = stack[-1][0]
        owner = self._model_modules.get(path)
        if not isinstance(owner, ConfigSplits) or not owner.split_sizes:
            return None
        seen = self._splits_seen.get(path, 0)
        self._splits_seen[path] = seen + 1
        index = seen % len(owner.split_sizes)  # a module called twice splits the same way again
        if tuple(sizes) != tuple(owner.split_sizes[index]) or tuple(asked) != tuple(sizes):
            return None
        return path, index

    def _getitem(self, node: fx.Node) -> Any:
        src = self._info(node.args[0])
        idx = node.args[1]
        if isinstance(src, tuple):
            return src[idx] if isinstance(idx, int) else None
        if isinstance(src, _ShapeOf):
            picks_channels = (isinstance(idx, int) and idx % 4 == 1) or (
                isinstance(idx, slice) and 1 in range(4)[idx])
            if picks_channels and node.users:
                raise self._unsupported(node, "the model uses its channel count, which pruning changes")
            return None
        if not isinstance(src, list):
            return self._fresh(node)
        shape = self._meta_shape(node)
        index = idx if isinstance(idx, tuple) else (idx,)
        if any(i is None for i in index) or shape is None or len(shape) != 4:
            raise self._unsupported(node, "it indexes away or adds dimensions")
        if Ellipsis in index:
            k = index.index(Ellipsis)
            index = index[:k] + (slice(None),) * (4 - len(index) + 1) + index[k + 1:]
        index = index + (slice(None),) * (4 - len(index))
        ch = index[1]
        if not isinstance(ch, slice):
            raise self._unsupported(node, "it indexes channels")
        if ch == slice(None):
            return src
        picked = src[ch]
        self._freeze(src, f"channel slice with constant bounds on node {node.name}")
        return picked

    # ---------------------------------------------------------------- after the walk
    def _unify_repeated_calls(self) -> None:
        by_module: dict[str, list[ConvCall]] = {}
        for call in self.conv_calls:
            by_module.setdefault(call.module, []).append(call)
        for calls in by_module.values():
            for other in calls[1:]:
                self._union_lists(calls[0].out_elems, other.out_elems)
                self._union_lists(calls[0].in_elems, other.in_elems)
        by_bn: dict[str, list[ChannelwiseCall]] = {}
        for call in self.channelwise_calls:
            by_bn.setdefault(call.module, []).append(call)
        for calls in by_bn.values():
            for other in calls[1:]:
                self._union_lists(calls[0].elems, other.elems)

    def _build_groups(self) -> None:
        uf = self._uf
        n = len(uf.parent)
        roots = [uf.find(e) for e in range(n)]
        # spaces joined by shared components form groups
        space_uf = _UnionFind()
        space_uf.add(len(self._spaces))
        first_space: dict[int, int] = {}
        for e, r in enumerate(roots):
            s = self._elem_space[e]
            if r in first_space:
                space_uf.union(first_space[r], s)
            else:
                first_space[r] = s
        comps_of_group: dict[int, list[int]] = {}
        for r in sorted(set(roots)):  # roots are the smallest element of their class: graph order
            comps_of_group.setdefault(space_uf.find(self._elem_space[r]), []).append(r)
        ordered = sorted(comps_of_group.values(), key=lambda comps: comps[0])
        self.elem_group = np.empty(n, dtype=np.int64)
        self.elem_comp = np.empty(n, dtype=np.int64)
        comp_pos: dict[int, tuple[int, int]] = {}
        for g, comps in enumerate(ordered):
            for c, r in enumerate(comps):
                comp_pos[r] = (g, c)
        for e, r in enumerate(roots):
            self.elem_group[e], self.elem_comp[e] = comp_pos[r]
        self.groups: list[ChannelGroup] = []
        for g, comps in enumerate(ordered):
            frozen = [uf.frozen[r] for r in comps]
            self.groups.append(ChannelGroup(index=g, name="", width=len(comps), frozen=frozen))
        reasons: dict[int, set[str]] = {}
        for e, rs in self._reasons.items():
            reasons.setdefault(int(self.elem_group[e]), set()).update(rs)
        for g, rs in reasons.items():
            self.groups[g].frozen_reasons = sorted(rs)
        # members
        seen_out: set[str] = set()
        seen_in: set[str] = set()
        for call in self.conv_calls:
            if call.module not in seen_out:
                seen_out.add(call.module)
                self._add_members(call.module, "out", call.out_elems, "producers")
            if call.module not in seen_in and call.in_elems:
                seen_in.add(call.module)
                self._add_members(call.module, "in", call.in_elems, "consumers")
        seen_bn: set[str] = set()
        for call in self.channelwise_calls:
            if call.module not in seen_bn:
                seen_bn.add(call.module)
                self._add_members(call.module, "bn", call.elems, "channelwise")
        # names and memory costs
        for group in self.groups:
            if group.producers:
                group.name = group.producers[0].module
            else:
                space = self._spaces[self._elem_space[self._first_elem_of_group(group.index)]]
                group.name = f"{space.kind}:{space.node}"
        names = [g.name for g in self.groups]
        for group in self.groups:  # a conv split into pieces: name each by its channel range
            if names.count(group.name) > 1 and group.producers:
                group.name = group.producers[0].describe()
        names = [g.name for g in self.groups]
        for group in self.groups:
            if names.count(group.name) > 1:
                group.name = f"{group.name}#{group.index}"
        cost = self.memory_costs()
        for group in self.groups:
            vals = [cost[group.index][c] for c in range(group.width) if not group.frozen[c]]
            group.memory_cost = float(vals[0]) if vals else 0.0

    def _first_elem_of_group(self, g: int) -> int:
        return int(np.nonzero(self.elem_group == g)[0][0])

    def _add_members(self, module: str, role: str, elems: Sequence[int], attr: str) -> None:
        per_group: dict[int, list[list[int]]] = {}
        for j, e in enumerate(elems):
            g, c = int(self.elem_group[e]), int(self.elem_comp[e])
            chans = per_group.setdefault(g, [[] for _ in range(self.groups[g].width)])
            chans[c].append(j)
        for g, chans in per_group.items():
            getattr(self.groups[g], attr).append(GroupMember(module, role, chans))

    # ---------------------------------------------------------------- derived quantities
    @property
    def widths(self) -> list[int]:
        return [g.width for g in self.groups]

    def group_by_name(self, key: str | int) -> ChannelGroup:
        if isinstance(key, int):
            return self.groups[key]
        for g in self.groups:
            if g.name == key:
                return g
        raise UserInputError(f"no channel group named {key!r}; groups: {', '.join(g.name for g in self.groups)}")

    def memory_costs(self) -> list[np.ndarray]:
        """Per group, per channel: conv-output elements saved at the deployment size when it is removed.

        Sum over producers and over every call of a producer of N*H*W of its output (N = 1).
        """
        costs = [np.zeros(g.width, dtype=np.float64) for g in self.groups]
        n = self.deploy_shape[0]
        for call in self.conv_calls:
            hw = call.deploy_out_hw[0] * call.deploy_out_hw[1] * n
            for e in call.out_elems:
                costs[int(self.elem_group[e])][int(self.elem_comp[e])] += hw
        return costs

    def signature(self) -> str:
        """A short fingerprint of the group structure (checkpoints check it on resume)."""
        import hashlib

        text = ";".join(f"{g.name}:{g.width}:{sum(g.frozen)}" for g in self.groups)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def trace_channels(model: nn.Module, example_input: torch.Tensor | Sequence[int] | None = None,
                   deploy_size: Sequence[int] | int = (256, 256)) -> ChannelGraph:
    """Trace `model` and find its channel groups.

    Args:
        model: the network (not modified).
        example_input: a tensor or an input shape; default ``2 x 3 x 32 x 32`` (enlarged to the
            model's ``min_input_size`` when it declares one).
        deploy_size: (H, W) of the LR input at deployment, for memory costs and complexity (256x256:
            the NTIRE protocol).

    Raises:
        UnsupportedOpError: the model is in a training form (unfolded re-parameterizable blocks), or an
            op the channel analysis cannot see through.
    """
    refuse_training_form(model)
    return ChannelGraph(model, example_input, deploy_size)


def refuse_training_form(model: nn.Module) -> None:
    """Training-time multi-branch blocks (RepConv, Conv3XC, EDBB) fold into one conv each; pruning their
    branches separately would prune a network that is never deployed, so the folded form is required."""
    from edgesr.layers.reparam import ReparamConv

    unfolded = [name for name, m in model.named_modules() if isinstance(m, ReparamConv) and not m.deploy]
    if unfolded:
        kinds = sorted({type(model.get_submodule(n)).__name__ for n in unfolded})
        raise UnsupportedOpError(
            f"{getattr(model, 'edgesr_name', type(model).__name__)} is in its training form: {len(unfolded)} "
            f"unfolded re-parameterizable block(s) ({', '.join(kinds)}, e.g. {unfolded[0]}); fold them first with "
            "edgesr.transforms.reparameterize(model, passes=['repconv']) (edgesr train writes "
            "model_folded.safetensors) and prune the folded model.")


def find_groups(model: nn.Module, example_input: torch.Tensor | Sequence[int] | None = None) -> list[ChannelGroup]:
    """The channel groups of `model` (see `trace_channels`)."""
    return trace_channels(model, example_input).groups


def format_groups(groups: Sequence[ChannelGroup] | ChannelGraph, show_frozen: bool = True) -> str:
    """A readable table of channel groups (what ``edgesr prune MODEL --show-groups`` prints)."""
    if isinstance(groups, ChannelGraph):
        groups = groups.groups
    lines: list[str] = []
    n_prunable = sum(1 for g in groups if not g.is_frozen)
    lines.append(f"{len(groups)} channel groups, {n_prunable} prunable "
                 f"({sum(g.prunable for g in groups)} prunable channels)")
    for g in groups:
        if g.is_frozen and not show_frozen:
            continue
        state = "frozen" if g.is_frozen else (
            f"{g.prunable} prunable" if g.prunable == g.width else f"{g.prunable} of {g.width} prunable")
        lines.append(f"[{g.index}] {g.name}: {g.width} ch, {state}, ΔM {g.memory_cost:,.0f} elem/ch")
        if g.producers:
            lines.append("    out: " + ", ".join(m.describe() for m in g.producers))
        if g.consumers:
            lines.append("    in:  " + ", ".join(m.describe() for m in g.consumers))
        if g.channelwise:
            lines.append("    bn:  " + ", ".join(m.describe() for m in g.channelwise))
        if g.frozen_reasons and g.prunable < g.width:
            shown = g.frozen_reasons[:4]
            more = f" (+{len(g.frozen_reasons) - 4} more)" if len(g.frozen_reasons) > 4 else ""
            lines.append("    frozen by: " + "; ".join(shown) + more)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Tracing and shape propagation
# --------------------------------------------------------------------------------------------------

def _hw(size: Sequence[int] | int) -> tuple[int, int]:
    return parse_hw(size, "deploy size")


def _model_ref(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    ref = next((t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()), None)
    return (ref.dtype, ref.device) if ref is not None else (torch.float32, torch.device("cpu"))


def _example(model: nn.Module, example_input: torch.Tensor | Sequence[int] | None
             ) -> tuple[tuple[int, ...], torch.Tensor]:
    dtype, device = _model_ref(model)
    if isinstance(example_input, torch.Tensor):
        x = example_input.detach().to(device=device, dtype=dtype)
    else:
        shape = tuple(example_input) if example_input is not None else DEFAULT_EXAMPLE
        if len(shape) != 4:
            raise UserInputError(f"example input shape must be N x C x H x W, got {shape!r}.")
        if example_input is None:
            side = max(shape[2], 2 * int(getattr(model, "min_input_size", 1) or 1))
            shape = (shape[0], shape[1], side, side)
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(shape, generator=gen).to(device=device, dtype=dtype)
    if x.dim() != 4:
        raise UserInputError(f"example input must be N x C x H x W, got shape {tuple(x.shape)}.")
    return tuple(x.shape), x


def _trace(model: nn.Module) -> fx.GraphModule:
    tracer = ModelTracer((MeanShift, ValueScale))
    graph = trace_model(model, tracer, purpose="channel pruning")
    return fx.GraphModule(tracer.root, graph, getattr(model, "edgesr_name", None) or type(model).__name__)


def _propagate_shapes(gm: fx.GraphModule, x: torch.Tensor, model: nn.Module) -> None:
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(x)
    except Exception as exc:  # noqa: BLE001
        raise UserInputError(f"the traced {type(model).__name__} does not run on an input of shape "
                             f"{tuple(x.shape)}: {type(exc).__name__}: {exc}") from exc


def _deploy_shapes(gm: fx.GraphModule, model: nn.Module, shape: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """Output H, W of every conv node for a deployment-size input (fake tensors: no arithmetic)."""
    from torch.fx.passes.shape_prop import ShapeProp

    saved = {n: n.meta.get("tensor_meta") for n in gm.graph.nodes}
    dtype, device = _model_ref(model)
    out: dict[str, tuple[int, int]] = {}
    try:
        try:
            from torch._subclasses.fake_tensor import FakeTensorMode

            mode = FakeTensorMode(allow_non_fake_inputs=True)
            x = mode.from_tensor(torch.empty(shape, dtype=dtype, device=device))
            ShapeProp(gm, fake_mode=mode).propagate(x)
        except Exception as exc:  # noqa: BLE001 - fake tensors are an optimisation
            log.debug("fake-tensor shape propagation failed (%s); using a real forward", exc)
            with torch.no_grad():
                ShapeProp(gm).propagate(torch.zeros(shape, dtype=dtype, device=device))
        for n in gm.graph.nodes:
            meta = n.meta.get("tensor_meta")
            if n.op == "call_module" and getattr(meta, "shape", None) is not None and len(meta.shape) == 4:
                out[n.name] = (int(meta.shape[2]), int(meta.shape[3]))
    finally:
        for n, meta in saved.items():
            n.meta["tensor_meta"] = meta
    return out

