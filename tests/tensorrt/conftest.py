"""A recording fake of the `tensorrt` module (10.x or 11.x feature set), and small ONNX artifacts.

The fake follows the Python API names of TensorRT 10.13 (checked against the tensorrt-stubs .pyi files) and
the removals of TensorRT 11 (no FP16/INT8 builder flags, no `device_memory_size`). It records every builder
call in order, "builds" a plan that holds the network's I/O as JSON, and runs engines on CPU memory: its
execution context reads the input at the address it was given and writes a nearest-neighbour upscale to the
output address, so the runner's buffer/shape bookkeeping is exercised without a GPU.
"""
from __future__ import annotations

import ctypes
import importlib.machinery
import json
import os
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("EDGESR_OFFLINE", "1")


class _Enum:
    def __init__(self, kind: str, name: str, value: int) -> None:
        self.kind, self.name, self.value = kind, name, value

    def __int__(self) -> int:
        return self.value

    __index__ = __int__

    def __repr__(self) -> str:
        return f"<{self.kind}.{self.name}: {self.value}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Enum) and (self.kind, self.value) == (other.kind, other.value)

    def __hash__(self) -> int:
        return hash((self.kind, self.value))


def _enum(kind: str, **members: int) -> type:
    return type(kind, (), {k: _Enum(kind, k, v) for k, v in members.items()})


_NP = {"FLOAT": np.float32, "HALF": np.float16, "UINT8": np.uint8}
_ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 2: "UINT8"}


def make_fake_trt(version: str = "10.13.0.35", *, scale: int = 2, parser_errors: list[dict] | None = None,
                  build_fails: bool = False, calls: list[str] | None = None) -> types.ModuleType:
    """A fake `tensorrt` module. `calls` collects the API calls in order."""
    major = int(version.split(".")[0])
    calls = calls if calls is not None else []
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # so importlib.util.find_spec sees it
    trt.__version__ = version
    trt.calls = calls

    class ILogger:
        Severity = _enum("Severity", INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

        def __init__(self) -> None:
            calls.append("ILogger.__init__")

    trt.ILogger = ILogger
    flags = {"STRONGLY_TYPED": 1, "PREFER_JIT_PYTHON_PLUGINS": 2}
    if major < 11:
        flags["EXPLICIT_BATCH"] = 0
    trt.NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", **flags)
    builder_flags = {"GPU_FALLBACK": 3, "TF32": 6}
    if major < 11:
        builder_flags.update(FP16=0, INT8=1)
    trt.BuilderFlag = _enum("BuilderFlag", **builder_flags)
    trt.MemoryPoolType = _enum("MemoryPoolType", WORKSPACE=0)
    trt.HardwareCompatibilityLevel = _enum("HardwareCompatibilityLevel", NONE=0, AMPERE_PLUS=1,
                                           SAME_COMPUTE_CAPABILITY=2)
    trt.ProfilingVerbosity = _enum("ProfilingVerbosity", LAYER_NAMES_ONLY=0, NONE=1, DETAILED=2)
    trt.LayerInformationFormat = _enum("LayerInformationFormat", ONELINE=0, JSON=1)
    trt.TensorIOMode = _enum("TensorIOMode", NONE=0, INPUT=1, OUTPUT=2)
    trt.DataType = _enum("DataType", FLOAT=0, HALF=1, INT8=2, INT32=3, BOOL=4, UINT8=5)
    trt.DeviceType = _enum("DeviceType", GPU=0, DLA=1)

    class Tensor:
        def __init__(self, name: str, shape: list[int], dtype: str) -> None:
            self.name, self.shape, self.dtype = name, shape, getattr(trt.DataType, dtype)

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.inputs: list[Tensor] = []
            self.outputs: list[Tensor] = []
            self.fp16 = False

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, i: int) -> Tensor:
            return self.inputs[i]

    class ParserError:
        def __init__(self, d: dict) -> None:
            self.d = d

        def code(self) -> Any:
            return _Enum("ErrorCode", self.d.get("code", "UNSUPPORTED_NODE"), 8)

        def desc(self) -> str:
            return self.d["desc"]

        def node(self) -> int:
            return self.d.get("node", -1)

        def node_name(self) -> str:
            return self.d.get("node_name", "")

        def node_operator(self) -> str:
            return self.d.get("node_operator", "")

    class OnnxParser:
        def __init__(self, network: Network, logger: Any) -> None:
            calls.append("OnnxParser")
            self.network = network
            self.errors = [ParserError(e) for e in (parser_errors or [])]

        def parse_from_file(self, path: str) -> bool:
            calls.append("parse_from_file")
            if self.errors:
                return False
            import onnx

            m = onnx.load(path, load_external_data=False)
            self.network.fp16 = any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)
            for vals, target in ((m.graph.input, self.network.inputs), (m.graph.output, self.network.outputs)):
                for v in vals:
                    tt = v.type.tensor_type
                    dims = [d.dim_value if d.dim_value > 0 else -1 for d in tt.shape.dim]
                    target.append(Tensor(v.name, dims, _ONNX_TO_TRT.get(tt.elem_type, "FLOAT")))
            return True

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> ParserError:
            return self.errors[i]

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, list[list[int]]] = {}

        def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
            calls.append(f"set_shape({name}, {list(lo)}, {list(opt)}, {list(hi)})")
            self.shapes[name] = [list(lo), list(opt), list(hi)]

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = bytes(data)

        def serialize(self) -> bytes:
            calls.append("serialize")
            return self.data + b"+timed"

    class Config:
        def __init__(self) -> None:
            object.__setattr__(self, "profiles", [])
            object.__setattr__(self, "flags_set", [])
            object.__setattr__(self, "cache", None)

        def __setattr__(self, key: str, value: Any) -> None:
            calls.append(f"{key}={getattr(value, 'name', value)}")
            object.__setattr__(self, key, value)

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            calls.append(f"set_memory_pool_limit({pool.name}, {size})")

        def add_optimization_profile(self, profile: Profile) -> int:
            calls.append("add_optimization_profile")
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, data: bytes) -> TimingCache:
            calls.append(f"create_timing_cache({len(data)} bytes)")
            return TimingCache(data)

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            calls.append(f"set_timing_cache(ignore_mismatch={ignore_mismatch})")
            object.__setattr__(self, "cache", cache)
            return not cache.data.startswith(b"OTHER")

        def get_timing_cache(self) -> TimingCache:
            calls.append("get_timing_cache")
            return self.cache

        def set_flag(self, flag: Any) -> None:
            calls.append(f"set_flag({flag.name})")
            self.flags_set.append(flag.name)

    class Builder:
        def __init__(self, logger: Any) -> None:
            calls.append("Builder")
            assert isinstance(logger, ILogger)

        def create_network(self, flags: int = 0) -> Network:
            calls.append(f"create_network({flags})")
            return Network(flags)

        def create_builder_config(self) -> Config:
            calls.append("create_builder_config")
            return Config()

        def create_optimization_profile(self) -> Profile:
            calls.append("create_optimization_profile")
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> Any:
            calls.append("build_serialized_network")
            if build_fails:
                return None
            profile = config.profiles[0].shapes if config.profiles else {}
            plan = {"inputs": [[t.name, t.shape, t.dtype.name] for t in network.inputs],
                    "outputs": [[t.name, t.shape, t.dtype.name] for t in network.outputs],
                    "profile": profile, "scale": scale, "flags": config.flags_set, "fp16": network.fp16}
            return memoryview(b"FAKEPLAN" + json.dumps(plan).encode())

    class Inspector:
        def __init__(self, plan: dict) -> None:
            self.plan = plan

        def get_engine_information(self, fmt: Any) -> str:
            calls.append(f"get_engine_information({fmt.name})")
            dtype = "FP16" if "FP16" in self.plan["flags"] or self.plan["fp16"] else "FP32"
            layers = [{"Name": "conv1", "LayerType": "CaskConvolution",
                       "Outputs": [{"Name": "t1", "Format/Datatype": f"Channel major {dtype} format"}]},
                      {"Name": "shuffle", "LayerType": "Shuffle",
                       "Outputs": [{"Name": "output", "Format/Datatype": "Row major linear FP32 format"}]}]
            io = [t[0] for t in self.plan["inputs"] + self.plan["outputs"]]
            key = "I/O Tensors" if major >= 11 else "Bindings"
            return json.dumps({"Layers": layers, key: io})

    class Context:
        def __init__(self, engine: "Engine") -> None:
            self.engine = engine
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: tuple) -> bool:
            calls.append(f"set_input_shape({name}, {tuple(shape)})")
            lo, _, hi = self.engine.profile[name]
            if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple:
            n, c, h, w = self.shapes[self.engine.input_name]
            s = self.engine.scale
            return (n, c, h * s, w * s)

        def set_tensor_address(self, name: str, address: int) -> bool:
            calls.append(f"set_tensor_address({name})")
            self.addresses[name] = address
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            calls.append(f"execute_async_v3({stream_handle})")
            e = self.engine
            shape = self.shapes[e.input_name]
            x = _view(self.addresses[e.input_name], shape, _NP[e.dtypes[e.input_name]])
            out_shape = self.get_tensor_shape(e.output_name)
            y = _view(self.addresses[e.output_name], out_shape, _NP[e.dtypes[e.output_name]])
            up = x.astype(np.float32).repeat(e.scale, axis=2).repeat(e.scale, axis=3)
            y[...] = up.astype(y.dtype)
            return True

    class Engine:
        def __init__(self, plan: dict) -> None:
            self.plan = plan
            self.scale = plan["scale"]
            self.names = [t[0] for t in plan["inputs"]] + [t[0] for t in plan["outputs"]]
            self.input_name, self.output_name = plan["inputs"][0][0], plan["outputs"][0][0]
            self.dtypes = {t[0]: t[2] for t in plan["inputs"] + plan["outputs"]}
            self.shapes = {t[0]: t[1] for t in plan["inputs"] + plan["outputs"]}
            self.profile = {k: [tuple(d) for d in v] for k, v in plan["profile"].items()}
            if self.input_name not in self.profile:
                s = tuple(self.shapes[self.input_name])
                self.profile[self.input_name] = [s, s, s]
            self.device_memory_size_v2 = 12 << 20
            if major < 11:
                self.device_memory_size = 12 << 20

        @property
        def num_io_tensors(self) -> int:
            return len(self.names)

        def get_tensor_name(self, i: int) -> str:
            return self.names[i]

        def get_tensor_mode(self, name: str) -> Any:
            return trt.TensorIOMode.INPUT if name == self.input_name else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> Any:
            return getattr(trt.DataType, self.dtypes[name])

        def get_tensor_shape(self, name: str) -> list[int]:
            return list(self.shapes[name])

        def get_tensor_profile_shape(self, name: str, index: int) -> list:
            return [list(d) for d in self.profile[name]]

        def create_engine_inspector(self) -> Inspector:
            calls.append("create_engine_inspector")
            return Inspector(self.plan)

        def create_execution_context(self) -> Context:
            calls.append("create_execution_context")
            return Context(self)

    class Runtime:
        def __init__(self, logger: Any) -> None:
            calls.append("Runtime")

        def deserialize_cuda_engine(self, data: Any) -> Engine | None:
            calls.append("deserialize_cuda_engine")
            data = bytes(data)
            if not data.startswith(b"FAKEPLAN"):
                return None
            return Engine(json.loads(data[len(b"FAKEPLAN"):]))

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    trt.Logger = ILogger
    return trt


def _view(address: int, shape: tuple, dtype: Any) -> np.ndarray:
    n = int(np.prod(shape))
    buf = (ctypes.c_byte * (n * np.dtype(dtype).itemsize)).from_address(address)
    return np.frombuffer(buf, dtype=dtype, count=n).reshape(shape)


@pytest.fixture
def fake_trt():
    return make_fake_trt


@pytest.fixture
def gpu():
    from edgesr.export.tensorrt.runtime import GpuInfo

    return GpuInfo("NVIDIA GeForce RTX 4090", "8.9", 0, 24.0, "550.54")


class TinySR(nn.Module):
    """conv -> spatial gate (pool, Resize back to the input size, like ESA) -> conv -> PixelShuffle(2)."""

    min_input_size = 4

    def __init__(self) -> None:
        super().__init__()
        self.scale = 2
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.leaky_relu(self.head(x), 0.05)
        pooled = torch.nn.functional.max_pool2d(y, 2, ceil_mode=True)
        y = y * torch.sigmoid(torch.nn.functional.interpolate(pooled, size=(y.shape[2], y.shape[3]),
                                                               mode="bilinear", align_corners=False))
        return self.shuffle(self.tail(y))


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory) -> dict[str, Path]:
    """The tiny model exported by edgesr (dynamo exporter, with sidecars): fp32, fp16, uint8 I/O."""
    os.environ.setdefault("EDGESR_OFFLINE", "1")
    from edgesr.export import ExportOptions, export_onnx

    torch.manual_seed(0)
    model = TinySR().eval()
    root = tmp_path_factory.mktemp("trt_tiny")
    out = {}
    for key, kw in (("fp32", {}), ("fp16", {"fp16": True}), ("uint8", {"io": "uint8"})):
        path = root / f"tiny_{key}.onnx"
        export_onnx(model, path, ExportOptions(parity_sizes=((24, 20),), opt_shape=(64, 64), max_shape=(128, 128),
                                               reparam=False, **kw))
        out[key] = path
    return out


@pytest.fixture
def tiny_model() -> TinySR:
    torch.manual_seed(0)
    return TinySR().eval()
