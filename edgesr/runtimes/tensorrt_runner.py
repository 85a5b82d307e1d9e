"""TensorRT engine runner (NVIDIA GPU; ``pip install edgesr[tensorrt]``).

Run sequence (TensorRT 10/11, docs/deploy.md): ``Runtime.deserialize_cuda_engine`` -> ``create_execution_context``
-> per call ``set_input_shape(input, shape)`` -> ``get_tensor_shape(output)`` -> ``set_tensor_address`` for
both (torch CUDA tensors are the buffers) -> ``execute_async_v3(stream)`` on the runner's own torch CUDA
stream. Each call records ``h2d`` / ``compute`` / ``d2h`` with CUDA events, so ``compute`` is engine time
without the transfers. One runner (one execution context) per thread.

Before loading, the engine's sidecar (``<name>.json``, written by `edgesr export --format trt`) is compared
with this machine: another TensorRT version or GPU architecture is a clear error naming both. The sidecar
also gives the I/O convention (uint8 / float 0..255 / FP16 I/O), scale, alignment, minimum size and the
profile's min/max shapes, which `max_hw` exposes to the tiler.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import UserInputError
from edgesr.runtimes.base import BaseRunner, InputSpec
from edgesr.runtimes.io_convention import ArtifactInfo, artifact_info, edge_shape, read_sidecar, sidecar_path_for
from edgesr.runtimes.registry import import_backend_package

log = logging.getLogger(__name__)

_NP = {"FLOAT": np.float32, "HALF": np.float16, "UINT8": np.uint8, "INT8": np.int8, "INT32": np.int32,
       "INT64": np.int64, "BOOL": np.bool_}


def _np_dtype(dtype: Any) -> Any:
    name = (getattr(dtype, "name", None) or str(dtype)).split(".")[-1].upper()
    if name not in _NP:
        raise UserInputError(f"engine tensor type {name} is not supported by the edgesr runner "
                             f"(supported: {', '.join(_NP)}).")
    return _NP[name]


class TensorRTRunner(BaseRunner):
    """Run a serialized TensorRT engine (``.engine`` / ``.plan``).

    Args:
        path: the engine; ``<name>.json`` beside it (its sidecar) sets I/O conventions and is checked against
            this machine's TensorRT version and GPU.
        device: ``"cuda"`` or ``"cuda:N"``.
        check_compat: refuse an engine whose sidecar names another TensorRT version / GPU architecture (True).
        use_sidecar: read the sidecar (True).
        min_size / align / scale: override the sidecar's values.
    """

    backend = "tensorrt"

    def __init__(self, path: str | Path, *, device: str = "cuda", check_compat: bool = True, use_sidecar: bool = True,
                 min_size: int | None = None, align: int | None = None, scale: int | None = None,
                 name: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(name or f"tensorrt:{self.path.name}")
        self._trt: Any = import_backend_package("tensorrt")  # MissingDependencyError naming edgesr[tensorrt]
        self.device_name = str(device)
        self.check_compat = check_compat
        self.use_sidecar = use_sidecar
        self._overrides = {"min_size": min_size, "align": align}
        self._scale_override = scale
        self.scale = scale
        self.artifact = ArtifactInfo()
        self.meta: dict[str, Any] = {}
        self.compat_warnings: list[str] = []
        self.engine: Any = None
        self.context: Any = None
        self._runtime: Any = None
        self._buffers: dict[str, Any] = {}
        self.profile: Any = None
        self.gpu: Any = None

    # ---- device hooks (tests replace these to run the bookkeeping on CPU with a fake TensorRT) ----------
    def _setup_device(self) -> Any:
        import torch

        from edgesr.runtimes.torch_runner import check_device

        dev = check_device(self.device_name)
        if dev.type != "cuda":
            raise UserInputError(f"the TensorRT runner runs on a CUDA device, not {self.device_name!r}.")
        from edgesr.export.tensorrt.runtime import GpuInfo

        index = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        self.gpu = GpuInfo(props.name, f"{props.major}.{props.minor}", index)
        torch.cuda.set_device(index)
        self._stream = torch.cuda.Stream(device=dev)
        return dev

    def _stream_context(self) -> Any:
        import torch

        return torch.cuda.stream(self._stream)

    def _stream_handle(self) -> int:
        return int(self._stream.cuda_stream)

    def _timer(self) -> Any:
        from edgesr.runtimes.torch_runner import CudaStageTimer

        return CudaStageTimer()

    # ---- lifecycle ------------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        from edgesr.export.tensorrt.build import make_logger
        from edgesr.export.tensorrt.profiles import ProfileShapes
        from edgesr.export.tensorrt.runtime import check_engine_compat

        trt = self._trt
        if not self.path.is_file():
            raise UserInputError(f"engine file not found: {self.path}")
        self.device = self._setup_device()
        side = sidecar_path_for(self.path) if self.use_sidecar else None
        self.meta = (read_sidecar(self.path) or {}) if side is not None else {}
        built = self.meta.get("tensorrt") if isinstance(self.meta.get("tensorrt"), dict) else None
        version = str(getattr(trt, "__version__", ""))
        if built and self.check_compat:
            self.compat_warnings = check_engine_compat(built, version, self.gpu, f"engine {self.path.name}")
            for w in self.compat_warnings:
                log.warning("%s", w)
        logger = make_logger(trt)
        self._runtime = trt.Runtime(logger)
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            origin = (f" It was built with TensorRT {built.get('version')} for compute capability "
                      f"{(built.get('gpu') or {}).get('compute_capability')}." if built else
                      " (no sidecar says which TensorRT/GPU built it)")
            raise UserInputError(f"TensorRT {version} cannot load {self.path} on {getattr(self.gpu, 'name', 'this GPU')} "
                                 f"(compute capability {getattr(self.gpu, 'compute_capability', '?')}).{origin} "
                                 f"TensorRT said: {'; '.join(logger.errors[-3:]) or 'nothing'}. Rebuild the engine "
                                 "here with `edgesr export MODEL --format trt`.")
        self.engine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserInputError(f"{self.path.name} has {len(inputs)} inputs and {len(outputs)} outputs; edgesr runners "
                                 "expect one image in, one image out.")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = _np_dtype(engine.get_tensor_dtype(self.input_name))
        self.output_dtype = _np_dtype(engine.get_tensor_dtype(self.output_name))
        self.engine_input_shape = [int(d) for d in engine.get_tensor_shape(self.input_name)]
        if any(d < 0 for d in self.engine_input_shape):
            lo, opt, hi = engine.get_tensor_profile_shape(self.input_name, 0)
            self.profile = ProfileShapes(*(tuple(int(d) for d in s) for s in (lo, opt, hi)))  # type: ignore[arg-type]
        else:
            self.profile = ProfileShapes(*(tuple(self.engine_input_shape),) * 3)  # type: ignore[arg-type]
        self.artifact = artifact_info(self.meta, model_input_dtype=self.input_dtype,
                                      model_output_dtype=self.output_dtype, sidecar_path=side)
        self.io = self.artifact.io
        self.scale = self._scale_override or self.artifact.scale or self.scale
        self.context = engine.create_execution_context()
        if self.context is None:
            raise UserInputError(f"TensorRT could not create an execution context for {self.path.name} (out of GPU "
                                 f"memory? it needs {self.device_memory_bytes or '?'} bytes): "
                                 + "; ".join(logger.errors[-3:]))

    def deactivate_impl(self) -> None:
        self.context = None
        self.engine = None
        self._runtime = None
        self._buffers.clear()

    # ---- spec and limits -------------------------------------------------------------------------------
    def get_input_spec(self) -> InputSpec:
        shape = edge_shape(self.engine_input_shape, self.io.layout)
        lo_h, lo_w = self.profile.min_hw if self.io.layout == "NCHW" else self.profile.min[1:3]
        min_size = self._overrides["min_size"] or max(self.artifact.min_size or 1, lo_h, lo_w)
        return InputSpec(self.input_name, shape, np.float32, min_size, self._overrides["align"] or self.artifact.align or 1)

    @property
    def max_hw(self) -> tuple[int, int] | None:
        """Largest input (H, W) the engine's profile accepts (for the tiler)."""
        self.activate()
        if self.profile is None:
            return None
        return self.profile.max_hw if self.io.layout == "NCHW" else (self.profile.max[1], self.profile.max[2])

    @property
    def min_hw(self) -> tuple[int, int]:
        self.activate()
        return self.profile.min_hw if self.io.layout == "NCHW" else (self.profile.min[1], self.profile.min[2])

    @property
    def device_memory_bytes(self) -> int | None:
        if self.engine is None:
            return None
        value = getattr(self.engine, "device_memory_size_v2", None)
        if value is None:
            value = getattr(self.engine, "device_memory_size", None)
        return int(value) if value is not None else None

    # ---- inference --------------------------------------------------------------------------------------
    def _output_buffer(self, shape: tuple[int, ...]) -> Any:
        import torch

        buf = self._buffers.get("output")
        if buf is None or tuple(buf.shape) != shape:
            dtype = {np.float32: torch.float32, np.float16: torch.float16, np.uint8: torch.uint8,
                     np.int8: torch.int8, np.int32: torch.int32, np.int64: torch.int64,
                     np.bool_: torch.bool}[self.output_dtype]
            buf = torch.empty(shape, dtype=dtype, device=self.device)
            self._buffers["output"] = buf
        return buf

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        import torch

        if not self.profile.contains(x.shape):
            raise UserInputError(
                f"input of shape {tuple(x.shape)} is outside the engine's profile ({self.profile.describe()}): "
                f"tile the image (edgesr upscale --engine tiles to fit) or rebuild with a larger --max-shape.")
        if x.dtype != self.input_dtype:
            x = x.astype(self.input_dtype)
        with self._stream_context():  # every copy, the engine and the timing events on the runner's stream
            timer = self._timer()
            host = torch.from_numpy(np.ascontiguousarray(x))
            if self.device.type == "cuda":
                host = host.pin_memory()
            inp = host.to(self.device, non_blocking=True)
            timer.mark("h2d")
            if not self.context.set_input_shape(self.input_name, tuple(int(d) for d in x.shape)):
                raise UserInputError(f"TensorRT rejected input shape {tuple(x.shape)} ({self.profile.describe()}).")
            out_shape = tuple(int(d) for d in self.context.get_tensor_shape(self.output_name))
            out = self._output_buffer(out_shape)
            self.context.set_tensor_address(self.input_name, int(inp.data_ptr()))
            self.context.set_tensor_address(self.output_name, int(out.data_ptr()))
            if not self.context.execute_async_v3(self._stream_handle()):
                raise RuntimeError(f"TensorRT execute_async_v3 failed on {self.path.name} for input {tuple(x.shape)}")
            timer.mark("compute")
            result = out.to("cpu").numpy().copy()
            timer.mark("d2h")
        self._stages = timer.finish()
        return result

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        built = self.meta.get("tensorrt") if isinstance(self.meta.get("tensorrt"), dict) else {}
        info.update(path=str(self.path), device=self.device_name, tensorrt=str(getattr(self._trt, "__version__", "")),
                    precision=built.get("precision"), built_with=built.get("version"),
                    built_on=(built.get("gpu") or {}).get("name"))
        if self.gpu is not None:
            info["gpu"] = self.gpu.name
            info["compute_capability"] = self.gpu.compute_capability
        if self.profile is not None:
            info["profile"] = self.profile.to_dict()
        if self.engine is not None:
            info["device_memory_bytes"] = self.device_memory_bytes
        return info
