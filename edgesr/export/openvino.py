"""PyTorch SR model -> OpenVINO IR (``<name>.xml`` + ``<name>.bin``) + sidecar, verified in OpenVINO.

The pipeline of `export_openvino`:

1. check the options and that OpenVINO (and, for INT8, NNCF) is installed (`pip install edgesr[openvino]`),
   and that the outputs may be written, before any work;
2. export the model to FP32 ONNX with edgesr's ONNX exporter (folding, I/O convention, dynamic height/width;
   in a temporary folder) and convert it with ``openvino.convert_model``: the IR has the ONNX graph's
   dynamic batch, height and width;
3. FP32 IR: weights in float32. ``fp16``: the same IR with float16-compressed weights
   (``save_model(compress_to_fp16=True)``; OpenVINO decompresses them when it compiles, so the computation
   precision is still set by the inference precision hint). ``int8``: NNCF post-training quantization
   (`edgesr.export.openvino_int8`), calibrated on real LR crops, with layers kept in float chosen by measured
   Y-PSNR against a budget;
4. compile the IR on the CPU with the **f32** inference precision hint (OpenVINO would otherwise run bf16 on
   CPUs that have it, which moves the output by several 8-bit levels) and compare with PyTorch on crops of
   real images at the parity sizes (FP16: the compressed IR is compared with the FP32 IR too);
5. write ``<name>.xml``, ``<name>.bin`` and then the sidecar ``<name>.xml.json`` as one transaction.

Names: the default artifact name ends in ``_ov`` (``rlfn_x4_ov.xml``, ``rlfn_x4_fp16_ov.xml``,
``rlfn_x4_int8_ov.xml``), so the IR's ``.bin`` never takes the place of the ncnn ``rlfn_x4.bin`` in the same
folder; an explicit name whose ``.bin`` belongs to an ncnn artifact there is refused.

The sidecar's ``openvino`` block records the weights file, the input/output names, the weight precision, the
inference precision hint parity was measured with and OpenVINO's version. The runner
(`edgesr.runtimes.openvino_runner`) reads the compiled model's ``INFERENCE_PRECISION_HINT`` back, so every
result says whether it ran f32 or bf16.
"""
from __future__ import annotations

import copy
import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from edgesr.errors import ExportError, MissingDependencyError, UserInputError
from edgesr.export.ncnn import MobileExportResult
from edgesr.export.formats import Int8Options
from edgesr.export.onnx_export import ExportOptions

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

OPENVINO_EXTRA = "pip install edgesr[openvino]"
PARITY_HINT = "f32"


def _import(package: str, purpose: str) -> Any:
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise MissingDependencyError(f"{purpose} needs the Python package {package!r}, which is not installed "
                                     f"({exc}). Install it with: {OPENVINO_EXTRA}.") from exc


def import_openvino() -> Any:
    """The openvino package, or a MissingDependencyError naming the extra."""
    return _import("openvino", "OpenVINO export")


def import_nncf() -> Any:
    """The nncf package (OpenVINO INT8), or a MissingDependencyError naming the extra."""
    return _import("nncf", "OpenVINO INT8 export")


def compile_cpu(ov_model: Any, threads: int | None, hint: str = PARITY_HINT) -> Any:
    """`ov_model` (an ``openvino.Model`` or an .xml path) compiled for the CPU with the inference precision
    `hint` and `threads` (latency mode)."""
    ov = import_openvino()
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return ov.Core().compile_model(ov_model if not isinstance(ov_model, Path) else str(ov_model), "CPU", config)


def sr_function(compiled: Any, io: str) -> Callable[[np.ndarray], np.ndarray]:
    """float32 NCHW 0..1 -> float32 NCHW 0..1 through a compiled OpenVINO model with I/O convention `io`."""
    from edgesr.export.verify import from_model_output, to_model_input

    request = compiled.create_infer_request()

    def run(x01: np.ndarray) -> np.ndarray:
        request.infer({0: to_model_input(np.asarray(x01, np.float32), io, "tensor(float)")})
        return from_model_output(request.get_output_tensor(0).data.copy(), io)

    return run


@dataclass(frozen=True)
class OpenVINOConfig(Int8Options):
    """Options of ``--format openvino``: `int8` (NNCF post-training quantization) and its calibration and
    quality budget (see `edgesr.export.formats.Int8Budget` for the meaning of the fields shared by every
    INT8 path)."""

    int8: bool = False

    @property
    def name_suffix(self) -> str:
        return "_int8_ov" if self.int8 else "_ov"

    def prepare(self, options: ExportOptions) -> ExportOptions:
        """Validate against the common `options`; check OpenVINO (and NNCF) before any work."""
        import_openvino()
        if options.fp16_io:
            raise UserInputError("--fp16-io is not supported for --format openvino: the IR keeps float32 input and "
                                 "output (use --fp16 for float16-compressed weights).")
        budget_flags = {"calib_images": "--calib-images", "calib_count": "--calib-count",
                        "calib_method": "--calib-method", "int8_max_drop": "--int8-max-drop",
                        "int8_max_float": "--int8-max-float", "int8_val": "--int8-val"}
        if not self.int8:
            given = [flag for key, flag in budget_flags.items() if getattr(self, key) is not None]
            if given:
                raise UserInputError(f"{given[0]} applies to INT8 exports: add --int8.")
            return options
        if options.half:
            raise UserInputError("INT8 and FP16 exclude each other: INT8 is quantized from the FP32 model. Drop --fp16.")
        import_nncf()
        from edgesr.export.openvino_int8 import NNCF_METHODS

        self.budget().check(NNCF_METHODS)
        from edgesr.export.formats import default_calibration_folder

        default_calibration_folder(self.calib_images)  # a missing/empty folder fails now
        return options


def _ov_op_counts(ov_model: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op in ov_model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Parameter", "Result", "Constant"):
            continue
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _refuse_ncnn_bin(xml: Path) -> None:
    """The IR's ``.bin`` must not be an ncnn artifact's weights (``<stem>.param`` beside it)."""
    param = xml.with_suffix(".param")
    if param.exists():
        raise UserInputError(f"{xml.with_suffix('.bin').name} in {xml.parent} holds the weights of the ncnn artifact "
                             f"{param.name}; choose another --name for the OpenVINO IR (the default ends in _ov).")


def export_openvino(model: "nn.Module", path: str | Path, options: ExportOptions | None = None,
                    config: OpenVINOConfig | None = None, **kw: Any) -> "OpenVINOExportResult":
    """Export an edgesr SR model to OpenVINO IR: ``path`` (``.xml``), the ``.bin`` beside it and the sidecar
    ``<name>.xml.json``.

    Uses from `options`: io, fp16 (float16-compressed weights), reparam*, min/opt/max shape (the sidecar's
    recommended profile), opset/exporter (of the intermediate ONNX), parity_sizes / parity_dir / max_abs_diff /
    fp16_min_psnr, threads (OpenVINO threads for parity and calibration), force. `config`: INT8 and its budget;
    `kw` go to `edgesr.export.openvino_int8.quantize_ir` (e.g. ``holdout_count``, ``accuracy_control``).
    Raises UserInputError for bad options, MissingDependencyError without openvino/nncf, ExportError when the
    IR does not match PyTorch; nothing is written then. The model is not modified.
    """
    from torch import nn

    from edgesr.artifacts.sidecar import ArtifactFile, GraphStats, Sidecar, sidecar_path_for
    from edgesr.export.ncnn import base_versions, check_outputs, parity_entries, parity_info
    from edgesr.export.onnx_export import export_onnx
    from edgesr.utils.hashing import sha256_bytes

    options = options or ExportOptions()
    config = config or OpenVINOConfig()
    path = Path(path)
    if path.suffix.lower() != ".xml":
        raise UserInputError(f"the OpenVINO artifact path must end in .xml (the .bin goes beside it), got {path}.")
    if not isinstance(model, nn.Module):
        raise UserInputError(f"expected a torch.nn.Module, got {type(model).__name__}.")
    options = config.prepare(options)
    if kw and not config.int8:
        raise UserInputError(f"unknown option(s) for the OpenVINO format: {', '.join(sorted(kw))}.")
    ov = import_openvino()
    bin_path, side_path = path.with_suffix(".bin"), sidecar_path_for(path)
    check_outputs([path, bin_path, side_path], options.force)
    _refuse_ncnn_bin(path)

    reference = copy.deepcopy(model).float().cpu().eval()
    warn: list[str] = []
    quant: Any = None
    with tempfile.TemporaryDirectory(prefix="edgesr-openvino-") as tmp:
        tmpdir = Path(tmp)
        onnx_path = tmpdir / (path.stem + ".onnx")
        onnx_result = export_onnx(model, onnx_path, replace(options, fp16=False, fp16_io=False, force=True,
                                                           parity_sizes=tuple(options.parity_sizes)[:1]))
        base = onnx_result.sidecar
        io = base.export.io or "float01"
        try:
            ov_model = ov.convert_model(str(onnx_path))
        except Exception as exc:  # noqa: BLE001 - the converter raises plain exceptions
            raise ExportError(f"openvino.convert_model failed on the ONNX export: {str(exc).strip()[:300]}") from exc
        if len(ov_model.inputs) != 1 or len(ov_model.outputs) != 1:
            raise ExportError(f"the IR has {len(ov_model.inputs)} inputs and {len(ov_model.outputs)} outputs; "
                              "edgesr exports one image in and one image out.")
        xml32 = tmpdir / "fp32.xml"
        ov.save_model(ov_model, str(xml32), compress_to_fp16=False)
        final = xml32
        run16 = None
        run32 = sr_function(compile_cpu(xml32, options.threads), io)
        if options.half:
            final = tmpdir / "fp16.xml"
            ov.save_model(ov_model, str(final), compress_to_fp16=True)
            run16 = sr_function(compile_cpu(final, options.threads), io)
        elif config.int8:
            from edgesr.export.openvino_int8 import quantize_ir

            quant = quantize_ir(ov_model, io, config.budget(), calib_images=config.calib_images,
                                calib_count=config.calib_count, threads=options.threads,
                                min_size=base.min_size, scale=base.scale, **kw)
            final = tmpdir / "int8.xml"
            ov.save_model(quant.model, str(final), compress_to_fp16=False)
            warn.extend(quant.warnings)
        run_final = run32 if final == xml32 else sr_function(compile_cpu(final, options.threads), io)
        if config.int8:  # parity of INT8 vs PyTorch is its quantization error: recorded, not a gate
            entries = parity_entries(reference, options.parity_sizes, replace(options, max_abs_diff=255.0),
                                     "openvino", run_final)
        else:
            entries = parity_entries(reference, options.parity_sizes, options, "openvino", run32, run16)
        xml_bytes, bin_bytes = final.read_bytes(), final.with_suffix(".bin").read_bytes()
        final_model = ov.Core().read_model(str(final))

    precision = "int8" if config.int8 else ("fp16" if options.half else "fp32")
    side: Sidecar = base.copy()
    side.artifact = ArtifactFile(file=path.name, format="openvino")
    side.export.exporter = "openvino.convert_model"
    side.export.exporter_note = (f"edgesr's ONNX export ({base.export.exporter}, opset {base.export.opset}) converted "
                                 "by OpenVINO" + ("; float16-compressed weights" if options.half else "")
                                 + ("; INT8 by NNCF post-training quantization" if config.int8 else ""))
    side.export.precision, side.export.fp16_io = precision, False
    version = ov.get_version()
    side.parity = parity_info(entries, f"OpenVINO {version} CPU, INFERENCE_PRECISION_HINT {PARITY_HINT}, "
                                       f"{options.threads} threads" + (" (fp16 weights vs the fp32 IR)"
                                                                       if options.half else ""))
    counts = _ov_op_counts(final_model)
    side.graph = GraphStats(nodes=sum(counts.values()), op_counts=counts, nodes_exported=base.graph.nodes,
                            op_counts_exported=base.graph.op_counts, initializers=base.graph.initializers,
                            initializer_bytes=len(bin_bytes))
    side.versions = base_versions(openvino=str(version), onnx_exporter=base.export.exporter,
                                  **({"nncf": quant.nncf_version} if quant is not None else {}))
    inp, out = final_model.inputs[0], final_model.outputs[0]
    side.blocks["openvino"] = {
        "xml": path.name,
        "bin": {"file": bin_path.name, "bytes": len(bin_bytes), "sha256": sha256_bytes(bin_bytes)},
        "input": inp.get_any_name(),
        "output": out.get_any_name(),
        "weights": {"fp32": "f32", "fp16": "f16 (compressed; decompressed when compiled)",
                    "int8": "int8 (NNCF FakeQuantize, weights compressed)"}[precision],
        "inference_precision_hint": PARITY_HINT,
        "note": "compile with INFERENCE_PRECISION_HINT f32 to reproduce the parity; bf16 is faster on CPUs with "
                "AVX512-BF16/AMX and moves the output by a few 8-bit levels",
        "dynamic_shape": True,
    }
    if quant is not None:
        side.blocks["quantization"] = quant.block()
    side.write({path: xml_bytes, bin_path: bin_bytes}, force=options.force, roles={bin_path.name: "weights"})
    log.info("wrote %s, %s and %s", path, bin_path, side_path)
    return OpenVINOExportResult(path=path, sidecar_path=side_path, sidecar=side,
                                reparam_report=onnx_result.reparam_report, warnings=warn,
                                files=[path, bin_path, side_path], details=side.blocks["openvino"], quantize=quant)


@dataclass
class OpenVINOExportResult(MobileExportResult):
    """What `export_openvino` wrote and measured (`quantize`: the INT8 report, or None)."""

    quantize: Any = None

    def summary(self) -> list[str]:
        lines = super().summary()
        if self.quantize is not None:
            wrote = [i for i, line in enumerate(lines) if line.startswith("wrote ")]
            at = wrote[0] if wrote else len(lines)
            lines[at:at] = self.quantize.summary()
        return lines
