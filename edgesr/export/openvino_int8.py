"""INT8 OpenVINO IR by NNCF post-training quantization, calibrated on real LR crops, within a Y-PSNR budget.

`quantize_ir` takes the FP32 ``openvino.Model`` of `edgesr.export.openvino.export_openvino` and:

1. calibrates on crops of real LR images (`edgesr.export.calibration`: the calibration files; crops of
   96 px, 32 by default) with ``nncf.quantize`` (CPU target, per-channel weights, the activation range
   estimator of the chosen method, fast bias correction);
2. measures the Y-PSNR of the FP32 and the INT8 model on the validation set
   (`edgesr.export.int8_validation`: images held out from calibration, MATLAB bicubic LR);
3. when the drop exceeds the budget (``max_drop_db``, default `DEFAULT_MAX_DROP_DB`), runs
   ``nncf.quantize_with_accuracy_control`` with that validation function and budget: NNCF ranks the
   quantizer groups by how much reverting each one restores and reverts them (keeps those layers in float)
   one at a time, at most ``max_float`` (default 10), until the budget holds;
4. reports the layers left in float (Convolutions whose weights are not quantized), the drop, and which
   budget was met, for the artifact's sidecar (``quantization`` block).

Method names map onto NNCF's range estimators: ``minmax`` -> MINMAX, ``percentile`` -> MEAN_QUANTILE,
``mse`` -> HISTOGRAM (NNCF's histogram estimator picks the range that minimises the quantization error);
``entropy`` has no NNCF counterpart. None keeps NNCF's default.
"""
from __future__ import annotations

import contextlib
import io as _io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import ExportError, UserInputError

log = logging.getLogger(__name__)

DEFAULT_MAX_DROP_DB = 0.10
DEFAULT_MAX_FLOAT = 10
NNCF_METHODS = ("minmax", "percentile", "mse")


@dataclass
class OpenVINOQuantizeResult:
    """What `quantize_ir` made and measured. PSNRs: mean Y-PSNR on the validation set (dB)."""

    model: Any
    method: str | None
    max_drop_db: float
    max_float: int
    fp32_psnr_db: float
    int8_psnr_db: float
    plain_int8_psnr_db: float           # nncf.quantize alone, every layer INT8
    accuracy_control: bool              # quantize_with_accuracy_control ran
    float_layers: list[str] = field(default_factory=list)   # convolutions with float weights
    reverted_ops: list[str] = field(default_factory=list)   # what NNCF's accuracy control put back in float
    fake_quantize: int = 0
    quantized_convs: int = 0
    float_convs: int = 0
    calibration: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    nncf_version: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def drop_db(self) -> float:
        return self.fp32_psnr_db - self.int8_psnr_db

    @property
    def within_budget(self) -> bool:
        return self.drop_db <= self.max_drop_db + 1e-9

    def summary(self) -> list[str]:
        cal, val = self.calibration, self.validation
        lines = [f"int8 (NNCF {self.nncf_version}, CPU, {self.method or 'NNCF default'} ranges); calibrated on "
                 f"{cal.get('crops')} crops of {cal.get('crop_size')} px from {cal.get('files')} images in "
                 f"{cal.get('folder')}",
                 f"validation ({val.get('images')} {val.get('source')}): "
                 f"FP32 {self.fp32_psnr_db:.3f} dB, all layers INT8 {self.plain_int8_psnr_db:.3f} dB "
                 f"(drop {self.fp32_psnr_db - self.plain_int8_psnr_db:.3f} dB)"]
        if self.accuracy_control:
            kept = self.reverted_ops or self.float_layers
            lines.append(f"accuracy control (budget {self.max_drop_db:g} dB, at most {self.max_float} iterations): "
                         f"{len(kept)} operation(s) back in float" + (f": {', '.join(kept[:10])}" + (
                             " ..." if len(kept) > 10 else "") if kept else ""))
        lines.append(f"result: Y-PSNR {self.int8_psnr_db:.3f} dB, drop {self.drop_db:.3f} dB "
                     f"({'within' if self.within_budget else 'over'} the {self.max_drop_db:g} dB budget); "
                     f"{self.quantized_convs} INT8 convolutions, {self.float_convs} float, "
                     f"{self.fake_quantize} FakeQuantize ({self.seconds:.0f} s)")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines

    def block(self) -> dict[str, Any]:
        from edgesr.utils.jsonable import to_jsonable

        return to_jsonable({
            "tool": f"nncf {self.nncf_version} " + ("quantize_with_accuracy_control" if self.accuracy_control
                                                     else "quantize"),
            "target": "openvino-cpu", "format": "FakeQuantize (OpenVINO IR)",
            "weights": "int8 symmetric per-channel", "activations": "uint8/int8 per-tensor (NNCF CPU preset)",
            "method": self.method or "nncf default", "calibration": self.calibration, "validation": self.validation,
            "max_drop_db": self.max_drop_db, "max_float": self.max_float,
            "fp32_val_psnr_db": self.fp32_psnr_db, "int8_val_psnr_db": self.int8_psnr_db,
            "all_int8_val_psnr_db": self.plain_int8_psnr_db, "val_drop_db": self.drop_db,
            "within_budget": self.within_budget, "float_layers": self.float_layers,
            "reverted_ops": self.reverted_ops,
            "quantized_convs": self.quantized_convs, "float_convs": self.float_convs,
            "fake_quantize": self.fake_quantize,
        })


def _range_estimator(nncf: Any, method: str | None) -> Any:
    if method is None:
        return None
    if method not in NNCF_METHODS:
        raise UserInputError(f"--calib-method {method!r} is not available for OpenVINO/NNCF; choose one of "
                             f"{', '.join(NNCF_METHODS)}.")
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet as Sets

    estimator = {"minmax": Sets.MINMAX, "percentile": Sets.MEAN_QUANTILE, "mse": Sets.HISTOGRAM}[method]
    return AdvancedQuantizationParameters(activations_range_estimator_params=estimator)


def conv_precisions(ov_model: Any) -> tuple[list[str], list[str], int]:
    """(INT8 convolutions, float convolutions, FakeQuantize count) of an IR: a Convolution is INT8 when its
    weights pass through a FakeQuantize (or are stored as int8)."""
    int8, floating, fq = [], [], 0
    for op in ov_model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            fq += 1
        if kind not in ("Convolution", "GroupConvolution"):
            continue
        src = op.input_value(1).get_node()
        seen = 0
        while src is not None and seen < 6:
            name = src.get_type_name()
            if name == "FakeQuantize" or (name == "Constant" and str(src.get_element_type()) in ("i8", "u8",
                                                                                                "<Type: 'int8_t'>")):
                int8.append(op.get_friendly_name())
                break
            if name == "Constant" or src.get_input_size() == 0:
                floating.append(op.get_friendly_name())
                break
            src = src.input_value(0).get_node()
            seen += 1
        else:
            floating.append(op.get_friendly_name())
    return int8, floating, fq


class _Capture(logging.Handler):
    """Keeps NNCF's log messages (the operations it reverted to float are only reported there)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def reverted(self) -> list[str]:
        """The operations NNCF's accuracy control left in float (its final report)."""
        for msg in reversed(self.messages):
            if "reverted back to the floating-point precision" in msg:
                return [line.strip() for line in msg.split(":", 1)[1].splitlines() if line.strip()]
        return []


@contextlib.contextmanager
def _quiet(capture: _Capture) -> Any:
    """NNCF draws progress bars on stdout/stderr and logs each step at INFO; keep them out of edgesr's output
    (into `capture`; edgesr's own log at DEBUG shows them)."""
    nncf_log = logging.getLogger("nncf")
    level, propagate = nncf_log.level, nncf_log.propagate
    handlers = list(nncf_log.handlers)
    if not log.isEnabledFor(logging.DEBUG):
        for h in handlers:
            nncf_log.removeHandler(h)
        nncf_log.propagate = False
    nncf_log.setLevel(logging.INFO)
    nncf_log.addHandler(capture)
    sink = _io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        nncf_log.removeHandler(capture)
        for h in handlers:
            if h not in nncf_log.handlers:
                nncf_log.addHandler(h)
        nncf_log.setLevel(level)
        nncf_log.propagate = propagate


def quantize_ir(ov_model: Any, io: str, budget: Any, *, calib_images: str | Path | None = None,
                calib_count: int | None = None, calib_size: int = 96, threads: int = 2, min_size: int = 1,
                scale: int = 4, val_count: int = 8, subset_size: int | None = None, accuracy_control: bool = True,
                seed: int = 0) -> OpenVINOQuantizeResult:
    """NNCF INT8 of the FP32 IR `ov_model` (I/O convention `io`) within `budget` (`Int8Budget`; see the
    module docstring). `accuracy_control=False` stops after plain ``nncf.quantize`` (the drop is measured
    and reported, not enforced)."""
    import nncf

    from edgesr.export import calibration as cal
    from edgesr.export.formats import default_calibration_folder
    from edgesr.export.int8_validation import dataset_validation_set, validation_set
    from edgesr.export.openvino import compile_cpu, sr_function
    from edgesr.export.verify import to_model_input

    started = time.perf_counter()
    budget.check(NNCF_METHODS)
    max_drop = DEFAULT_MAX_DROP_DB if budget.max_drop_db is None else float(budget.max_drop_db)
    max_float = DEFAULT_MAX_FLOAT if budget.max_float is None else int(budget.max_float)
    calib_count = 32 if calib_count is None else int(calib_count)
    folder = default_calibration_folder(calib_images)
    files = cal.calibration_files(folder)
    calib_files, _, hold_files = cal.split_files(files, val_count)
    warn: list[str] = []
    if len(files) < 3:
        warn.append(f"only {len(files)} calibration image(s): calibration and validation share images, so the "
                    "measured drop is optimistic.")
    crops = cal.load_crops(calib_files, calib_count, calib_size, seed=seed, min_size=min_size)
    val = validation_set(hold_files, scale, count=val_count, min_size=min_size) if budget.val_dataset is None else \
        dataset_validation_set(budget.val_dataset, scale, min_size=min_size)
    feeds = [to_model_input(x, io, "tensor(float)") for _, x in crops]
    advanced = _range_estimator(nncf, budget.method)
    common = dict(target_device=nncf.TargetDevice.CPU, subset_size=subset_size or len(feeds),
                  preset=nncf.QuantizationPreset.PERFORMANCE)

    def score(model: Any, items: Any = None) -> list[float]:
        compiled = model if hasattr(model, "create_infer_request") else compile_cpu(model, threads)
        return val.psnr_per_image(sr_function(compiled, io), items)

    fp32_psnr = float(np.mean(score(ov_model)))
    try:
        with _quiet(_Capture()):
            plain = nncf.quantize(ov_model.clone(), nncf.Dataset(feeds), advanced_parameters=advanced, **common)
    except Exception as exc:  # noqa: BLE001 - NNCF raises plain exceptions
        raise ExportError(f"NNCF quantization failed: {str(exc).strip()[:300]}") from exc
    plain_psnr = float(np.mean(score(plain)))
    final, final_psnr, controlled = plain, plain_psnr, False
    capture = _Capture()
    if accuracy_control and fp32_psnr - plain_psnr > max_drop and max_float > 0:
        from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

        def validate(compiled: Any, items: Any) -> tuple[float, list[float]]:
            values = score(compiled, items)  # NNCF counts the items this iterates
            return float(np.mean(values)), values

        val_items = list(val.pairs)

        def as_input(item: dict[str, Any]) -> np.ndarray:
            x01 = (item["lr"].astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
            return to_model_input(np.ascontiguousarray(x01), io, "tensor(float)")

        try:
            with _quiet(capture):
                final = nncf.quantize_with_accuracy_control(
                    ov_model.clone(), nncf.Dataset(feeds), nncf.Dataset(val_items, as_input), validate,
                    max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
                    advanced_quantization_parameters=advanced,
                    advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                        max_num_iterations=max_float, ranking_subset_size=len(val_items),
                        num_ranking_workers=1),
                    **common)
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"NNCF accuracy-controlled quantization failed: {str(exc).strip()[:300]}") from exc
        controlled = True
        final_psnr = float(np.mean(score(final)))
    int8_convs, float_convs, fq = conv_precisions(final)
    result = OpenVINOQuantizeResult(
        model=final, method=budget.method, max_drop_db=max_drop, max_float=max_float, fp32_psnr_db=fp32_psnr,
        int8_psnr_db=final_psnr, plain_int8_psnr_db=plain_psnr, accuracy_control=controlled,
        float_layers=float_convs, reverted_ops=capture.reverted(), fake_quantize=fq, quantized_convs=len(int8_convs),
        float_convs=len(float_convs),
        calibration={"folder": str(folder), "files": len(calib_files), "crops": len(crops), "crop_size": calib_size,
                     "seed": seed},
        validation=val.describe(), nncf_version=nncf.__version__, warnings=warn)
    if not result.within_budget:
        warn.append(f"INT8 budget not met: Y-PSNR drop {result.drop_db:.3f} dB > {max_drop:g} dB on the validation "
                    f"images with at most {max_float} layers in float; raise --int8-max-float or --int8-max-drop.")
    result.seconds = time.perf_counter() - started
    return result
