"""INT8 for TensorRT: explicit quantization, i.e. Q/DQ nodes in the ONNX (TensorRT 11 has no calibrator).

`edgesr export --format trt --int8` uses the project's `edgesr.export.quantize.quantize_onnx(...,
target="tensorrt")` when that module is installed (see `pipeline.quantize_artifact`); `quantize_for_tensorrt`
is the minimal fallback of this package, with ONNX Runtime's `quantize_static`:
QDQ format, signed int8 activations and weights, symmetric (zero point 0, as TensorRT requires), weights
per output channel, biases left in float (TensorRT does not take int32 DequantizeLinear), percentile
calibration on crops of real images. By default only Conv inputs are quantized (TensorRT's recommended placement: Q/DQ
in front of the layers that run in INT8; elementwise, Resize and Sigmoid stay in float).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edgesr.errors import ExportError, UserInputError

log = logging.getLogger(__name__)

DEFAULT_CROP = 128
DEFAULT_MAX_IMAGES = 32


@dataclass
class QuantizeReport:
    path: Path
    implementation: str
    calibration_images: int
    crop: int
    method: str
    op_types: list[str]
    excluded_nodes: list[str] = field(default_factory=list)
    qdq_nodes: int = 0

    def describe(self) -> str:
        excl = f", excluded {', '.join(self.excluded_nodes)}" if self.excluded_nodes else ""
        return (f"INT8 Q/DQ ({self.implementation}): {self.qdq_nodes} Q/DQ nodes on {', '.join(self.op_types)} "
                f"inputs, symmetric int8, per-channel weights, {self.method} calibration on "
                f"{self.calibration_images} crop(s) of {self.crop}px{excl}")


def calibration_arrays(folder: str | Path, io: str, *, crop: int = DEFAULT_CROP, max_images: int = DEFAULT_MAX_IMAGES,
                       min_size: int = 1, dtype: Any = np.float32) -> list[np.ndarray]:
    """Centre crops of the images in `folder` in the model's input convention, all of one size (at most
    `crop`, at most the smallest image; ONNX Runtime's histogram calibrators need equal shapes)."""
    from edgesr.data import find_images, read_image
    from edgesr.inference.tiling import pad_to

    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"--calib-images folder not found: {folder}")
    paths = find_images(folder)[:max_images]
    if not paths:
        raise UserInputError(f"no images in {folder} for INT8 calibration (PNG/JPEG/BMP/TIFF/WebP).")
    images = [read_image(p) for p in paths]
    side = min([crop] + [min(img.shape[:2]) for img in images])
    arrays = []
    for img in images:
        h, w = img.shape[:2]
        y0, x0 = (h - side) // 2, (w - side) // 2
        x = img[y0:y0 + side, x0:x0 + side].transpose(2, 0, 1)[None]
        if side < min_size:
            x = pad_to(x, min_size, min_size)
        if io == "uint8":
            arrays.append(np.ascontiguousarray(x.astype(np.uint8)))
        else:
            scale = 1.0 / 255.0 if io == "float01" else 1.0
            arrays.append(np.ascontiguousarray((x.astype(np.float32) * scale).astype(dtype)))
    return arrays


class _Reader:
    """onnxruntime.quantization CalibrationDataReader over a list of arrays."""

    def __init__(self, name: str, arrays: Sequence[np.ndarray]) -> None:
        self.name = name
        self.arrays = list(arrays)
        self._it: Iterator[np.ndarray] = iter(self.arrays)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self.name: x}

    def rewind(self) -> None:
        self._it = iter(self.arrays)


def _conv_boundary_nodes(model: Any) -> list[str]:
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    return [convs[0], convs[-1]] if len(convs) > 2 else []  # a 2-conv net would keep nothing quantized


def quantize_for_tensorrt(fp32_path: str | Path, out_path: str | Path, calib_images: str | Path, *, io: str = "float01",
                          op_types: Sequence[str] = ("Conv",), exclude: Sequence[str] = (),
                          exclude_boundary_convs: bool = False, crop: int = DEFAULT_CROP,
                          max_images: int = DEFAULT_MAX_IMAGES, min_size: int = 1, method: str = "percentile",
                          percentile: float = 99.99) -> QuantizeReport:
    """Write a Q/DQ INT8 copy of the FP32 ONNX `fp32_path` to `out_path` for TensorRT (see module doc).

    `exclude`: node names kept in float; `exclude_boundary_convs` also keeps the first and last Conv in float.
    `method`: "percentile" (activation ranges clipped at `percentile`; measured on RLFN x4 it loses ~3 dB less
    than "minmax") or "minmax". Raises UserInputError for bad inputs, ExportError when
    quantization fails.
    """
    import onnx

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if not fp32_path.is_file():
        raise UserInputError(f"ONNX file not found: {fp32_path}")
    model = onnx.load(str(fp32_path))
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        raise UserInputError(f"{fp32_path.name} is already quantized (it has Q/DQ nodes).")
    elem = model.graph.input[0].type.tensor_type.elem_type
    if elem == onnx.TensorProto.FLOAT16 or any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        raise UserInputError("INT8 quantization starts from the FP32 ONNX, not an FP16 one: drop --fp16 with --int8 "
                             "(layers left unquantized then run in FP32 in the strongly typed engine).")
    excluded = list(exclude) + (_conv_boundary_nodes(model) if exclude_boundary_convs else [])
    dtype = np.float16 if elem == onnx.TensorProto.FLOAT16 else np.float32
    arrays = calibration_arrays(calib_images, io, crop=crop, max_images=max_images, min_size=min_size, dtype=dtype)

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise UserInputError(f"unknown calibration method {method!r}; use one of {', '.join(methods)}.")
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
             "DedicatedQDQPair": False}
    if method == "percentile":
        extra["CalibPercentile"] = float(percentile)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        quantize_static(str(fp32_path), str(out_path), _Reader(model.graph.input[0].name, arrays),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types), per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=excluded or None, calibrate_method=methods[method], extra_options=extra)
    except Exception as exc:  # noqa: BLE001 - ORT raises plain exceptions of many kinds
        raise ExportError(f"INT8 quantization of {fp32_path.name} failed: {str(exc).splitlines()[0][:300]}") from exc
    label = f"percentile {percentile:g}" if method == "percentile" else method
    return _report(out_path, "onnxruntime quantize_static (edgesr.export.tensorrt.qdq)", len(arrays), crop, label,
                   list(op_types), excluded)


def _report(path: Path, impl: str, n: int, crop: int, method: str, op_types: list[str],
            excluded: list[str]) -> QuantizeReport:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    qdq = sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
    return QuantizeReport(path, impl, n, crop, method, op_types, excluded, qdq)
