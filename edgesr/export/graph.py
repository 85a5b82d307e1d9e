"""Small ONNX graph utilities: statistics, scalar-multiply folding, I/O naming, dtype names."""
from __future__ import annotations

import collections
from typing import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DTYPE_NAMES = {
    TensorProto.FLOAT: "float32",
    TensorProto.FLOAT16: "float16",
    TensorProto.UINT8: "uint8",
    TensorProto.DOUBLE: "float64",
    TensorProto.INT64: "int64",
    TensorProto.INT32: "int32",
}


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Node count per op type of the main graph, most frequent first."""
    counts = collections.Counter(n.op_type for n in model.graph.node)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def format_op_counts(counts: dict[str, int], limit: int | None = None) -> str:
    items = list(counts.items())
    head = ", ".join(f"{op} {n}" for op, n in items[:limit])
    return head + (f", ... ({len(items) - limit} more types)" if limit is not None and len(items) > limit else "")


def initializer_stats(model: onnx.ModelProto) -> tuple[int, int]:
    """(number of initializers, their total raw size in bytes)."""
    total = 0
    for init in model.graph.initializer:
        total += int(np.prod(init.dims, dtype=np.int64)) * helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
    return len(model.graph.initializer), total


def tensor_dtype_name(elem_type: int) -> str:
    return DTYPE_NAMES.get(elem_type, TensorProto.DataType.Name(elem_type).lower())


def value_shape(value: onnx.ValueInfoProto) -> list[int | str]:
    """Dims of a graph input/output: ints when fixed, dim_param strings (or '?') when dynamic."""
    dims = []
    for d in value.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return dims


def name_dynamic_dims(model: onnx.ModelProto, names: dict[str, Iterable[str | None]]) -> None:
    """Give the dynamic dims of graph inputs/outputs readable names (exporters number them)."""
    for value in list(model.graph.input) + list(model.graph.output):
        wanted = names.get(value.name)
        if wanted is None:
            continue
        for dim, name in zip(value.type.tensor_type.shape.dim, wanted):
            if name and not dim.HasField("dim_value"):
                dim.dim_param = name


def _constant_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def remove_unused(model: onnx.ModelProto) -> None:
    """Drop initializers and Constant nodes that no node or graph output uses any more."""
    graph = model.graph
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]
        for n in dead:
            graph.node.remove(n)
        if not dead:
            break
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def fold_scalar_muls(model: onnx.ModelProto) -> int:
    """Merge chains of Mul/Div by scalar constants (``x * a * b`` -> ``x * (a*b)``); drop a product of 1.

    Value-range wrappers put ``* 1/255`` right in front of a model's own ``* 255`` (and the reverse at
    the end); after this pass neither is left in the graph. Only scalar (size-1, rank <= 1) float
    constants are folded, only through intermediate tensors with one consumer. Returns the number of
    nodes removed.
    """
    graph = model.graph
    removed = 0
    while True:
        consts = _constant_values(model)
        outputs = {o.name for o in graph.output}
        consumers: dict[str, list[onnx.NodeProto]] = collections.defaultdict(list)
        for n in graph.node:
            for i in n.input:
                consumers[i].append(n)

        def scalar_factor(node: onnx.NodeProto) -> tuple[str, float] | None:
            """(variable input, factor) when `node` multiplies/divides by a scalar float constant."""
            if node.op_type not in ("Mul", "Div") or len(node.input) != 2:
                return None
            a, b = node.input
            for var, const, swapped in ((a, b, False), (b, a, True)):
                c = consts.get(const)
                if c is None or var in consts or c.size != 1 or c.ndim > 1 or c.dtype.kind != "f":
                    continue
                if node.op_type == "Div":
                    if swapped or float(c.reshape(())) == 0.0:
                        return None
                    return var, 1.0 / float(c.reshape(()))
                return var, float(c.reshape(()))
            return None

        changed = False
        for first in graph.node:
            f1 = scalar_factor(first)
            if f1 is None or first.output[0] in outputs or len(consumers[first.output[0]]) != 1:
                continue
            second = consumers[first.output[0]][0]
            f2 = scalar_factor(second)
            if f2 is None or f2[0] != first.output[0]:
                continue
            dtype = consts[[i for i in first.input if i in consts][0]].dtype
            product = np.asarray(f1[1] * f2[1], dtype=dtype)
            var = f1[0]
            if float(product) == 1.0 and second.output[0] not in outputs:
                for n in consumers[second.output[0]]:
                    for k, name in enumerate(n.input):
                        if name == second.output[0]:
                            n.input[k] = var
                graph.node.remove(first)
                graph.node.remove(second)
                removed += 2
            else:
                name = f"{second.output[0]}_scale"
                graph.initializer.append(numpy_helper.from_array(product, name))
                merged = helper.make_node("Mul", [var, name], [second.output[0]], name=second.name or name)
                index = list(graph.node).index(second)
                graph.node.remove(second)
                graph.node.insert(index, merged)
                graph.node.remove(first)
                removed += 1
            changed = True
            break
        if not changed:
            break
    remove_unused(model)
    return removed
