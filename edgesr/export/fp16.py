"""FP32 -> FP16 conversion of an ONNX graph with the plain onnx API (no onnxconverter_common).

What is converted: every float32 tensor computed from the image (the "data path"), the float32
initializers and Constants those nodes read, and Casts to float32 on the data path (they become
Casts to float16). What stays as it is:

* shape arithmetic: tensors computed only from ``Shape``/``Size`` outputs and constants (int64 shape
  tensors, and any float maths on sizes, which float16 could not represent beyond 2048);
* inputs that ONNX requires in float32 whatever the data type: Resize's ``roi`` and ``scales``
  (and Upsample's ``scales``);
* I/O: with ``keep_io_types`` the float32 graph inputs/outputs keep their names and type and get a Cast
  at the boundary; otherwise they become float16. Non-float I/O (uint8) is never touched.

Initializers beyond the float16 range (|x| > 65504) are refused with an ExportError naming them.
Activations beyond it can only be seen by running the graph: see `edgesr.export.verify`.
"""
from __future__ import annotations

import collections

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgesr.errors import ExportError

FP16_MAX = 65504.0

# (op type, input index) that ONNX defines as float32 regardless of the data type.
FP32_INPUT_SLOTS = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}
_META_OPS = {"Shape", "Size"}


def _tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in model.graph.initializer:
        types[init.name] = init.data_type
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
                elif attr.name in ("value_float", "value_floats"):
                    types[node.output[0]] = TensorProto.FLOAT
    return types


def _data_path(model: onnx.ModelProto, types: dict[str, int]) -> tuple[set[int], set[str]]:
    """(indices of nodes computing on the image, float32 tensors they produce or the graph takes in).

    Shape/Size outputs and everything computed only from them and constants is shape arithmetic.
    """
    graph = model.graph
    init_names = {i.name for i in graph.initializer}
    data = {i.name for i in graph.input if i.name not in init_names}
    data_nodes = set()
    for idx, node in enumerate(graph.node):
        if node.op_type in _META_OPS or node.op_type == "Constant":
            continue
        if any(i in data for i in node.input if i):
            data_nodes.add(idx)
            data.update(o for o in node.output if o)
    return data_nodes, {t for t in data if types.get(t) == TensorProto.FLOAT}


PEAK_OUTPUT = "fp16_emulation_peak"
# Ops whose float outputs are elements of their (already float16-rounded) inputs: nothing to round.
_EXACT_OPS = {"Relu", "MaxPool", "DepthToSpace", "SpaceToDepth", "Reshape", "Transpose", "Concat", "Split",
              "Slice", "Identity", "Flatten", "Squeeze", "Unsqueeze", "Gather", "Expand", "Tile", "Neg", "Abs"}
# Ops that round to new values but cannot exceed the magnitude of their inputs (or 1): no overflow check.
_BOUNDED_OPS = {"LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "Tanh", "Softmax", "Resize", "AveragePool",
                "GlobalAveragePool", "ReduceMean", "Clip", "Round", "Floor", "Ceil", "Min", "Cos", "Sin"}


def fp16_emulation_graph(model: onnx.ModelProto, expose_peaks: bool = False) -> onnx.ModelProto:
    """The FP32 graph with its weights and every activation on the data path rounded to float16.

    Computes in float32 but stores like an FP16 engine on a GPU does (ONNX Runtime CPU runs most FP16
    nodes of a converted graph in float32 *without* rounding in between, so it cannot show overflow).
    A second output, ``fp16_emulation_peak``, is the largest |value| of all rounded tensors: inf
    when an activation overflows float16, whatever the graph does afterwards (e.g. a uint8 Clip).
    With `expose_peaks`, each rounded tensor's peak is an output too (``<tensor>__peak``, in graph
    order), to find where float16 first overflows.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    types = _tensor_types(model)
    data_nodes, half = _data_path(model, types)
    FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
    for init in graph.initializer:
        if init.data_type == FLOAT:
            arr = numpy_helper.to_array(init)
            with np.errstate(over="ignore"):
                init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16).astype(np.float32), init.name))
    rename: dict[str, str] = {}
    nodes: list[onnx.NodeProto] = []
    peaks: list[str] = []
    peaks32: list[str] = []

    def rounded(name: str, check: bool = True) -> None:
        mid, back = f"{name}__fp16", f"{name}__fp16r"
        nodes.append(helper.make_node("Cast", [name], [mid], to=FLOAT16))
        nodes.append(helper.make_node("Cast", [mid], [back], to=FLOAT))
        rename[name] = back
        if not check:
            return
        nodes.append(helper.make_node("Abs", [back], [f"{name}__abs"]))
        nodes.append(helper.make_node("ReduceMax", [f"{name}__abs"], [f"{name}__peak"], keepdims=0))
        peaks.append(f"{name}__peak")
        if expose_peaks:  # the value before rounding, to say by how much it overflows
            nodes.append(helper.make_node("Abs", [name], [f"{name}__abs32"]))
            nodes.append(helper.make_node("ReduceMax", [f"{name}__abs32"], [f"{name}__peak32"], keepdims=0))
            peaks32.append(f"{name}__peak32")

    for value in graph.input:
        if value.name in half:
            rounded(value.name)
    for idx, node in enumerate(graph.node):
        node.input[:] = [rename.get(i, i) for i in node.input]
        nodes.append(node)
        if idx in data_nodes and node.op_type not in _EXACT_OPS:
            for o in node.output:
                if o in half:
                    rounded(o, check=node.op_type not in _BOUNDED_OPS)
    for value in graph.output:
        if value.name in rename:
            new = f"{value.name}__emulated"
            nodes.append(helper.make_node("Identity", [rename[value.name]], [new]))
            value.name = new
    if peaks:
        nodes.append(helper.make_node("Max", peaks, [PEAK_OUTPUT]))
    else:
        graph.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), PEAK_OUTPUT))
    graph.output.append(helper.make_tensor_value_info(PEAK_OUTPUT, FLOAT, []))
    if expose_peaks:
        graph.output.extend(helper.make_tensor_value_info(p, FLOAT, []) for p in peaks32)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    return model


def _to_fp16_array(array: np.ndarray, what: str) -> np.ndarray:
    finite = array[np.isfinite(array)]
    if finite.size and float(np.abs(finite).max()) > FP16_MAX:
        raise ExportError(
            f"{what} holds values up to {float(np.abs(finite).max()):.6g}, beyond the float16 maximum "
            f"{FP16_MAX:g}: this model cannot run in FP16. Keep FP32 (drop --fp16)."
        )
    return array.astype(np.float16)


def _constant_to_fp16(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if attr.name == "value":
            arr = numpy_helper.to_array(attr.t)
            attr.t.CopyFrom(numpy_helper.from_array(_to_fp16_array(arr, f"constant {node.output[0]!r}"),
                                                    attr.t.name))
        elif attr.name in ("value_float", "value_floats"):
            arr = np.asarray(attr.f if attr.name == "value_float" else list(attr.floats), dtype=np.float32)
            node.attribute.remove(attr)
            node.attribute.append(helper.make_attribute(
                "value", numpy_helper.from_array(_to_fp16_array(arr, f"constant {node.output[0]!r}"))))
            return


def convert_to_fp16(model: onnx.ModelProto, keep_io_types: bool = True) -> onnx.ModelProto:
    """Return a float16 copy of `model` (see the module docstring for what is kept in float32)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    types = _tensor_types(model)
    FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16

    init_names = {i.name for i in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in init_names]
    data_nodes, half = _data_path(model, types)

    # who needs which precision of each float32 tensor that is not itself converted
    wants16: dict[str, int] = collections.Counter()
    wants32: dict[str, int] = collections.Counter()
    for idx, node in enumerate(graph.node):
        if node.op_type in _META_OPS:
            continue  # Shape/Size read any type
        for slot, name in enumerate(node.input):
            if not name or types.get(name) != FLOAT:
                continue
            if idx in data_nodes and (node.op_type, slot) not in FP32_INPUT_SLOTS:
                wants16[name] += 1
            else:
                wants32[name] += 1
    output_names = {o.name for o in graph.output}
    for name in output_names:
        if types.get(name) == FLOAT and name not in half:
            wants32[name] += 1

    constant_nodes = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    inits = {i.name: i for i in graph.initializer}
    used_names = set(types) | {o for n in graph.node for o in n.output} | init_names

    def fresh(base: str) -> str:
        name, k = base, 1
        while name in used_names:
            name, k = f"{base}_{k}", k + 1
        used_names.add(name)
        return name

    as16: dict[str, str] = {}  # float32 tensor -> name of its float16 version
    as32: dict[str, str] = {}  # converted (float16) tensor -> name of a float32 version
    pre_nodes: list[onnx.NodeProto] = []   # Casts to insert before everything

    # constants read by the data path
    for name in list(wants16):
        if name in half:
            continue
        if name in inits:
            arr = _to_fp16_array(numpy_helper.to_array(inits[name]), f"initializer {name!r}")
            if wants32[name] == 0 and name not in output_names:
                inits[name].CopyFrom(numpy_helper.from_array(arr, name))
                as16[name] = name
            else:
                new = fresh(f"{name}_fp16")
                graph.initializer.append(numpy_helper.from_array(arr, new))
                as16[name] = new
        elif name in constant_nodes:
            node = constant_nodes[name]
            if wants32[name] == 0 and name not in output_names:
                _constant_to_fp16(node)
                as16[name] = name
            else:
                copy = onnx.NodeProto.FromString(node.SerializeToString())
                new = fresh(f"{name}_fp16")
                copy.output[0] = new
                copy.name = new
                _constant_to_fp16(copy)
                pre_nodes.append(copy)
                as16[name] = new

    # graph inputs
    for value in graph_inputs:
        if value.type.tensor_type.elem_type != FLOAT:
            continue
        if keep_io_types:
            new = fresh(f"{value.name}_fp16")
            pre_nodes.append(helper.make_node("Cast", [value.name], [new], to=FLOAT16, name=f"{new}_cast"))
            as16[value.name] = new
        else:
            value.type.tensor_type.elem_type = FLOAT16
            as16[value.name] = value.name
            if wants32[value.name]:
                new = fresh(f"{value.name}_fp32")
                pre_nodes.append(helper.make_node("Cast", [value.name], [new], to=FLOAT, name=f"{new}_cast"))
                as32[value.name] = new
    graph_input_names = {v.name for v in graph_inputs}

    new_nodes: list[onnx.NodeProto] = list(pre_nodes)
    for idx, node in enumerate(graph.node):
        is_data = idx in data_nodes
        for slot, name in enumerate(node.input):
            if not name or node.op_type in _META_OPS:
                continue
            fp32_slot = (node.op_type, slot) in FP32_INPUT_SLOTS
            if is_data and not fp32_slot and types.get(name) == FLOAT:
                if name in half and name not in graph_input_names:
                    continue  # produced in float16 already
                if name not in as16:  # a float computed off the data path (e.g. from sizes)
                    new = fresh(f"{name}_fp16")
                    new_nodes.append(helper.make_node("Cast", [name], [new], to=FLOAT16, name=f"{new}_cast"))
                    as16[name] = new
                node.input[slot] = as16[name]
            elif (not is_data or fp32_slot) and name in half:
                if name in graph_input_names and keep_io_types:
                    continue  # the graph input itself is float32
                if name not in as32:
                    new = fresh(f"{name}_fp32")
                    new_nodes.append(helper.make_node("Cast", [name], [new], to=FLOAT, name=f"{new}_cast"))
                    as32[name] = new
                node.input[slot] = as32[name]
        if is_data and node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == FLOAT:
                    attr.i = FLOAT16
        new_nodes.append(node)

    # graph outputs computed in float16
    for value in graph.output:
        if value.name not in half:
            continue
        if keep_io_types:
            internal = fresh(f"{value.name}_fp16")
            for node in new_nodes:
                for k, o in enumerate(node.output):
                    if o == value.name:
                        node.output[k] = internal
                for k, i in enumerate(node.input):
                    if i == value.name:
                        node.input[k] = internal
            new_nodes.append(helper.make_node("Cast", [internal], [value.name], to=FLOAT,
                                              name=f"{value.name}_cast"))
        else:
            value.type.tensor_type.elem_type = FLOAT16

    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]
    for value in graph.output:  # let shape inference re-derive output shapes for changed types
        if value.name in half and not keep_io_types:
            value.type.tensor_type.elem_type = FLOAT16
    from edgesr.export.graph import remove_unused

    remove_unused(model)
    try:
        onnx.checker.check_model(model)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - a converter bug; say where
        raise ExportError(f"the FP16 conversion produced an invalid graph: {exc}") from exc
    return model
