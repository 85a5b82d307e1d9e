"""TensorRT engine runner (NVIDIA GPU; ``pip install edgesr[tensorrt]``), on Polygraphy's `TrtRunner`.

Polygraphy deserializes the engine (`engine_from_bytes`) and runs it (`TrtRunner`: execution context,
``set_input_shape``, tensor addresses, output allocator, ``execute_async_v3`` on its own CUDA stream). The
input goes to the GPU as a torch CUDA tensor first, so each call records ``h2d`` / ``compute`` / ``d2h`` with
CUDA events and ``compute`` is engine time without the transfers. One runner (one execution context) per
thread.

Before loading, the engine's sidecar (``<name>.engine.json``, written by `edgesr export --format trt`) is compared
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
from edgesr.artifacts.sidecar import Sidecar
from edgesr.artifacts.validate import check_against_artifact
from edgesr.runtimes.io_convention import artifact_info, edge_shape
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
        path: the engine; ``<name>.engine.json`` beside it (its sidecar) sets I/O conventions and is checked against
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
        self.built: dict[str, Any] = {}  #: the sidecar's ``tensorrt`` block: what built the engine
        self.compat_warnings: list[str] = []
        self.engine: Any = None
        self._runner: Any = None
        self.profile: Any = None
        self.gpu: Any = None

    # ---- device hooks (tests replace these to run the bookkeeping on CPU with a fake TensorRT and CUDA) ----
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
        return dev

    def _to_device(self, x: np.ndarray) -> Any:
        """The input as a torch tensor on the runner's device (synchronous: TrtRunner runs on its own stream)."""
        import torch

        host = torch.from_numpy(np.ascontiguousarray(x))
        return host.pin_memory().to(self.device) if self.device.type == "cuda" else host

    def _timer(self) -> Any:
        from edgesr.runtimes.torch_runner import CudaStageTimer

        return CudaStageTimer()

    # ---- lifecycle ------------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        from edgesr.export.tensorrt.build import load_engine, polygraphy_quiet
        from edgesr.export.tensorrt.profiles import ProfileShapes
        from edgesr.export.tensorrt.runtime import check_engine_compat

        trt = self._trt
        if not self.path.is_file():
            raise UserInputError(f"engine file not found: {self.path}")
        self.device = self._setup_device()
        sidecar = Sidecar.for_artifact(self.path) if self.use_sidecar else None
        self.built = sidecar.block("tensorrt") if sidecar is not None else {}
        built = self.built or None
        version = str(getattr(trt, "__version__", ""))
        if built and self.check_compat:
            self.compat_warnings = check_engine_compat(built, version, self.gpu, f"engine {self.path.name}")
            for w in self.compat_warnings:
                log.warning("%s", w)
        engine = load_engine(trt, self.path.read_bytes())
        if engine is None:
            origin = (f" It was built with TensorRT {built.get('version')} for compute capability "
                      f"{(built.get('gpu') or {}).get('compute_capability')}." if built else
                      " (no sidecar says which TensorRT/GPU built it)")
            raise UserInputError(f"TensorRT {version} cannot load {self.path} on {getattr(self.gpu, 'name', 'this GPU')} "
                                 f"(compute capability {getattr(self.gpu, 'compute_capability', '?')}).{origin} "
                                 "TensorRT's messages are above. Rebuild the engine here with "
                                 "`edgesr export MODEL --format trt`.")
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
        if sidecar is not None:
            check_against_artifact(sidecar, where=f"sidecar {sidecar.source_path}", input_names=inputs,
                                   input_dtype=np.dtype(self.input_dtype).name,
                                   output_dtype=np.dtype(self.output_dtype).name)
        self.artifact = artifact_info(sidecar, model_input_dtype=self.input_dtype,
                                      model_output_dtype=self.output_dtype,
                                      sidecar_path=sidecar.source_path if sidecar is not None else None)
        self.io = self.artifact.io
        self.scale = self._scale_override or self.artifact.scale or self.scale
        from polygraphy.backend.trt import TrtRunner
        from polygraphy.exception import PolygraphyException

        self._runner = TrtRunner(engine, name=self.name)
        try:
            with polygraphy_quiet():
                self._runner.activate()
        except PolygraphyException as exc:
            self._runner = None
            raise UserInputError(f"TensorRT could not create an execution context for {self.path.name} (out of GPU "
                                 f"memory? it needs {self.device_memory_bytes or '?'} bytes): {exc}") from None

    def deactivate_impl(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
        self._runner = None
        self.engine = None

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
        from edgesr.export.tensorrt.build import device_memory_bytes

        return None if self.engine is None else device_memory_bytes(self._trt, self.engine)

    # ---- inference --------------------------------------------------------------------------------------
    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        from polygraphy.exception import PolygraphyException

        if not self.profile.contains(x.shape):
            raise UserInputError(
                f"input of shape {tuple(x.shape)} is outside the engine's profile ({self.profile.describe()}): "
                f"tile the image (edgesr upscale --engine tiles to fit) or rebuild with a larger --max-shape.")
        if x.dtype != self.input_dtype:
            x = x.astype(self.input_dtype)
        timer = self._timer()
        inp = self._to_device(x)
        timer.mark("h2d")
        try:
            out = self._runner.infer({self.input_name: inp}, copy_outputs_to_host=False)[self.output_name]
        except PolygraphyException as exc:
            raise UserInputError(f"TensorRT could not run {self.path.name} on input {tuple(x.shape)} "
                                 f"({self.profile.describe()}): {exc}") from None
        timer.mark("compute")
        result = out.cpu().numpy() if hasattr(out, "cpu") else out.numpy()  # torch CUDA tensor or DeviceView
        timer.mark("d2h")
        self._stages = timer.finish()
        return np.array(result, copy=True)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        built = self.built
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
