"""Is an ONNX ready for TensorRT? A check that runs anywhere (onnx only; no GPU, no TensorRT).

The table below is onnx-tensorrt's operator support matrix (docs/operators.md of the TensorRT 10.15 parser:
opsets 9 to 24; TensorRT 10.0 parsed 9 to 20) with the types each op takes and the restrictions that matter
for SR graphs checked node by node: Resize modes and coordinate transforms, pooling dilations and outputs,
Q/DQ (signed int8 with zero point 0 only: uint8 Q/DQ fails), constant axes, and the rule that UINT8 exists
only as a network input or output. Findings are errors (the parser or builder will fail), warnings (it
builds, but not as one might expect) and infos. DLA hints (Jetson) are separate: FP16/INT8 only, static
shapes, and which layers likely fall back to the GPU.

    report = check_readiness("rlfn_x4.onnx")
    print(report.format()); report.ok
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from edgesr.errors import UserInputError

log = logging.getLogger(__name__)

MIN_OPSET = 9
MAX_OPSET = 24          # TensorRT 10.15 / 11.x parser
MAX_OPSET_TRT10_0 = 20  # TensorRT 10.0

# ONNX TensorProto element types
FLOAT, UINT8, INT8, INT32, INT64, BOOL, FLOAT16, DOUBLE, BFLOAT16 = 1, 2, 3, 6, 7, 9, 10, 11, 16
FP8 = {17, 18, 19, 20}
INT4, FP4 = 22, 23
_TYPE_NAMES = {FLOAT: "FP32", UINT8: "UINT8", INT8: "INT8", INT32: "INT32", INT64: "INT64", BOOL: "BOOL",
               FLOAT16: "FP16", DOUBLE: "DOUBLE", BFLOAT16: "BF16", INT4: "INT4", FP4: "FP4",
               **{t: "FP8" for t in FP8}}
_CODES = {"F": {FLOAT, FLOAT16, BFLOAT16}, "I": {INT32, INT64}, "B": {BOOL}, "U": {UINT8}, "Q": {INT8, INT4, FP4} | FP8,
          "8": {INT8}}

# op -> type codes (F float, I int32/int64, B bool, U uint8, Q quantized types, 8 int8): the Supported Types column.
_SUPPORTED = """
Abs FI; Acos F; Acosh F; Add FI; And B; ArgMax FI; ArgMin FI; Asin F; Asinh F; Atan F; Atanh F; Attention F8Q;
AveragePool F; BatchNormalization F; BlackmanWindow F; Cast FIUB; CastLike FIUB; Ceil F; Celu F; Clip F; Concat FIB;
Constant FIBQ; ConstantOfShape FIBQ; Conv F; ConvTranspose F; Cos F; Cosh F; CumSum F; DeformConv F; DepthToSpace FI;
DequantizeLinear Q; Div FI; Dropout F; Einsum F; Elu F; Equal FI; Erf F; Exp F; Expand FIB; EyeLike FIB; Flatten FIB;
Floor F; Gather FIB; GatherElements FIB; GatherND FIB; Gelu F8I; Gemm F; GlobalAveragePool F; GlobalLpPool F;
GlobalMaxPool F; Greater FI; GreaterOrEqual FI; GridSample F; GroupNormalization F; GRU F; HammingWindow F;
HannWindow F; HardSigmoid F; HardSwish F; Hardmax F; Identity FIB; If FIB; ImageScaler F; InstanceNormalization F;
IsInf F; IsNaN FI; LayerNormalization F; LeakyRelu F; Less FI; LessOrEqual FI; Log F; LogSoftmax F; Loop FIB; LRN F;
LSTM F; LpNormalization F; LpPool F; MatMul F; Max FI; MaxPool F; Mean FIQ; MeanVarianceNormalization F; Min FI;
Mish F; Mod FI; Mul FI; Neg FI; NonMaxSuppression F; NonZero F; Not B; OneHot FIB; Or B; Pad FI;
ParametricSoftplus F; Pow FI; PRelu F; QuantizeLinear F; RandomNormal F; RandomNormalLike F; RandomUniform F;
RandomUniformLike F; Range FI; Reciprocal F; ReduceL1 FI; ReduceL2 FI; ReduceLogSum FI; ReduceLogSumExp FI;
ReduceMax FI; ReduceMean FI; ReduceMin FI; ReduceProd FI; ReduceSum FI; ReduceSumSquare FI; Relu FI; Reshape FIB;
Resize F; ReverseSequence FIB; RMSNormalization F; RNN F; RoiAlign F; RotaryEmbedding F; Round F; STFT F;
ScaledTanh F; Scan F; Scatter FI; ScatterElements FI; ScatterND FI; Selu F; Shape FIB; Shrink FI; Sigmoid F; Sign FI;
Sin F; Sinh F; Size FIB; Slice FIB; Softmax F; Softplus F; Softsign F; SpaceToDepth FI; Split FIB; Sqrt F; Squeeze FIB;
Sub FI; Sum FI; Tan F; Tanh F; TensorScatter FI; ThresholdedRelu F; Tile FIB; TopK FI; Transpose FIB; Trilu FIB;
Unsqueeze FIB; Upsample F; Where FIB; Xor B
"""
SUPPORTED_OPS: dict[str, set[int]] = {}
for _item in _SUPPORTED.replace("\n", " ").split(";"):
    if _item.strip():
        _op, _codes = _item.split()
        SUPPORTED_OPS[_op] = set().union(*(_CODES[c] for c in _codes))

UNSUPPORTED_OPS = frozenset("""AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im
CenterCropPad Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger
MaxRoiPool MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement
OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty SequenceErase
SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer
StringSplit TfIdfVectorizer Unique""".split())

_RESIZE_TRANSFORMS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
_RESIZE_MODES = {"nearest", "linear"}
_NEAREST_MODES = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}
_SHAPE_OPS = {"Shape", "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Cast", "Constant",
              "ConstantOfShape", "Range", "Size", "Identity", "Add", "Mul", "Div", "Sub"}

# DLA (TensorRT's DLA supported-layers list): op -> None (likely on DLA) or the reason it likely is not.
_DLA = {
    "Conv": None, "ConvTranspose": None, "Gemm": None, "BatchNormalization": None, "Relu": None, "Sigmoid": None,
    "Tanh": None, "Clip": None, "LeakyRelu": None, "PRelu": None, "MaxPool": None, "AveragePool": None,
    "GlobalAveragePool": None, "GlobalMaxPool": None, "Add": None, "Sub": None, "Mul": None, "Max": None,
    "Min": None, "Div": None, "Pow": None, "Equal": None, "Greater": None, "Less": None, "Concat": None,
    "Softmax": None, "LRN": None, "Abs": None, "Sin": None, "Cos": None, "Atan": None, "Slice": None,
    "Resize": None, "QuantizeLinear": None, "DequantizeLinear": None, "Identity": None,
    "DepthToSpace": "pixel shuffle becomes a Shuffle layer, which DLA runs only in narrow cases",
    "SpaceToDepth": "a Shuffle layer, which DLA runs only in narrow cases",
    "Round": "no DLA Round", "Cast": "no DLA Cast", "Shape": "shape computations run on the GPU",
    "Gather": "no DLA Gather", "Floor": "no DLA Floor", "Sqrt": "no DLA Sqrt", "Exp": "no DLA Exp",
}

UINT8_IO_ONLY = ("UINT8 tensors are supported only as network inputs or outputs (a Cast right after the input or "
                 "right before the output)")


@dataclass
class Finding:
    """One issue or note. level: "error" | "warning" | "info"; nodes: the ONNX node names it concerns."""

    level: str
    code: str
    message: str
    op: str = ""
    nodes: list[str] = field(default_factory=list)

    def line(self, max_nodes: int = 3) -> str:
        nodes = ""
        if self.nodes:
            shown = ", ".join(self.nodes[:max_nodes]) + (f", ... ({len(self.nodes)} nodes)" if len(self.nodes) > max_nodes
                                                         else "")
            nodes = f" [{shown}]"
        return f"{self.level.upper():7s} {self.op + ': ' if self.op else ''}{self.message}{nodes}"


@dataclass
class ReadinessReport:
    path: str
    opset: int
    op_counts: dict[str, int]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    findings: list[Finding] = field(default_factory=list)
    dla: list[Finding] = field(default_factory=list)
    polygraphy: dict[str, Any] | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def format(self, dla: bool = True) -> str:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.op_counts.items(), key=lambda kv: (-kv[1], kv[0])))
        io = "; ".join(f"{t['name']} {t['dtype']} {t['shape']}" for t in self.inputs + self.outputs)
        verdict = ("READY for the TensorRT ONNX parser" if self.ok else
                   f"NOT READY: {len(self.errors)} error(s) the TensorRT parser/builder would fail on")
        lines = [f"{Path(self.path).name}: opset {self.opset}; I/O {io}", f"ops: {ops}", verdict]
        order = {"error": 0, "warning": 1, "info": 2}
        lines += ["  " + f.line() for f in sorted(self.findings, key=lambda f: order.get(f.level, 3))]
        if dla and self.dla:
            lines.append("DLA hints (Jetson; verify with the engine inspector's layer placement):")
            lines += ["  " + f.line() for f in self.dla]
        if self.polygraphy is not None:
            lines.append(f"polygraphy: {self.polygraphy.get('summary')}")
        return "\n".join(lines)


# ---- graph helpers -------------------------------------------------------------------------------------
def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


class _Graph:
    def __init__(self, model: Any) -> None:
        import onnx

        self.model = model
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception as exc:  # noqa: BLE001 - types of intermediate tensors are then partly unknown
            log.debug("shape inference failed: %s", exc)
            inferred = model
        g = inferred.graph
        self.types: dict[str, int] = {}
        for v in list(g.input) + list(g.output) + list(g.value_info):
            if v.type.HasField("tensor_type"):
                self.types[v.name] = v.type.tensor_type.elem_type
        self.initializers = {i.name: i for i in model.graph.initializer}
        for name, init in self.initializers.items():
            self.types[name] = init.data_type
        self.constants: dict[str, Any] = {}
        for n in model.graph.node:
            if n.op_type == "Constant" and n.output:
                self.constants[n.output[0]] = n
                for a in n.attribute:
                    if a.name == "value":
                        self.types[n.output[0]] = a.t.data_type
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.graph_inputs = {i.name for i in model.graph.input} - set(self.initializers)
        self.graph_outputs = {o.name for o in model.graph.output}

    def is_constant(self, name: str) -> bool:
        if not name or name in self.initializers or name in self.constants:
            return True
        prod = self.producer.get(name)  # a DequantizeLinear / Cast / Identity of a constant is build-time known
        return prod is not None and prod.op_type in ("DequantizeLinear", "Cast", "Identity", "Reshape") and \
            bool(prod.input) and self.is_constant(prod.input[0])

    def array(self, name: str) -> Any:
        import onnx.numpy_helper as nh

        if name in self.initializers:
            return nh.to_array(self.initializers[name])
        node = self.constants.get(name)
        if node is not None:
            for a in node.attribute:
                if a.name == "value":
                    return nh.to_array(a.t)
        return None


def _name(node: Any, index: int) -> str:
    return node.name or f"#{index} {node.op_type}"


# ---- per-op restriction checks -------------------------------------------------------------------------
Check = Callable[[Any, str, _Graph], Iterable[tuple[str, str, str]]]


def _check_resize(node: Any, name: str, g: _Graph) -> Iterable[tuple[str, str, str]]:
    a = _attrs(node)
    mode = a.get("mode", "nearest")
    ct = a.get("coordinate_transformation_mode", "half_pixel")
    if mode not in _RESIZE_MODES:
        yield "error", "resize-mode", f"mode {mode!r} is not supported (TensorRT: {', '.join(sorted(_RESIZE_MODES))})"
    if ct not in _RESIZE_TRANSFORMS:
        yield "error", "resize-transform", (f"coordinate_transformation_mode {ct!r} is not supported (TensorRT: "
                                            f"{', '.join(sorted(_RESIZE_TRANSFORMS))})")
    if mode == "nearest" and a.get("nearest_mode", "round_prefer_floor") not in _NEAREST_MODES:
        yield "error", "resize-nearest", f"nearest_mode {a.get('nearest_mode')!r} is not supported"
    if a.get("antialias", 0):
        yield "error", "resize-antialias", "antialias is not supported"
    if a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        yield "error", "resize-aspect", f"keep_aspect_ratio_policy {a['keep_aspect_ratio_policy']!r} (only 'stretch')"
    if a.get("exclude_outside", 0):
        yield "warning", "resize-exclude", "exclude_outside=1 is ignored by TensorRT"
    ins = list(node.input) + ["", "", ""]
    scales, sizes = ins[2], ins[3]
    axes = a.get("axes")
    if scales and not g.is_constant(scales) and axes is not None and list(axes) != list(range(len(axes))):
        yield "error", "resize-axes", "with a runtime `scales` input, `axes` must be 0..rank-1"
    if sizes and not g.is_constant(sizes):
        yield "info", "resize-runtime-sizes", (f"{mode}/{ct} with a runtime `sizes` input (output size computed from "
                                               "shapes at run time): supported")
    else:
        yield "info", "resize-ok", f"{mode}/{ct}: supported"


def _check_pool(node: Any, name: str, g: _Graph) -> Iterable[tuple[str, str, str]]:
    a = _attrs(node)
    kernel = a.get("kernel_shape") or []
    if kernel and len(kernel) not in (2, 3):
        yield "error", "pool-rank", f"{len(kernel)}D pooling (TensorRT: 2D or 3D only)"
    if any(d != 1 for d in a.get("dilations") or []):
        yield "error", "pool-dilation", f"dilations {a['dilations']} (TensorRT: empty or all ones)"
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        yield "error", "pool-indices", "the Indices output is not supported"


def _check_conv(node: Any, name: str, g: _Graph) -> Iterable[tuple[str, str, str]]:
    if len(node.input) > 1 and not g.is_constant(node.input[1]):
        yield "warning", "conv-dynamic-weights", "weights are a runtime tensor (slower; some tactics unavailable)"


def _check_qdq(node: Any, name: str, g: _Graph) -> Iterable[tuple[str, str, str]]:
    ins = list(node.input) + ["", ""]
    zp = ins[2]
    if zp:
        zp_type = g.types.get(zp)
        if zp_type == UINT8:
            yield "error", "qdq-uint8", ("uint8 (asymmetric) quantization: TensorRT takes signed int8 Q/DQ with zero point "
                                         "0 only. Re-quantize with symmetric int8 activations and weights "
                                         "(quantize_for_tensorrt / target='tensorrt')")
            return
        arr = g.array(zp)
        if arr is not None and (arr != 0).any():
            yield "error", "qdq-zero-point", "non-zero zero point: TensorRT needs symmetric quantization (zero point 0)"
        elif arr is None and not g.is_constant(zp):
            yield "error", "qdq-zero-point", "zero point is not a build-time constant"
    elif node.op_type == "QuantizeLinear":
        yield "warning", "qdq-no-zero-point", ("no zero point: ONNX then means uint8, TensorRT quantizes to int8; give "
                                               "an int8 zero point of 0")
    if ins[1] and not g.is_constant(ins[1]):
        yield "error", "qdq-scale", "scale is not a build-time constant"
    scale = g.array(ins[1]) if ins[1] else None
    if scale is not None and scale.size > 1:
        yield "info", "qdq-per-channel", f"per-channel scales (axis {_attrs(node).get('axis', 1)}): supported"


def _check_const_axes(node: Any, name: str, g: _Graph) -> Iterable[tuple[str, str, str]]:
    index = {"Slice": 3, "Squeeze": 1, "Unsqueeze": 1}.get(node.op_type, 1)
    if len(node.input) > index and node.input[index] and not g.is_constant(node.input[index]):
        yield "warning", "runtime-axes", "`axes` is a runtime tensor: TensorRT needs it resolvable to a constant"


def _check_depth_to_space(node: Any, name: str, g: _Graph) -> Iterable[tuple[str, str, str]]:
    a = _attrs(node)
    yield "info", "depth-to-space", f"mode {a.get('mode', 'DCR')}, blocksize {a.get('blocksize')}: supported (CRD and DCR)"


def _check_cast(node: Any, name: str, g: _Graph) -> Iterable[tuple[str, str, str]]:
    to = _attrs(node).get("to")
    if to == UINT8 and node.output[0] not in g.graph_outputs:
        yield "error", "uint8-internal", f"Cast to UINT8 inside the network: {UINT8_IO_ONLY}"
    if to == DOUBLE:
        yield "warning", "double", "Cast to DOUBLE: TensorRT computes in FP32 instead (values clamped to FP32)"


_CHECKS: dict[str, Check] = {
    "Resize": _check_resize, "MaxPool": _check_pool, "AveragePool": _check_pool, "LpPool": _check_pool,
    "Conv": _check_conv, "ConvTranspose": _check_conv, "QuantizeLinear": _check_qdq, "DequantizeLinear": _check_qdq,
    "Slice": _check_const_axes, "Squeeze": _check_const_axes, "Unsqueeze": _check_const_axes,
    "DepthToSpace": _check_depth_to_space, "Cast": _check_cast,
}


# ---- the check -----------------------------------------------------------------------------------------
def _value_info(v: Any) -> dict[str, Any]:
    from edgesr.export.graph import tensor_dtype_name, value_shape

    t = v.type.tensor_type
    return {"name": v.name, "dtype": tensor_dtype_name(t.elem_type), "shape": value_shape(v)}


class _Collector:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str, str], Finding] = {}

    def add(self, level: str, code: str, message: str, op: str = "", node: str | None = None) -> None:
        key = (level, code, op, message)
        f = self.items.setdefault(key, Finding(level, code, message, op))
        if node is not None:
            f.nodes.append(node)

    def list(self) -> list[Finding]:
        return list(self.items.values())


def check_readiness(model: str | Path | Any, *, dla: bool = True, polygraphy: bool | None = None,
                    max_opset: int = MAX_OPSET) -> ReadinessReport:
    """Check an ONNX file (or ModelProto) against the TensorRT ONNX parser's support matrix.

    dla: add DLA hints. polygraphy: also run ``polygraphy inspect model`` (ONNX-only) when Polygraphy is
    installed (None: when installed; True: a missing Polygraphy is reported). `max_opset`: the highest opset
    the target parser reads (24 for TensorRT 10.15/11.x, 20 for TensorRT 10.0).
    """
    import onnx

    path = ""
    if isinstance(model, (str, Path)):
        path = str(model)
        if not Path(path).is_file():
            raise UserInputError(f"ONNX file not found: {path}")
        try:
            proto = onnx.load(path)
        except Exception as exc:  # noqa: BLE001 - not an ONNX file
            raise UserInputError(f"cannot read {path} as ONNX: {str(exc).splitlines()[0][:200]}") from exc
    else:
        proto = model
    if not proto.opset_import or not proto.graph.node:  # e.g. a 0-byte file parses as an empty ModelProto
        size = f" ({Path(path).stat().st_size} bytes)" if path else ""
        raise UserInputError(f"{path or 'the model'}{size} is not an ONNX model: it has no "
                             f"{'opset' if not proto.opset_import else 'graph nodes'}. Export it again.")
    g = _Graph(proto)
    c = _Collector()
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET or opset > max_opset:
        c.add("error", "opset", f"opset {opset} is outside what the TensorRT parser reads ({MIN_OPSET}..{max_opset}); "
                                "re-export with --opset 17 or 18")
    elif opset > MAX_OPSET_TRT10_0:
        c.add("info", "opset", f"opset {opset} needs a TensorRT 10.x newer than 10.0 (10.0 reads up to opset "
                               f"{MAX_OPSET_TRT10_0})")
    for o in proto.opset_import:
        if o.domain not in ("", "ai.onnx"):
            c.add("warning", "domain", f"opset domain {o.domain!r}: its ops need TensorRT plugins")
    if proto.functions:
        c.add("info", "functions", f"{len(proto.functions)} local function(s): the parser inlines them")
    if any(i.data_location == onnx.TensorProto.EXTERNAL for i in proto.graph.initializer):
        c.add("info", "external-data", "weights in an external data file: keep it beside the .onnx for parse_from_file")

    for v in list(proto.graph.input) + list(proto.graph.output):
        if v.name in g.initializers:
            continue
        dims = v.type.tensor_type.shape.dim
        if any(d.dim_param or d.dim_value <= 0 for d in dims):
            c.add("info", "dynamic-shape", f"{v.name}: dynamic dimensions {_value_info(v)['shape']}: the build needs an "
                                           "optimization profile (min/opt/max shapes)")
        if v.type.tensor_type.elem_type == UINT8:
            c.add("info", "uint8-io", f"{v.name} is UINT8: supported as a network input/output")

    counts = Counter(n.op_type for n in proto.graph.node)
    for i, node in enumerate(proto.graph.node):
        name = _name(node, i)
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            c.add("error", "custom-op", f"op of domain {node.domain!r}: no TensorRT parser support; needs a plugin",
                  op, name)
            continue
        if op in UNSUPPORTED_OPS:
            c.add("error", "unsupported-op", "not supported by the TensorRT ONNX parser", op, name)
            continue
        if op not in SUPPORTED_OPS:
            c.add("error", "unknown-op", "not in the TensorRT ONNX parser's operator support matrix", op, name)
            continue
        allowed = SUPPORTED_OPS[op]
        data_in = next((x for x in node.input if x), None)
        t = g.types.get(data_in) if data_in else None
        if op in ("QuantizeLinear",):
            pass  # the float input is checked by the table; the quantized type by _check_qdq
        elif t == UINT8 and op == "Shape" and data_in in g.graph_inputs:
            c.add("warning", "uint8-shape", "reads the shape of the UINT8 network input: the support matrix lists no "
                                            "UINT8 for Shape (UINT8 is for network I/O and Cast); take the shape after "
                                            "the input's Cast (`rewire_uint8_shapes` does; edgesr's TensorRT export "
                                            "applies it)", op, name)
        elif t is not None and t not in allowed and not (t == UINT8 and op == "Cast" and data_in in g.graph_inputs):
            level = "warning" if t == DOUBLE else "error"
            c.add(level, "type", f"input type {_TYPE_NAMES.get(t, t)} is not supported (takes "
                                 f"{', '.join(sorted({_TYPE_NAMES.get(x, str(x)) for x in allowed}))})", op, name)
        for out in node.output:
            if out and g.types.get(out) == UINT8 and out not in g.graph_outputs and op != "QuantizeLinear":
                c.add("error", "uint8-internal", f"produces UINT8 tensor {out!r}: {UINT8_IO_ONLY}", op, name)
        check = _CHECKS.get(op)
        if check is not None:
            for level, code, message in check(node, name, g):
                c.add(level, code, message, op, name)
    for name, init in g.initializers.items():
        if init.data_type == INT64 and _numel(init) > 64:
            c.add("warning", "int64-weights", f"INT64 initializer {name!r} ({_numel(init)} values): TensorRT 10 keeps "
                                              "INT64 only for index/shape math (TensorRT < 10 casts down to INT32)")
        if init.data_type == DOUBLE:
            c.add("warning", "double", f"DOUBLE initializer {name!r}: TensorRT casts it to FP32")

    report = ReadinessReport(path or "<model>", opset, dict(counts), [_value_info(v) for v in proto.graph.input
                                                                      if v.name not in g.initializers],
                             [_value_info(v) for v in proto.graph.output], c.list())
    if dla:
        report.dla = _dla_hints(proto, g, counts)
    if polygraphy is not False and path:
        report.polygraphy = run_polygraphy_inspect(path, required=bool(polygraphy))
    return report


def _numel(init: Any) -> int:
    n = 1
    for d in init.dims:
        n *= int(d)
    return n


def _dla_hints(proto: Any, g: _Graph, counts: Counter) -> list[Finding]:
    c = _Collector()
    types = {i.data_type for i in proto.graph.initializer}
    has_qdq = counts.get("QuantizeLinear", 0) + counts.get("DequantizeLinear", 0) > 0
    if FLOAT in types and FLOAT16 not in types and not has_qdq:
        c.add("warning", "dla-precision", "the graph is FP32: DLA runs FP16/INT8 only, so a strongly typed FP32 network "
                                          "stays on the GPU; export with --fp16 or --int8 for DLA")
    else:
        c.add("info", "dla-precision", "FP16/INT8 graph: eligible for DLA")
    dynamic = [v.name for v in proto.graph.input if v.name not in g.initializers and
               any(d.dim_param or d.dim_value <= 0 for d in v.type.tensor_type.shape.dim)]
    if dynamic:
        c.add("warning", "dla-static", f"dynamic input shapes ({', '.join(dynamic)}): DLA needs static shapes; build "
                                       "with equal --min/--opt/--max-shape (one tile size) for DLA")
    for i, node in enumerate(proto.graph.node):
        op = node.op_type
        reason = _DLA.get(op, "not in DLA's supported layers")
        if op in _SHAPE_OPS and node.output and all(g.types.get(o) in (INT32, INT64) for o in node.output if o):
            if dynamic:
                c.add("info", "dla-shape", "shape computation: with static shapes it folds away at build time", op,
                      _name(node, i))
            continue
        if op == "Resize":
            a = _attrs(node)
            ins = list(node.input) + ["", "", ""]
            if ins[3] and not g.is_constant(ins[3]):
                reason = "output size computed at run time (and likely an odd ratio, e.g. ESA's upsampling back to the " \
                         "input size): GPU fallback"
            elif a.get("mode", "nearest") not in ("nearest", "linear"):
                reason = f"mode {a.get('mode')}"
        if op == "Concat" and _attrs(node).get("axis", 1) not in (1, -3):
            reason = "DLA concatenates along channels only"
        if reason is None:
            c.add("info", "dla-ok", "likely on DLA", op, _name(node, i))
        else:
            c.add("warning", "dla-fallback", f"likely GPU fallback: {reason}", op, _name(node, i))
    return c.list()


# ---- polygraphy (optional, ONNX-only commands) -----------------------------------------------------------
def run_polygraphy_inspect(path: str | Path, required: bool = False, timeout: float = 120.0) -> dict[str, Any]:
    """``polygraphy inspect model PATH`` (ONNX only, no TensorRT): its summary, or why it did not run."""
    import importlib.util

    if importlib.util.find_spec("polygraphy") is None:
        msg = "not installed (pip install edgesr[tensorrt] adds it)"
        return {"ran": False, "summary": msg, "required": required}
    exe = shutil.which("polygraphy")
    cmd = [exe] if exe else [sys.executable, "-m", "polygraphy"]
    try:
        proc = subprocess.run([*cmd, "inspect", "model", str(path), "--show", "layers"], capture_output=True,
                              text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"ran": False, "summary": f"failed to run: {exc}"}
    text = proc.stdout + proc.stderr
    opset = next((ln.split("ONNX Opset:")[1].strip() for ln in text.splitlines() if "ONNX Opset:" in ln), None)
    layers = sum(1 for ln in text.splitlines() if ln.strip().startswith("Node ") or " | Node " in ln)
    ok = proc.returncode == 0
    summary = (f"inspect model: loaded (opset {opset}, {layers} nodes listed)" if ok else
               f"inspect model failed (exit {proc.returncode}): {text.strip().splitlines()[-1:]}")
    if importlib.util.find_spec("onnx_graphsurgeon") is None:
        summary += "; `polygraphy check lint` skipped (needs onnx_graphsurgeon)"
    return {"ran": True, "ok": ok, "summary": summary, "opset": opset, "nodes": layers}


def rewire_uint8_shapes(model: Any) -> int:
    """Make Shape nodes that read a UINT8 graph input read the output of that input's Cast instead (same shape,
    and UINT8 then stays at the network boundary, where TensorRT supports it). Returns the number rewired."""
    uint8_inputs = {v.name for v in model.graph.input if v.type.tensor_type.elem_type == UINT8}
    casts = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "Cast" and n.input
             and n.input[0] in uint8_inputs}
    changed = 0
    for node in model.graph.node:
        if node.op_type == "Shape" and node.input and node.input[0] in casts:
            node.input[0] = casts[node.input[0]]
            changed += 1
    if changed:  # Shape nodes may now come before the Cast they read: restore topological order
        order, done, pending = [], set(i.name for i in model.graph.input) | {i.name for i in model.graph.initializer}, \
            list(model.graph.node)
        done.add("")
        while pending:
            progressed = False
            for node in list(pending):
                if all(i in done for i in node.input):
                    order.append(node)
                    done.update(node.output)
                    pending.remove(node)
                    progressed = True
            if not progressed:  # leave the graph as it was rather than drop nodes
                return changed
        del model.graph.node[:]
        model.graph.node.extend(order)
    return changed


def report_json(report: ReadinessReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"
