"""Static INT8 quantization of an exported FP32 ONNX SR model (QDQ format), calibrated on real images.

    from edgesr.export.quantize import quantize_onnx
    result = quantize_onnx("rlfn_x4.onnx", "rlfn_x4_int8.onnx", "shared/datasets/DIV2K_test_LR_x4",
                           exclude="auto", psnr_budget_db=45.0)
    print("\\n".join(result.summary()))

The graph rewrite is ONNX Runtime's own QDQ quantizer (`onnxruntime.quantization.quantize_static`);
edgesr supplies what SR needs on top of it:

* **Real calibration data**: crops of LR images (`edgesr.export.calibration`); the "auto" search measures
  candidates on *selection* crops of other images, and the result is reported on *held-out* crops of yet
  other images (PSNR of the INT8 output vs the FP32 output, both clamped to the 0..1 image range, on the
  0..255 scale).
* **Range methods** computed by edgesr from histograms (``minmax``, ``percentile``, ``entropy``, ``mse``),
  handed to ONNX Runtime as a calibration cache. The image input keeps its exact 0..1 (or 0..255)
  range, so 8-bit pixels are represented exactly by uint8 activations.
* **Targets** (`QUANT_TARGETS`): ``"ort-cpu"``: uint8 asymmetric activations, int8 symmetric per-channel
  weights, int32 biases (what ONNX Runtime's CPU kernels run fastest); ``"tensorrt"``: int8 *symmetric*
  activations and weights (all zero points 0, as TensorRT's explicit quantization requires), per-channel
  weights, biases left in float (TensorRT does not take int32-bias DequantizeLinear). For TensorRT the
  PSNR is measured by running the same QDQ graph in ONNX Runtime CPU, an emulation of the engine.
* **Mixed precision by measured sensitivity** (``exclude="auto"``): quantize the whole graph; if the
  PSNR vs FP32 on the *selection* crops is below `psnr_budget_db`, measure what quantizing each node
  alone costs (what ONNX Runtime's ``nodes_to_quantize=[node]`` gives, computed for all nodes with one
  switchable graph, `switch_graph`, matching real builds to 0.01 dB), then
  exclude nodes from quantization (``nodes_to_exclude``) cumulatively, most damaging first (an exclusion
  that costs PSNR is undone; one that gains nothing is kept, as exclusions often pay off only together
  with their neighbours', which share the quantized tensors), until the budget is met or `max_excluded`
  nodes are excluded; then try quantizing each excluded node again, least damaging first, and leave it
  quantized when the budget still holds.
  Nodes that ONNX Runtime only quantizes when their input already is (MaxPool, Resize, ...) are not
  candidates.
  An excluded node computes in float; ONNX Runtime still quantizes a tensor it reads or writes when
  another, quantized node shares the tensor.

The artifact is ``<out>.onnx`` with a sidecar ``<out>.onnx.json`` (precision "int8", the FP32 artifact's
fields, parity = INT8 vs FP32 on the held-out crops, and a ``quantization`` block with the target,
method, calibration images, excluded nodes and the sensitivity table).
"""
from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from edgesr.errors import ExportError, UserInputError, suggest
from edgesr.export.calibration import DEFAULT_PERCENTILE, RANGE_METHODS
from edgesr.metrics.psnr import format_psnr
from edgesr.utils.hashing import sha256_bytes
from edgesr.utils.jsonable import to_jsonable

if TYPE_CHECKING:
    import onnx

    from edgesr.artifacts.sidecar import Sidecar

log = logging.getLogger(__name__)

DEFAULT_METHOD = "percentile"
DEFAULT_PSNR_BUDGET_DB = 40.0
DEFAULT_MAX_EXCLUDED = 10
# ops ONNX Runtime quantizes only when their input already is (no candidates for exclusion on their own)
_INHERITING_OPS = {"MaxPool", "Resize", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Slice",
                   "AveragePool", "Split", "Gather", "GatherElements", "Pad", "TopK", "DepthToSpace",
                   "SpaceToDepth", "Concat", "Where"}


@dataclass(frozen=True)
class QuantTarget:
    """How a runtime wants its QDQ graph."""

    name: str
    activation_type: str          # "uint8" | "int8"
    activation_symmetric: bool
    quantize_bias: bool
    description: str
    op_types: tuple[str, ...] | None = None  # None: every op ONNX Runtime can quantize
    quantize_conv_outputs: bool = True

    def ort_options(self) -> dict[str, Any]:
        from onnxruntime.quantization import QuantType

        extra: dict[str, Any] = {"WeightSymmetric": True, "ActivationSymmetric": self.activation_symmetric,
                                 "QuantizeBias": self.quantize_bias}
        if not self.quantize_conv_outputs:
            extra["OpTypesToExcludeOutputQuantization"] = ["Conv", "ConvTranspose"]
        act = QuantType.QUInt8 if self.activation_type == "uint8" else QuantType.QInt8
        opts: dict[str, Any] = {"activation_type": act, "weight_type": QuantType.QInt8, "extra_options": extra}
        if self.op_types is not None:
            opts["op_types_to_quantize"] = list(self.op_types)
        return opts


QUANT_TARGETS = {
    "ort-cpu": QuantTarget(
        "ort-cpu", "uint8", False, True,
        "ONNX Runtime CPU / mobile (.ort): uint8 asymmetric activations, int8 symmetric weights, int32 bias; "
        "every supported op quantized (integer chains QLinearConv -> QLinearLeakyRelu -> QLinearAdd ...)"),
    "tensorrt": QuantTarget(
        "tensorrt", "int8", True, False,
        "TensorRT explicit quantization: int8 symmetric activations and weights (zero points 0), float bias; "
        "Q/DQ on Conv inputs only (TensorRT's placement: it fuses the following activation/add and "
        "requantizes into the next Q), the rest in float", op_types=("Conv", "ConvTranspose"),
        quantize_conv_outputs=False),
}


@dataclass
class SensitivityEntry:
    """PSNR vs FP32 (selection crops) with only `node` quantized: the lower, the more it costs."""

    node: str
    op_type: str
    psnr_db: float


@dataclass
class ExclusionStep:
    """One step of the search: excluding `node` on top of the exclusions kept so far gave `psnr_db`
    (forward pass; `kept`: the exclusion stays), or, for ``-node`` (backward pass), quantizing it again
    gave `psnr_db` (`kept`: it stays quantized)."""

    node: str
    psnr_db: float
    kept: bool


@dataclass
class QuantizeResult:
    """What `quantize_onnx` wrote and measured. PSNRs are INT8 vs FP32 outputs (0..255 scale)."""

    path: Path
    sidecar_path: Path
    target: str
    method: str
    per_channel: bool
    excluded: list[str]
    psnr_db: float                 # mean over the held-out crops
    min_psnr_db: float
    max_abs_diff: float
    full_int8_psnr_db: float | None  # every node quantized, held-out crops
    selection_psnr_db: float | None  # final model, selection crops (what the budget was checked on)
    psnr_budget_db: float | None
    max_drop_db: float | None = None
    drops: dict[str, Any] | None = None  # Y-PSNR of FP32 and INT8 on the validation / held-out images
    sensitivity: list[SensitivityEntry] = field(default_factory=list)
    steps: list[ExclusionStep] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)
    qdq_counts: dict[str, int] = field(default_factory=dict)
    sidecar: "Sidecar | None" = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"], d["sidecar_path"] = str(self.path), str(self.sidecar_path)
        d["sidecar"] = self.sidecar.to_dict() if self.sidecar is not None else None
        return d

    def summary(self) -> list[str]:
        cal = self.calibration
        db = partial(format_psnr, none="n/a")  # None: not measured
        lines = [f"int8 ({self.target}, {self.method} ranges, per-channel weights: {self.per_channel}); "
                 f"calibrated on {cal.get('crops')} crops of {cal.get('crop_size')} px from "
                 f"{cal.get('files')} images in {cal.get('folder')}"]
        if self.full_int8_psnr_db is not None:
            lines.append(f"all nodes quantized: PSNR vs FP32 {db(self.full_int8_psnr_db)} (held-out crops)")
        if self.steps:
            fwd = [s for s in self.steps if not s.node.startswith("-")]
            back = [s for s in self.steps if s.node.startswith("-") and s.kept]
            budget = (f"Y-PSNR drop <= {self.max_drop_db:g} dB on the validation images"
                      if self.max_drop_db is not None else
                      f"{self.psnr_budget_db:g} dB vs FP32 on selection crops: {db(self.selection_psnr_db)}")
            lines.append(f"sensitivity search: {len(self.sensitivity)} nodes measured, {len(fwd)} exclusions "
                         f"tried, {sum(s.kept for s in fwd)} kept, {len(back)} quantized again (budget {budget})")
        if self.excluded:
            lines.append(f"kept in float ({len(self.excluded)}): {', '.join(self.excluded)}")
        lines.append(f"result: PSNR vs FP32 {db(self.psnr_db)} mean, {db(self.min_psnr_db)} worst, "
                     f"max |d| {self.max_abs_diff:.3g} (0..255) on {cal.get('holdout_crops')} held-out crops")
        if self.drops:
            d = self.drops
            lines.append(f"Y-PSNR drop vs FP32: {d['select_drop_db']:.3f} dB on {d['select_images']} validation "
                         f"images, {d['holdout_drop_db']:.3f} dB on {d['holdout_images']} held-out images")
        lines.append("QDQ: " + ", ".join(f"{k} {v}" for k, v in self.qdq_counts.items()))
        lines.append(f"wrote {self.path} and {self.sidecar_path} ({self.seconds:.1f} s)")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines


# ------------------------------------------------------------------------------------------ helpers


class _DropPreprocessHint(logging.Filter):
    """ONNX Runtime's quantizer logs a 'consider pre-processing' warning on every call (root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return "pre-processing before quantization" not in msg and "pre-process" not in msg


@contextlib.contextmanager
def _quiet_ort_quantizer():
    root = logging.getLogger()
    flt = _DropPreprocessHint()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _image_tensor(model: "onnx.ModelProto", io: str) -> tuple[str | None, tuple[float, float]]:
    """The float tensor holding the image (the graph input, or the Cast of a uint8 input) and its range."""
    from onnx import TensorProto

    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs:
        return None, (0.0, 1.0)
    value = inputs[0]
    rng = (0.0, 1.0) if io == "float01" else (0.0, 255.0)
    if value.type.tensor_type.elem_type == TensorProto.FLOAT:
        return value.name, rng
    for node in model.graph.node:
        if node.op_type == "Cast" and node.input and node.input[0] == value.name:
            to = next((a.i for a in node.attribute if a.name == "to"), None)
            if to == TensorProto.FLOAT:
                return node.output[0], rng
    return None, rng


def _check_exclude(exclude: Any, names: Sequence[str]) -> list[str] | str | None:
    if exclude is None or exclude == "auto":
        return exclude
    if isinstance(exclude, str):
        exclude = [e for e in exclude.split(",") if e.strip()]
    try:
        wanted = [str(e).strip() for e in exclude]
    except TypeError:
        raise UserInputError(f"exclude must be None, 'auto' or a list of node names, got {exclude!r}.") from None
    unknown = [e for e in wanted if e not in names]
    if unknown:
        raise UserInputError(f"exclude: no node named {unknown[0]!r} in the graph.{suggest(unknown[0], list(names))} "
                             f"({len(names)} nodes; names are those of the FP32 ONNX graph, e.g. {names[0]!r}).")
    return wanted


def _qdq_counts(model: "onnx.ModelProto") -> dict[str, int]:
    """QuantizeLinear/DequantizeLinear counts and how many Convs read quantized weights."""
    counts = {"QuantizeLinear": 0, "DequantizeLinear": 0}
    for node in model.graph.node:
        if node.op_type in counts:
            counts[node.op_type] += 1
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    counts["quantized_convs"] = sum(1 for n in convs if len(n.input) > 1 and n.input[1] in dq_outputs)
    counts["float_convs"] = len(convs) - counts["quantized_convs"]
    return counts


# ------------------------------------------------------------------------------------------ evaluation


class _Evaluator:
    """Runs candidate graphs on fixed crops and compares them with the FP32 graph's outputs.

    Crops of one size run as one batch (the exported graphs have a dynamic batch dimension)."""

    def __init__(self, fp32: "onnx.ModelProto", crops: Sequence[tuple[str, np.ndarray]], io: str, threads: int):
        from edgesr.export.verify import create_session

        self.io, self.threads = io, threads
        groups: dict[tuple[int, ...], list[np.ndarray]] = {}
        for _, x in crops:
            groups.setdefault(tuple(x.shape), []).append(x)
        self.batches = [np.concatenate(xs, axis=0) for xs in groups.values()]
        session = create_session(fp32, threads=threads)
        self.refs = [self._run(session, x) for x in self.batches]

    def _run(self, session: Any, x01: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> np.ndarray:
        from edgesr.export.verify import to_255, to_model_input

        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        feed = {inp.name: to_model_input(x01, self.io, inp.type), **(extra or {})}
        y = session.run([out.name], feed)[0]
        return np.clip(to_255(y, self.io), 0.0, 255.0)

    def measure(self, model: Any, extra: dict[str, np.ndarray] | None = None) -> list[tuple[float, float]]:
        """(PSNR dB, max abs diff) per crop, 0..255 scale, both outputs clamped to the image range.
        `model` is a graph or an open session; `extra` are further inputs (the switch graph's gates)."""
        from edgesr.export.verify import create_session, psnr_255

        session = model if hasattr(model, "run") else create_session(model, threads=self.threads)
        out = []
        for x, ref in zip(self.batches, self.refs):
            y = self._run(session, x, extra)
            for k in range(y.shape[0]):
                if not np.isfinite(y[k]).all():
                    out.append((0.0, math.inf))
                else:
                    out.append((psnr_255(y[k], ref[k]), float(np.abs(y[k] - ref[k]).max())))
        return out

    def psnr(self, model: Any, extra: dict[str, np.ndarray] | None = None) -> float:
        """PSNR over all crops together (MSE averaged first: one bad crop is not hidden by a good one)."""
        return _pooled_psnr([p for p, _ in self.measure(model, extra)])


class _DropMeter:
    """Y-PSNR against ground truth (`edgesr.export.int8_validation`) of candidate graphs on the selection
    images (what the search's budget is checked on) and the held-out images (what is reported)."""

    def __init__(self, fp32: "onnx.ModelProto", io: str, threads: int, select_files: Sequence[Path],
                 hold_files: Sequence[Path], count: int, min_size: int, scale: int,
                 dataset: str | Path | None = None) -> None:
        from edgesr.export.int8_validation import dataset_validation_set, validation_set

        self.io, self.threads = io, threads
        self.select = validation_set(select_files, scale, count=count, min_size=min_size) if dataset is None else \
            dataset_validation_set(dataset, scale, min_size=min_size)
        self.holdout = validation_set(hold_files, scale, count=count, min_size=min_size)
        self.fp32_select = self.select_psnr(fp32)
        self.fp32_holdout = self._psnr(self.holdout, fp32)

    def _psnr(self, vset: Any, model: Any) -> float:
        from edgesr.export.verify import create_session, onnxruntime_sr_function

        session = create_session(model, threads=self.threads)
        return vset.psnr(onnxruntime_sr_function(session, io=self.io))

    def select_psnr(self, model: Any) -> float:
        return self._psnr(self.select, model)

    def report(self, model: Any) -> dict[str, Any]:
        sel, hold = self.select_psnr(model), self._psnr(self.holdout, model)
        return {"fp32_select_db": self.fp32_select, "int8_select_db": sel, "select_drop_db": self.fp32_select - sel,
                "select_images": len(self.select.pairs), "fp32_holdout_db": self.fp32_holdout,
                "int8_holdout_db": hold, "holdout_drop_db": self.fp32_holdout - hold,
                "holdout_images": len(self.holdout.pairs), "select_source": self.select.source,
                "holdout_source": self.holdout.source, "protocol": self.select.describe()["protocol"]}


def _pooled_psnr(psnrs: Sequence[float]) -> float:
    mses = [0.0 if math.isinf(p) else 255.0 ** 2 / 10 ** (p / 10) for p in psnrs]
    mse = float(np.mean(mses)) if mses else 0.0
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


GATES_INPUT = "edgesr_qdq_gates"


def switch_graph(qdq: "onnx.ModelProto", fp32: "onnx.ModelProto") -> tuple["onnx.ModelProto", dict[str, int]]:
    """The QDQ graph with every quantization made switchable, to measure many quantization choices with
    one session: each DequantizeLinear output ``d`` of a quantized activation ``t`` (or weight/bias ``w``)
    becomes ``t + g * (d - t)``, with ``g`` an element of the float input ``edgesr_qdq_gates``. Gates at 1
    give the QDQ graph (computed in float: ONNX Runtime does not fuse it into integer kernels, which give
    the same values up to rounding ties), gates at 0 the FP32 graph. Returns the graph and the gate index
    of each FP32 tensor / initializer name.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto.FromString(qdq.SerializeToString())
    graph = model.graph
    fp_inits = {i.name: i for i in fp32.graph.initializer}
    q_by_out = {n.output[0]: n for n in graph.node if n.op_type == "QuantizeLinear"}
    init_names = {i.name for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    gate_of: dict[str, int] = {}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        nodes.append(node)
        if node.op_type != "DequantizeLinear":
            continue
        x = node.input[0]
        if x in q_by_out:  # an activation: Q(t) -> DQ
            float_in = q_by_out[x].input[0]
            orig = node.output[0] if node.output[0] in outputs else float_in
        elif x in init_names and x.endswith("_quantized") and x[: -len("_quantized")] in fp_inits:
            orig = x[: -len("_quantized")]
            float_in = f"{orig}__edgesr_float"
            if float_in not in init_names:
                graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(fp_inits[orig]), float_in))
                init_names.add(float_in)
        else:
            continue  # cannot be switched off: stays quantized
        idx = gate_of.setdefault(orig, len(gate_of))
        out = node.output[0]
        raw, gate, diff, scaled = (f"{out}__{k}" for k in ("raw", "gate", "diff", "scaled"))
        node.output[0] = raw
        index = f"{out}__gate_index"
        graph.initializer.append(numpy_helper.from_array(np.array(idx, np.int64), index))
        nodes += [helper.make_node("Gather", [GATES_INPUT, index], [gate], name=f"{out}__gate_node"),
                  helper.make_node("Sub", [raw, float_in], [diff], name=f"{out}__sub"),
                  helper.make_node("Mul", [diff, gate], [scaled], name=f"{out}__mul"),
                  helper.make_node("Add", [float_in, scaled], [out], name=f"{out}__add")]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.input.append(helper.make_tensor_value_info(GATES_INPUT, TensorProto.FLOAT, [len(gate_of)]))
    return model, gate_of


def node_gates(fp32: "onnx.ModelProto", gate_of: dict[str, int]) -> dict[str, list[int]]:
    """Gate indices of each FP32 node's quantized inputs, outputs and weights: what quantizing only that
    node (ONNX Runtime's ``nodes_to_quantize=[node]``) quantizes."""
    out = {}
    for node in fp32.graph.node:
        out[node.name] = sorted({gate_of[t] for t in list(node.input) + list(node.output) if t in gate_of})
    return out


# ------------------------------------------------------------------------------------------ main API


def quantize_onnx(fp32_path: str | Path, out_path: str | Path, calib_images: str | Path, *,
                  target: str = "ort-cpu", method: str = DEFAULT_METHOD, per_channel: bool = True,
                  exclude: Sequence[str] | str | None = None, psnr_budget_db: float = DEFAULT_PSNR_BUDGET_DB,
                  max_drop_db: float | None = None, max_excluded: int = DEFAULT_MAX_EXCLUDED, val_count: int = 8,
                  val_images: str | Path | None = None, calib_count: int = 32, calib_size: int = 96,
                  holdout_count: int = 8, holdout_size: int = 128, select_count: int = 4,
                  percentile: float = DEFAULT_PERCENTILE, io: str | None = None, threads: int = 2, seed: int = 0,
                  force: bool = False, progress: Callable[[str], None] | None = None) -> QuantizeResult:
    """Quantize the FP32 ONNX graph `fp32_path` to a QDQ INT8 graph `out_path` (+ sidecar).

    Args:
        calib_images: folder of LR images (e.g. shared/datasets/DIV2K_test_LR_x4), split by file (sorted)
            into calibration, selection (what "auto" measures candidates on) and held-out images (what the
            reported PSNR is measured on); see `edgesr.export.calibration.split_files`.
        target: "ort-cpu" or "tensorrt" (see `QUANT_TARGETS`).
        method: activation range method: "minmax", "percentile", "entropy" or "mse"
            (`edgesr.export.calibration`).
        per_channel: per-output-channel weight scales (recommended; per-tensor costs several dB on SR).
        exclude: None (quantize every supported node), "auto" (measured sensitivity search, see the module
            docstring), or names of nodes of the FP32 graph to keep in float.
        max_drop_db: when set, the "auto" search's budget is the Y-PSNR *drop* vs the FP32 graph on the
            validation images (`edgesr.export.int8_validation`: `val_count` selection images used as ground
            truth, MATLAB bicubic LR; or the dataset `val_images`, e.g. "Set14") instead of `psnr_budget_db`;
            the result reports the drop on held-out images as well.
        psnr_budget_db / max_excluded: the "auto" search stops when the PSNR vs FP32 on the selection crops
            reaches the budget or when `max_excluded` nodes are excluded.
        calib_count / calib_size: number and size (px, square) of calibration crops.
        holdout_count / holdout_size: held-out crops the reported PSNR is measured on.
        select_count: crops (from their own images) the "auto" search measures candidates on.
        io: the graph's I/O convention ("float01" | "float255" | "uint8"); default from the FP32 sidecar,
            else from the input type.
        force: overwrite existing outputs.
        progress: called with a short message before each stage.
    """
    import onnx

    from edgesr.export import calibration as cal
    from edgesr.export.verify import IO_MODES
    from edgesr.artifacts.sidecar import Sidecar, sidecar_path_for
    from edgesr.utils.atomic import check_writable

    started = time.perf_counter()
    say = progress or (lambda msg: log.info("%s", msg))
    if target not in QUANT_TARGETS:
        raise UserInputError(f"unknown quantization target {target!r}; choose one of {', '.join(QUANT_TARGETS)}.")
    if method not in RANGE_METHODS:
        raise UserInputError(f"unknown calibration method {method!r}; choose one of {', '.join(RANGE_METHODS)}.")
    for name, value, low in (("calib_count", calib_count, 1), ("calib_size", calib_size, 1),
                             ("holdout_count", holdout_count, 1), ("holdout_size", holdout_size, 1),
                             ("select_count", select_count, 1), ("max_excluded", max_excluded, 0),
                             ("threads", threads, 1)):
        if not isinstance(value, int) or value < low:
            raise UserInputError(f"{name} must be an integer >= {low}, got {value!r}.")
    if not 50.0 < percentile <= 100.0:
        raise UserInputError(f"percentile must be in (50, 100], got {percentile!r}.")
    if not (isinstance(psnr_budget_db, (int, float)) and psnr_budget_db > 0):
        raise UserInputError(f"psnr_budget_db must be a positive number of dB, got {psnr_budget_db!r}.")
    if max_drop_db is not None and not (isinstance(max_drop_db, (int, float)) and 0 <= max_drop_db < 100):
        raise UserInputError(f"max_drop_db must be a number of dB >= 0, got {max_drop_db!r}.")
    qt = QUANT_TARGETS[target]
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if not fp32_path.is_file():
        raise UserInputError(f"FP32 ONNX model not found: {fp32_path}")
    if out_path.suffix.lower() != ".onnx":
        raise UserInputError(f"the INT8 artifact path must end in .onnx, got {out_path}.")
    if out_path.resolve() == fp32_path.resolve():
        raise UserInputError(f"the INT8 output {out_path} would overwrite its FP32 source; choose another name.")
    side_path = sidecar_path_for(out_path)
    check_writable(out_path, force)
    check_writable(side_path, force)
    files = cal.calibration_files(calib_images)  # clear errors for a missing/empty folder, before any work

    fp32_bytes = fp32_path.read_bytes()
    try:
        proto = onnx.load_from_string(fp32_bytes)
    except Exception as exc:  # noqa: BLE001
        raise UserInputError(f"cannot read {fp32_path} as ONNX: {exc}") from exc
    base_side = Sidecar.for_artifact(fp32_path)
    precision = base_side.export.precision if base_side is not None else "fp32"
    if precision != "fp32" or any(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 for i in proto.graph.input) \
            or any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer):
        raise UserInputError(f"{fp32_path} is a {precision if precision != 'fp32' else 'float16'} graph; quantize "
                             "the FP32 export (export without --fp16).")
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node):
        raise UserInputError(f"{fp32_path} is already quantized (it has QuantizeLinear/DequantizeLinear nodes).")
    io = io or (base_side.io if base_side is not None else None)
    if io is None:
        io = "uint8" if proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8 else "float01"
    if io not in IO_MODES:
        raise UserInputError(f"unknown io {io!r}; choose one of {', '.join(IO_MODES)}.")
    min_size = base_side.min_size if base_side is not None else 1
    node_names = [n.name for n in proto.graph.node]
    wanted = _check_exclude(exclude, node_names)
    if wanted and (len(set(node_names)) != len(node_names) or any(not n for n in node_names)):
        raise UserInputError(f"{fp32_path} has unnamed or duplicate node names; excluding nodes needs unique "
                             "names (export it with edgesr, or name its nodes).")

    warn: list[str] = []
    calib_files, select_files, hold_files = cal.split_files(
        files, max(holdout_count, val_count) if max_drop_db is not None else holdout_count,
        max(select_count, val_count) if max_drop_db is not None else select_count)
    if len(files) < 3:
        warn.append(f"only {len(files)} calibration image(s): calibration, selection and held-out crops share "
                    "images, so the reported PSNR is optimistic.")
    say(f"calibration: {calib_count} crops of {calib_size} px from {len(calib_files)} images")
    crops = cal.load_crops(calib_files, calib_count, calib_size, seed=seed, min_size=min_size)
    picks = cal.load_crops(select_files, select_count, calib_size, seed=seed + 2, min_size=min_size)
    held = cal.load_crops(hold_files, holdout_count, holdout_size, seed=seed + 1, min_size=min_size)

    from edgesr.export.verify import to_model_input

    in_value = proto.graph.input[0]
    in_type = "tensor(uint8)" if in_value.type.tensor_type.elem_type == onnx.TensorProto.UINT8 else "tensor(float)"
    feeds = [{in_value.name: to_model_input(x, io, in_type)} for _, x in crops]
    tensors = cal.float_activations(proto)
    stats = cal.collect_stats(proto, feeds, tensors, histograms=method != "minmax", threads=threads)
    image_tensor, image_range = _image_tensor(proto, io)
    exact = {image_tensor: image_range} if image_tensor else None
    ranges = cal.compute_ranges(stats, method, symmetric=qt.activation_symmetric, percentile=percentile, exact=exact)

    with tempfile.TemporaryDirectory(prefix="edgesr-int8-") as tmp:
        tmpdir = Path(tmp)
        cache = cal.write_ort_cache(ranges, tmpdir / "ranges.json")
        src = tmpdir / "fp32.onnx"
        src.write_bytes(fp32_bytes)
        counter = [0]

        def build(exclude_nodes: Sequence[str] = ()) -> bytes:
            from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

            counter[0] += 1
            dst = tmpdir / f"q{counter[0]}.onnx"
            with _quiet_ort_quantizer():
                try:
                    quantize_static(str(src), str(dst), None, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                                    nodes_to_exclude=list(exclude_nodes),
                                    calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(cache),
                                    **qt.ort_options())
                except Exception as exc:  # noqa: BLE001 - ORT raises plain exceptions
                    raise ExportError(f"ONNX Runtime's quantizer failed on {fp32_path.name}: {exc}") from exc
            data = dst.read_bytes()
            dst.unlink()
            return data

        select = _Evaluator(proto, picks, io, threads)
        holdout = _Evaluator(proto, held, io, threads)
        scale = base_side.scale if base_side is not None else \
            holdout.refs[0].shape[-1] // holdout.batches[0].shape[-1]
        drop = _DropMeter(proto, io, threads, select_files, hold_files, val_count, min_size, scale, val_images) \
            if max_drop_db is not None else None
        # the search's measure and its threshold: PSNR vs FP32 on the selection crops >= psnr_budget_db, or
        # Y-PSNR on the validation images >= FP32's minus max_drop_db
        measure = drop.select_psnr if drop is not None else select.psnr
        threshold = drop.fp32_select - max_drop_db if drop is not None else psnr_budget_db
        undo_tolerance = 0.005 if drop is not None else 0.05
        say("quantizing all nodes")
        full = build()
        full_psnr = holdout.psnr(full)
        sensitivity: list[SensitivityEntry] = []
        steps: list[ExclusionStep] = []
        excluded: list[str] = []
        final = full
        if wanted == "auto":
            current = measure(full)
            if current < threshold and max_excluded > 0:
                allowed = set(qt.op_types) if qt.op_types is not None else None
                candidates = [n.name for n in proto.graph.node
                              if n.op_type not in _INHERITING_OPS and n.name in _quantizable(proto)
                              and (allowed is None or n.op_type in allowed)]
                say(f"all nodes quantized: {current:.3f} dB on selection images < budget {threshold:.3f} dB; "
                    f"measuring {len(candidates)} nodes one at a time")
                sensitivity = _sensitivity(onnx.load_from_string(full), proto, candidates, select, threads)
                sensitivity.sort(key=lambda e: e.psnr_db)
                # forward: exclude the most damaging nodes cumulatively (an exclusion often pays off only
                # together with its neighbours', which share the quantized tensors, so one that gains
                # nothing is kept; one that costs more than 0.05 dB is undone), until the budget is met
                trial_set: list[str] = []
                tried = 0
                for entry in sensitivity:
                    if current >= threshold or len(excluded) >= max_excluded or tried >= 2 * max_excluded:
                        break
                    if math.isinf(entry.psnr_db):  # quantizing it alone changes nothing
                        continue
                    tried += 1
                    trial_set = excluded + [entry.node]
                    model = build(trial_set)
                    value = measure(model)
                    keep = value >= current - undo_tolerance
                    steps.append(ExclusionStep(entry.node, value, keep))
                    say(f"exclude {entry.node} ({entry.op_type}): {value:.2f} dB" + ("" if keep else " (undone)"))
                    if keep:
                        excluded, current, final = trial_set, value, model
                # backward: quantize again the excluded nodes the budget does not need (least damaging first)
                if current >= threshold:
                    for node in list(reversed(excluded)):
                        rest = [n for n in excluded if n != node]
                        model = build(rest)
                        value = measure(model)
                        keep_quantized = value >= threshold
                        steps.append(ExclusionStep(f"-{node}", value, keep_quantized))
                        if keep_quantized:
                            say(f"quantize {node} again: {value:.2f} dB (still within budget)")
                            excluded, current, final = rest, value, model
                if current < threshold:
                    what = (f"Y-PSNR drop budget {max_drop_db:g} dB not met with {len(excluded)} nodes in float "
                            f"(drop {drop.fp32_select - current:.3f} dB on the validation images)" if drop is not None
                            else f"PSNR budget {psnr_budget_db:g} dB not met with {len(excluded)} nodes in float "
                                 f"({current:.2f} dB on selection crops)")
                    warn.append(f"{what}; raise max_excluded (--int8-max-float) or the budget.")
        elif wanted:
            excluded = list(wanted)
            final = build(excluded)
        selection_psnr = select.psnr(final) if wanted == "auto" else None
        drops = drop.report(final) if drop is not None else None
        values = holdout.measure(final)
        holdout_scale = holdout.refs[0].shape[-1] // holdout.batches[0].shape[-1]
    psnrs = [p for p, _ in values]
    mean_psnr = _pooled_psnr(psnrs)
    if any(not math.isfinite(d) for _, d in values):
        raise ExportError("the INT8 graph produces non-finite outputs on the held-out crops.")

    qproto = onnx.load_from_string(final)
    _set_metadata(qproto, "edgesr.precision", "int8")
    data = qproto.SerializeToString()
    calibration = {
        "folder": str(Path(calib_images)), "files": len(calib_files), "crops": len(crops), "crop_size": calib_size,
        "seed": seed, "holdout_files": len(hold_files), "holdout_crops": len(held), "holdout_size": holdout_size,
        "select_files": len(select_files), "select_crops": len(picks), "method": method,
        "percentile": percentile if method == "percentile" else None,
        "image_tensor_range": list(image_range) if image_tensor else None,
        "output_scale": holdout_scale,
    }
    result = QuantizeResult(
        path=out_path, sidecar_path=side_path, target=target, method=method, per_channel=per_channel,
        excluded=excluded, psnr_db=mean_psnr, min_psnr_db=min(psnrs), max_abs_diff=max(d for _, d in values),
        full_int8_psnr_db=full_psnr, selection_psnr_db=selection_psnr,
        psnr_budget_db=psnr_budget_db if wanted == "auto" and drop is None else None, max_drop_db=max_drop_db,
        drops=drops, sensitivity=sensitivity, steps=steps,
        calibration=calibration, qdq_counts=_qdq_counts(qproto), warnings=warn)
    sidecar = _int8_sidecar(base_side, proto, qproto, out_path, fp32_path, fp32_bytes, io, qt, result, held, values,
                            threads)
    result.sidecar = sidecar
    sidecar.write({out_path: data}, force=force)
    result.seconds = time.perf_counter() - started
    for w in warn:
        log.warning("%s", w)
    return result


def _sensitivity(qdq: "onnx.ModelProto", fp32: "onnx.ModelProto", candidates: Sequence[str], select: _Evaluator,
                 threads: int) -> list[SensitivityEntry]:
    """PSNR vs FP32 with only each candidate quantized, from one switchable graph (`switch_graph`)."""
    from edgesr.export.verify import create_session

    graph, gate_of = switch_graph(qdq, fp32)
    gates = node_gates(fp32, gate_of)
    session = create_session(graph, threads=threads)
    op_of = {n.name: n.op_type for n in fp32.graph.node}
    out = []
    for name in candidates:
        vector = np.zeros(len(gate_of), np.float32)
        vector[gates.get(name, [])] = 1.0
        value = select.psnr(session, {GATES_INPUT: vector}) if gates.get(name) else math.inf
        out.append(SensitivityEntry(name, op_of[name], value))
    return out


def _quantizable(model: "onnx.ModelProto") -> set[str]:
    """Names of the nodes ONNX Runtime's QDQ quantizer handles (op types in its registries)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    ops = set(QDQRegistry) | set(QLinearOpsRegistry)
    return {n.name for n in model.graph.node if n.op_type in ops}


def _set_metadata(model: "onnx.ModelProto", key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    model.metadata_props.add(key=key, value=value)


def _int8_sidecar(base: "Sidecar | None", fp32: "onnx.ModelProto", qproto: "onnx.ModelProto", out_path: Path,
                  fp32_path: Path, fp32_bytes: bytes, io: str, qt: QuantTarget, result: QuantizeResult,
                  held: Sequence[tuple[str, np.ndarray]], values: Sequence[tuple[float, float]],
                  threads: int) -> "Sidecar":
    """The FP32 artifact's sidecar with this artifact's file, precision, parity and quantization details."""
    import onnxruntime

    from edgesr.artifacts.sidecar import (
        ArtifactFile,
        ExportInfo,
        ParityEntry,
        ParityInfo,
        Sidecar,
        TensorSpec,
    )
    from edgesr.export.graph import initializer_stats, op_counts, tensor_dtype_name, value_shape

    if base is not None:
        side = base.copy()
    else:  # an ONNX file without a sidecar: the fields it implies (`scale` measured on the held-out crops)
        rng = [0.0, 1.0 if io == "float01" else 255.0]
        inputs = [TensorSpec(name=v.name, dtype=tensor_dtype_name(v.type.tensor_type.elem_type),
                             shape=value_shape(v), value_range=rng) for v in qproto.graph.input]
        outputs = [TensorSpec(name=v.name, dtype=tensor_dtype_name(v.type.tensor_type.elem_type),
                              shape=value_shape(v), value_range=rng, clamped=io == "uint8")
                   for v in qproto.graph.output]
        side = Sidecar(artifact=ArtifactFile(file=out_path.name, format="onnx"),
                       scale=int(result.calibration["output_scale"]), inputs=inputs, outputs=outputs,
                       export=ExportInfo(exporter="unknown", opset=_opset(fp32)))
        side.model.name = {p.key: p.value for p in fp32.metadata_props}.get("edgesr.model") or "unknown"
    side.artifact = ArtifactFile(file=out_path.name, format="onnx")
    side.export.precision, side.export.fp16_io, side.export.io = "int8", False, io
    entries = [ParityEntry(height=int(x.shape[2]), width=int(x.shape[3]), image=name, max_abs_diff=d, psnr_db=p)
               for (name, x), (p, d) in zip(held, values)]
    side.parity = ParityInfo(
        reference=f"the FP32 ONNX graph {fp32_path.name} in ONNX Runtime (outputs clamped to the image range)",
        runtime=f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider, {threads} threads",
        entries=entries, max_abs_diff=result.max_abs_diff, min_psnr_db=result.min_psnr_db)
    n_init, init_bytes = initializer_stats(qproto)
    side.graph.nodes, side.graph.op_counts = len(qproto.graph.node), op_counts(qproto)
    side.graph.initializers, side.graph.initializer_bytes = n_init, init_bytes
    side.versions = {**side.versions, "onnxruntime": onnxruntime.__version__}
    side.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    side.blocks["quantization"] = to_jsonable({
        "target": qt.name, "description": qt.description, "format": "QDQ",
        "activations": f"{qt.activation_type} per-tensor, {'symmetric' if qt.activation_symmetric else 'asymmetric'}",
        "weights": f"int8 symmetric, {'per-channel (output channels)' if result.per_channel else 'per-tensor'}",
        "bias": "int32" if qt.quantize_bias else "float32",
        "op_types": list(qt.op_types) if qt.op_types else "all supported by onnxruntime.quantization",
        "conv_outputs_quantized": qt.quantize_conv_outputs,
        "method": result.method, "calibration": result.calibration,
        "excluded_nodes": result.excluded, "psnr_vs_fp32_db": result.psnr_db,
        "min_psnr_vs_fp32_db": result.min_psnr_db, "all_quantized_psnr_vs_fp32_db": result.full_int8_psnr_db,
        "psnr_budget_db": result.psnr_budget_db, "selection_psnr_db": result.selection_psnr_db,
        "max_drop_db": result.max_drop_db, "y_psnr_drop": result.drops,
        "sensitivity": [asdict(e) for e in result.sensitivity],
        "search": [asdict(s) for s in result.steps],
        "qdq": result.qdq_counts,
        "source": {"file": fp32_path.name, "sha256": sha256_bytes(fp32_bytes)},
        "tool": "onnxruntime.quantization.quantize_static (QDQ), ranges from edgesr.export.calibration",
    })
    return side


def _opset(model: "onnx.ModelProto") -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
