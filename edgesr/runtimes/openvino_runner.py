"""OpenVINO runner: an ONNX file (or OpenVINO IR .xml) on the CPU plugin.

The precision hint is always set: OpenVINO runs bf16 on CPUs with AMX/AVX512-BF16 unless told
f32, so a run that did not ask would silently change precision with the machine. What the
compiled model actually uses is read back into `describe()["precision"]`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import UserInputError
from edgesr.runtimes.base import BaseRunner, InputSpec
from edgesr.runtimes.io_convention import edge_shape, fixed_hw, load_artifact_info
from edgesr.runtimes.registry import import_backend_package

_PRECISIONS = {"f32": "f32", "fp32": "f32", "float32": "f32",
               "bf16": "bf16", "bfloat16": "bf16",
               "f16": "f16", "fp16": "f16", "float16": "f16"}


class OpenVINORunner(BaseRunner):
    """Run an ONNX / IR model with OpenVINO.

    Args:
        path: ``.onnx`` or ``.xml`` (IR, with its ``.bin``); ``<file>.json`` beside it sets I/O conventions.
        device: OpenVINO device name (``"CPU"``, default).
        precision: ``"f32"`` (default), ``"bf16"`` or ``"f16"``: INFERENCE_PRECISION_HINT, always set.
        threads: INFERENCE_NUM_THREADS (None: OpenVINO's default).
        performance_hint: ``"LATENCY"`` (default) or ``"THROUGHPUT"``.
        config: extra compile properties (override the above).
        use_sidecar / min_size / align / scale: as for the ONNX Runtime runner.
    """

    backend = "openvino"

    def __init__(self, path: str | Path, *, device: str = "CPU", precision: str = "f32", threads: int | None = None,
                 performance_hint: str = "LATENCY", config: dict[str, Any] | None = None, use_sidecar: bool = True,
                 min_size: int | None = None, align: int | None = None, scale: int | None = None,
                 name: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(name or f"openvino:{self.path.name}")
        if str(precision).lower() not in _PRECISIONS:
            raise UserInputError(f"unsupported OpenVINO precision {precision!r}; use f32, bf16 or f16.")
        self.precision = _PRECISIONS[str(precision).lower()]
        if threads is not None and threads < 1:
            raise UserInputError(f"threads must be >= 1, got {threads}.")
        self.threads = threads
        self.device = device.upper()
        self.performance_hint = performance_hint.upper()
        self.extra_config = dict(config or {})
        self.use_sidecar = use_sidecar
        self._overrides = {"min_size": min_size, "align": align}
        self._scale_override = scale
        self.scale = scale
        self.compiled: Any = None
        self._request: Any = None
        self.actual_precision: str | None = None
        self._ov: Any = import_backend_package("openvino")

    def compile_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": self.performance_hint}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        config.update(self.extra_config)
        return config

    def activate_impl(self) -> None:
        ov = self._ov
        if not self.path.is_file():
            raise UserInputError(f"model file not found: {self.path}")
        core = ov.Core()
        if self.device.split(".")[0] not in {d.split(".")[0] for d in core.available_devices}:
            raise UserInputError(f"OpenVINO device {self.device!r} is not available here; available: "
                                 f"{', '.join(core.available_devices)}.")
        try:
            model = core.read_model(str(self.path))
            if len(model.inputs) != 1 or len(model.outputs) != 1:
                raise UserInputError(f"{self.path.name} has {len(model.inputs)} inputs and {len(model.outputs)} "
                                     "outputs; edgesr runners expect one image in, one image out.")
            self.compiled = core.compile_model(model, self.device, self.compile_config())
        except UserInputError:
            raise
        except RuntimeError as exc:
            raise UserInputError(f"OpenVINO cannot load {self.path} on {self.device}: {exc}") from exc
        self._request = self.compiled.create_infer_request()
        inp, out = model.inputs[0], model.outputs[0]
        self._input_name = inp.get_any_name() if inp.get_names() else "input"
        self._input_shape = [d.get_length() if d.is_static else None for d in inp.get_partial_shape()]
        self.artifact = load_artifact_info(self.path, model_input_dtype=inp.get_element_type().to_dtype().type,
                                           model_output_dtype=out.get_element_type().to_dtype().type,
                                           input_names=sorted(inp.get_names()), fixed_hw=fixed_hw(self._input_shape),
                                           use_sidecar=self.use_sidecar)
        self.io = self.artifact.io
        self.scale = self._scale_override or self.artifact.scale or self.scale
        try:
            self.actual_precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        except Exception:  # not every device reports it
            self.actual_precision = None

    def deactivate_impl(self) -> None:
        self._request = None
        self.compiled = None

    def get_input_spec(self) -> InputSpec:
        shape = edge_shape(self._input_shape, self.io.layout)
        return InputSpec(self._input_name, shape, np.float32,
                         self._overrides["min_size"] or self.artifact.min_size or 1,
                         self._overrides["align"] or self.artifact.align or 1)

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        self._request.infer({0: x})
        return self._request.get_output_tensor(0).data.copy()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(path=str(self.path), device=self.device, precision=self.actual_precision or self.precision,
                    precision_hint=self.precision, threads=self.threads, performance_hint=self.performance_hint,
                    openvino=self._ov.get_version())
        return info
