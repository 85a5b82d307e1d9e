"""Read TensorRT's engine-inspector JSON (`IEngineInspector.get_engine_information(JSON)`).

With DETAILED profiling verbosity each layer is an object (``Name``, ``LayerType``, ``Inputs``/``Outputs``
with dimensions and data formats, ``TacticName``, ...); with less verbosity layers are bare names. TensorRT 10
lists engine I/O under ``Bindings`` and writes one ``Format/Datatype`` string per tensor; TensorRT 11 renamed
them to ``I/O Tensors`` and split ``Format`` and ``DataType``. Both are read.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

_PRECISIONS = (("int8", "int8"), ("fp8", "fp8"), ("fp16", "fp16"), ("half", "fp16"), ("bf16", "bf16"),
               ("fp32", "fp32"), ("float", "fp32"), ("int32", "int32"), ("int64", "int64"), ("uint8", "uint8"),
               ("bool", "bool"))


def parse_engine_information(text: str | bytes | dict) -> dict[str, Any]:
    """The inspector's output as a dict (it is a JSON string)."""
    if isinstance(text, dict):
        return text
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return json.loads(text)


def tensor_precision(tensor: Any) -> str | None:
    """fp16/fp32/int8/... of one inspector tensor record (either TensorRT's format)."""
    if not isinstance(tensor, dict):
        return None
    for key in ("DataType", "Format/Datatype", "Format/DataType"):
        value = tensor.get(key)
        if isinstance(value, str):
            low = value.lower()
            for token, name in _PRECISIONS:
                if re.search(rf"\b{token}\b", low) or (token in ("int8", "fp16", "fp32") and token in low):
                    return name
    return None


def summarize_engine_info(info: dict[str, Any] | None) -> dict[str, Any]:
    """{count, by_type, by_precision, dla_layers, io_tensors, detailed} for the sidecar and the CLI."""
    if not info:
        return {"count": 0, "by_type": {}, "by_precision": {}, "dla_layers": 0, "io_tensors": [], "detailed": False}
    layers = info.get("Layers") or []
    by_type: Counter[str] = Counter()
    by_precision: Counter[str] = Counter()
    dla = 0
    detailed = False
    for layer in layers:
        if not isinstance(layer, dict):
            by_type["(name only)"] += 1
            continue
        detailed = True
        kind = str(layer.get("LayerType") or layer.get("ParameterType") or "unknown")
        by_type[kind] += 1
        outputs = layer.get("Outputs") or []
        precision = tensor_precision(outputs[0]) if outputs else None
        by_precision[precision or "unknown"] += 1
        if "dla" in kind.lower() or "dla" in str(layer.get("Name", "")).lower()[:8]:
            dla += 1
    io = info.get("I/O Tensors", info.get("Bindings", []))
    return {"count": len(layers), "by_type": dict(by_type.most_common()), "by_precision": dict(by_precision.most_common()),
            "dla_layers": dla, "io_tensors": list(io) if isinstance(io, list) else [], "detailed": detailed}
