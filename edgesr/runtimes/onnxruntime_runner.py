"""ONNX Runtime runner: CPU, or the CUDA / TensorRT execution providers of onnxruntime-gpu.

Session settings for benchmarking: `intra_op_num_threads = threads`, `inter_op_num_threads = 1`,
sequential execution, graph optimisation level ALL. I/O dtypes come from the model, value range
and layout from its sidecar (see `edgesr.runtimes.io_convention`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgesr.artifacts.sidecar import Sidecar
from edgesr.errors import MissingDependencyError, UserInputError
from edgesr.runtimes.base import BaseRunner, InputSpec
from edgesr.runtimes.io_convention import edge_shape, fixed_hw, load_artifact_info, parse_dtype
from edgesr.runtimes.registry import import_backend_package

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
_OPT_LEVELS = ("disable", "basic", "extended", "all")


class OnnxRuntimeRunner(BaseRunner):
    """Run an ONNX (or .ort) file with ONNX Runtime.

    Args:
        path: the model file; its sidecar ``<file>.json``, if present, sets I/O conventions (validated, and the
            files checked against it).
        provider: ``"cpu"`` (default), ``"cuda"`` or ``"tensorrt"`` (need onnxruntime-gpu and an NVIDIA GPU).
        threads: intra-op threads (None: ONNX Runtime's default, one per physical core).
        graph_optimization: ``"all"`` (default), ``"extended"``, ``"basic"`` or ``"disable"``.
        provider_options: options dict for the first provider (e.g. ``{"device_id": 0}``).
        use_sidecar: read the sidecar (default True).
        min_size / align / scale: override the sidecar's values for input validation.
    """

    backend = "onnxruntime"

    def __init__(self, path: str | Path, *, provider: str = "cpu", threads: int | None = None,
                 graph_optimization: str = "all", provider_options: dict[str, Any] | None = None,
                 use_sidecar: bool = True, min_size: int | None = None, align: int | None = None,
                 scale: int | None = None, name: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(name or f"onnxruntime:{self.path.name}")
        key = provider.lower().replace("executionprovider", "").replace("_", "")
        if key not in PROVIDERS:
            raise UserInputError(f"unknown ONNX Runtime provider {provider!r}; use one of {', '.join(PROVIDERS)}.")
        self.provider = key
        if threads is not None and threads < 1:
            raise UserInputError(f"threads must be >= 1, got {threads}.")
        self.threads = threads
        if graph_optimization.lower() not in _OPT_LEVELS:
            raise UserInputError(f"unknown graph_optimization {graph_optimization!r}; "
                                 f"use one of {', '.join(_OPT_LEVELS)}.")
        self.graph_optimization = graph_optimization.lower()
        self.provider_options = dict(provider_options or {})
        self.use_sidecar = use_sidecar
        self._overrides = {"min_size": min_size, "align": align}
        self._scale_override = scale
        self.scale = scale
        self.session: Any = None
        self._ort: Any = import_backend_package("onnxruntime")

    def _providers(self) -> list[Any]:
        ort = self._ort
        wanted = PROVIDERS[self.provider]
        have = ort.get_available_providers()
        if wanted[0] not in have:
            raise MissingDependencyError(
                f"ONNX Runtime's {wanted[0]} is not available in the installed onnxruntime {ort.__version__} "
                f"(it has: {', '.join(have)}). Install onnxruntime-gpu instead of onnxruntime "
                f"(pip uninstall onnxruntime && pip install edgesr[gpu]); it needs an NVIDIA GPU with CUDA"
                f"{' and TensorRT libraries' if self.provider == 'tensorrt' else ''}. On CPU use provider='cpu'.")
        chain: list[Any] = [p for p in wanted if p in have]
        if self.provider_options:
            chain[0] = (chain[0], self.provider_options)
        return chain

    def activate_impl(self) -> None:
        ort = self._ort
        if not self.path.is_file():
            raise UserInputError(f"model file not found: {self.path}")
        # the sidecar first: a file of another export is refused before ONNX Runtime parses it
        sidecar = Sidecar.for_artifact(self.path) if self.use_sidecar else None
        opts = ort.SessionOptions()
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.graph_optimization]
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        if self.threads is not None:
            opts.intra_op_num_threads = self.threads
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=self._providers())
        except MissingDependencyError:
            raise
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise UserInputError(f"ONNX Runtime cannot load {self.path}: {exc}") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserInputError(f"{self.path.name} has {len(inputs)} inputs and {len(outputs)} outputs; "
                                 "edgesr runners expect one image in, one image out.")
        self._input, self._output = inputs[0], outputs[0]
        self.artifact = load_artifact_info(self.path, model_input_dtype=parse_dtype(self._input.type),
                                           model_output_dtype=parse_dtype(self._output.type),
                                           input_names=[i.name for i in inputs],
                                           fixed_hw=fixed_hw(self._input.shape),
                                           use_sidecar=self.use_sidecar, sidecar=sidecar)
        self.io = self.artifact.io
        self.scale = self._scale_override or self.artifact.scale or self.scale

    def deactivate_impl(self) -> None:
        self.session = None

    def get_input_spec(self) -> InputSpec:
        shape = edge_shape(list(self._input.shape), self.io.layout)
        return InputSpec(self._input.name, shape, np.float32,
                         self._overrides["min_size"] or self.artifact.min_size or 1,
                         self._overrides["align"] or self.artifact.align or 1)

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self._output.name], {self._input.name: x})[0]

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(path=str(self.path), provider=self.provider, threads=self.threads,
                    graph_optimization=self.graph_optimization, onnxruntime=self._ort.__version__)
        if self.session is not None:
            info["providers"] = self.session.get_providers()
        return info
