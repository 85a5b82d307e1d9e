"""A recording fake of the `tensorrt` module (10.x or 11.x) and of the CUDA runtime, below Polygraphy.

The fake is installed as ``sys.modules["tensorrt"]`` so that Polygraphy's real loaders and `TrtRunner`
run on top of it; `install_fake_cudart` gives Polygraphy's CUDA wrapper host-memory ``cudaMalloc`` /
``cudaMemcpy`` / streams, so device buffers are ordinary memory. Class and member names are TensorRT's
Python API names (`tests/tensorrt/data/trt_api_<version>.txt` lists the real ones and
`test_api_conformance.py` checks every name touched here against them), with TensorRT 11's removals: no
FP16/INT8 builder flags, no INT8 calibrator, no `device_memory_size`, no `precision_is_set`.

Every public attribute read on the module, its enums and its objects is recorded in ``trt.touched`` as
``"Class.member"`` (``"name"`` for module attributes); ``trt.calls`` keeps an ordered log of the calls with
their arguments. The builder "builds" a plan that holds the network's I/O as JSON; an execution context
reads the input at the address it was given and writes a nearest-neighbour upscale through the output
allocator, as TensorRT does with `IOutputAllocator`.
"""
from __future__ import annotations

import ctypes
import importlib.machinery
import json
import sys
import types
from typing import Any

import numpy as np

_NP = {"FLOAT": np.float32, "HALF": np.float16, "UINT8": np.uint8}
_ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 2: "UINT8"}
_INTERNAL = {"touched", "calls"}


class _Enum:
    """One member of a TensorRT enum (pybind11 enums: name, int value, hashable)."""

    def __init__(self, kind: str, name: str, value: int) -> None:
        self._kind, self._name, self._value = kind, name, value

    @property
    def name(self) -> str:
        return self._name

    @property
    def value(self) -> int:
        return self._value

    def __int__(self) -> int:
        return self._value

    __index__ = __int__

    def __repr__(self) -> str:
        return f"<{self._kind}.{self._name}: {self._value}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Enum) and (self._kind, self._value) == (other._kind, other._value)

    def __hash__(self) -> int:
        return hash((self._kind, self._value))


def make_fake_trt(version: str = "10.13.0.35", *, scale: int = 2, parser_errors: list[dict] | None = None,
                  build_fails: bool = False, calls: list[str] | None = None,
                  refuse_cache_prefix: bytes = b"OTHER") -> types.ModuleType:
    """A fake `tensorrt` module. `calls` collects the API calls in order; `trt.touched` the names read.

    `refuse_cache_prefix`: timing caches whose bytes start with it come "from another TensorRT version"
    (`ITimingCache.combine` refuses them, as TensorRT does)."""
    major = int(version.split(".")[0])
    calls = calls if calls is not None else []
    touched: set[str] = set()

    def record(owner: str, name: str) -> None:
        if not name.startswith("_") and name not in _INTERNAL:
            touched.add(f"{owner}.{name}" if owner else name)

    class _Module(types.ModuleType):
        def __getattribute__(self, name: str) -> Any:
            value = super().__getattribute__(name)
            record("", name)
            return value

    class _EnumMeta(type):
        def __getattribute__(cls, name: str) -> Any:
            value = super().__getattribute__(name)
            record(super().__getattribute__("_api"), name)
            return value

        @property
        def __members__(cls) -> dict[str, _Enum]:
            return {k: v for k, v in type.__getattribute__(cls, "__dict__").items() if isinstance(v, _Enum)}

    def enum(kind: str, **members: int) -> type:
        return _EnumMeta(kind, (), {"_api": kind, **{k: _Enum(kind, k, v) for k, v in members.items()}})

    class _Api:
        """Base of the fake API classes: records every public attribute read as "<_api>.<name>"."""

        _api = "object"

        def __getattribute__(self, name: str) -> Any:
            value = object.__getattribute__(self, name)
            mro = type(self).__mro__
            if any(name in vars(c) for c in mro if "_api" in vars(c)):  # not a user subclass's own attribute
                record(type(self)._api, name)
            return value

    class _ApiMeta(type):
        def __getattribute__(cls, name: str) -> Any:
            value = super().__getattribute__(name)
            if not name.startswith("_"):
                record(super().__getattribute__("_api"), name)
            return value

    trt = _Module("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # so importlib.util.find_spec sees it
    trt.__version__ = version
    trt.calls = calls
    trt.touched = touched

    severity = {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4}

    class ILogger(_Api, metaclass=_ApiMeta):
        _api = "ILogger"
        Severity = enum("Severity", **severity)

        def __init__(self) -> None:
            calls.append("ILogger.__init__")

    class Logger(ILogger):
        _api = "Logger"

    for _k, _v in severity.items():
        setattr(ILogger, _k, getattr(ILogger.Severity, _k))
    trt.ILogger, trt.Logger = ILogger, Logger

    flags = {"STRONGLY_TYPED": 1, "PREFER_JIT_PYTHON_PLUGINS": 2}
    if major < 11:
        flags["EXPLICIT_BATCH"] = 0
    trt.NetworkDefinitionCreationFlag = enum("NetworkDefinitionCreationFlag", **flags)
    builder_flags = {"DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6,
                     "SPARSE_WEIGHTS": 7, "SAFETY_SCOPE": 8, "DIRECT_IO": 11}
    if major < 11:
        builder_flags.update(FP16=0, INT8=1, BF16=17, OBEY_PRECISION_CONSTRAINTS=9,
                             PREFER_PRECISION_CONSTRAINTS=10)
    trt.BuilderFlag = enum("BuilderFlag", **builder_flags)
    trt.MemoryPoolType = enum("MemoryPoolType", WORKSPACE=0, DLA_MANAGED_SRAM=1, DLA_LOCAL_DRAM=2,
                              DLA_GLOBAL_DRAM=3, TACTIC_DRAM=4)
    trt.HardwareCompatibilityLevel = enum("HardwareCompatibilityLevel", NONE=0, AMPERE_PLUS=1,
                                          SAME_COMPUTE_CAPABILITY=2)
    trt.ProfilingVerbosity = enum("ProfilingVerbosity", LAYER_NAMES_ONLY=0, NONE=1, DETAILED=2)
    trt.LayerInformationFormat = enum("LayerInformationFormat", ONELINE=0, JSON=1)
    trt.TensorIOMode = enum("TensorIOMode", NONE=0, INPUT=1, OUTPUT=2)
    trt.TensorFormat = enum("TensorFormat", LINEAR=0, CHW2=1, HWC8=2, CHW4=3, CHW16=4, CHW32=5, HWC=8)
    trt.DataType = enum("DataType", FLOAT=0, HALF=1, INT8=2, INT32=3, BOOL=4, UINT8=5, INT64=8)
    trt.DeviceType = enum("DeviceType", GPU=0, DLA=1)
    trt.LayerType = enum("LayerType", CONVOLUTION=0, ACTIVATION=2, SHAPE=24, QUANTIZE=35, DEQUANTIZE=36)
    trt.EngineCapability = enum("EngineCapability", STANDARD=0, SAFETY=1, DLA_STANDALONE=2)
    trt.TacticSource = enum("TacticSource", CUBLAS=0, CUBLAS_LT=1, CUDNN=2, EDGE_MASK_CONVOLUTIONS=3,
                            JIT_CONVOLUTIONS=4)
    trt.PreviewFeature = enum("PreviewFeature", PROFILE_SHARING_0806=0, ALIASED_PLUGIN_IO_10_03=1)
    if major < 11:
        trt.QuantizationFlag = enum("QuantizationFlag", CALIBRATE_BEFORE_FUSION=0)
    for alias, member in (("float32", "FLOAT"), ("float16", "HALF"), ("int8", "INT8"), ("int32", "INT32"),
                          ("bool", "BOOL"), ("uint8", "UINT8"), ("int64", "INT64")):
        setattr(trt, alias, getattr(trt.DataType, member))

    def init_libnvinfer_plugins(logger: Any, namespace: str) -> bool:
        calls.append("init_libnvinfer_plugins")
        return True

    trt.init_libnvinfer_plugins = init_libnvinfer_plugins

    class ITensor(_Api):
        _api = "ITensor"

        def __init__(self, name: str, shape: list[int], dtype: str) -> None:
            self._name, self._shape, self._dtype = name, shape, dtype

        name = property(lambda self: self._name)
        shape = property(lambda self: tuple(self._shape))
        dtype = property(lambda self: getattr(trt.DataType, self._dtype))
        is_shape_tensor = property(lambda self: False)

    layer_members = {"name": property(lambda self: self._name), "type": property(lambda self: self._type),
                     "precision": property(lambda self: trt.DataType.FLOAT)}
    if major < 11:
        layer_members["precision_is_set"] = property(lambda self: False)
    ILayer = type("ILayer", (_Api,), {"_api": "ILayer", **layer_members})

    class INetworkDefinition(_Api):
        _api = "INetworkDefinition"

        def __init__(self, flags: int) -> None:
            self._flags = flags
            self._inputs: list[ITensor] = []
            self._outputs: list[ITensor] = []
            self._layers: list[Any] = []
            self._fp16 = False

        num_inputs = property(lambda self: len(self._inputs))
        num_outputs = property(lambda self: len(self._outputs))
        num_layers = property(lambda self: len(self._layers))

        def get_input(self, i: int) -> ITensor:
            return self._inputs[i]

        def get_output(self, i: int) -> ITensor:
            return self._outputs[i]

        def get_layer(self, i: int) -> Any:
            return self._layers[i]

        def get_flag(self, flag: Any) -> bool:
            return bool(self._flags & (1 << int(flag)))

        def __len__(self) -> int:
            return len(self._layers)

        def __getitem__(self, i: int) -> Any:
            if i >= len(self._layers):
                raise IndexError(i)
            return self._layers[i]

    class ParserError(_Api):
        _api = "ParserError"

        def __init__(self, d: dict) -> None:
            self._d = d

        def code(self) -> Any:
            return _Enum("ErrorCode", self._d.get("code", "UNSUPPORTED_NODE"), 8)

        def desc(self) -> str:
            return self._d["desc"]

        def node(self) -> int:
            return self._d.get("node", -1)

        def node_name(self) -> str:
            return self._d.get("node_name", "")

        def node_operator(self) -> str:
            return self._d.get("node_operator", "")

        def __str__(self) -> str:
            return f"In node {self._d.get('node', -1)}: {self._d['desc']}"

    class OnnxParser(_Api, metaclass=_ApiMeta):
        _api = "OnnxParser"

        def __init__(self, network: INetworkDefinition, logger: Any) -> None:
            calls.append("OnnxParser")
            self._network = network
            self._errors = [ParserError(e) for e in (parser_errors or [])]

        def parse_from_file(self, path: str) -> bool:
            calls.append("parse_from_file")
            if self._errors:
                return False
            import onnx

            m = onnx.load(path, load_external_data=False)
            net = self._network
            net._fp16 = any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)
            for vals, target in ((m.graph.input, net._inputs), (m.graph.output, net._outputs)):
                for v in vals:
                    tt = v.type.tensor_type
                    dims = [d.dim_value if d.dim_value > 0 else -1 for d in tt.shape.dim]
                    target.append(ITensor(v.name, dims, _ONNX_TO_TRT.get(tt.elem_type, "FLOAT")))
            for node in m.graph.node:
                kind = {"Conv": "CONVOLUTION", "QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE",
                        "Shape": "SHAPE"}.get(node.op_type, "ACTIVATION")
                layer = ILayer()
                layer._name, layer._type = node.name, getattr(trt.LayerType, kind)
                net._layers.append(layer)
            return True

        num_errors = property(lambda self: len(self._errors))

        def get_error(self, i: int) -> ParserError:
            return self._errors[i]

        def clear_flag(self, flag: Any) -> None:
            calls.append(f"OnnxParser.clear_flag({flag.name})")

    class IOptimizationProfile(_Api):
        _api = "IOptimizationProfile"

        def __init__(self) -> None:
            self._shapes: dict[str, list[list[int]]] = {}

        def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
            calls.append(f"set_shape({name}, {list(lo)}, {list(opt)}, {list(hi)})")
            self._shapes[name] = [list(lo), list(opt), list(hi)]

        def get_shape(self, name: str) -> list:
            return self._shapes[name]

    class IHostMemory(bytes):
        """Serialized bytes (TensorRT's IHostMemory supports the buffer protocol)."""

        @property
        def nbytes(self) -> int:
            touched.add("IHostMemory.nbytes")
            return len(self)

        def __enter__(self) -> "IHostMemory":
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

    class ITimingCache(_Api):
        _api = "ITimingCache"

        def __init__(self, data: bytes) -> None:
            self._refused = bytes(data).startswith(refuse_cache_prefix)  # TensorRT starts an empty cache then
            self._data = b"" if self._refused else bytes(data)

        def serialize(self) -> IHostMemory:
            calls.append("serialize")
            return IHostMemory(self._data)

        def combine(self, other: "ITimingCache", ignore_mismatch: bool) -> bool:
            calls.append(f"combine(ignore_mismatch={ignore_mismatch})")
            if other._refused:
                return False
            if not self._data.startswith(other._data):  # entries already present are skipped
                self._data = other._data + self._data
            return True

    class IBuilderConfig(_Api):
        _api = "IBuilderConfig"

        def __init__(self) -> None:
            object.__setattr__(self, "_profiles", [])
            object.__setattr__(self, "_flags", set(["TF32"]))
            object.__setattr__(self, "_cache", None)
            object.__setattr__(self, "_pools", {})
            object.__setattr__(self, "_values", {"profiling_verbosity": trt.ProfilingVerbosity.LAYER_NAMES_ONLY,
                                                 "default_device_type": trt.DeviceType.GPU, "DLA_core": -1,
                                                 "builder_optimization_level": 3,
                                                 "hardware_compatibility_level":
                                                     trt.HardwareCompatibilityLevel.NONE,
                                                 "engine_capability": trt.EngineCapability.STANDARD})
            if major < 11:
                self._values["int8_calibrator"] = None

        def __getattr__(self, key: str) -> Any:  # the settable properties
            values = object.__getattribute__(self, "_values")
            if key in values:
                record("IBuilderConfig", key)
                return values[key]
            raise AttributeError(key)

        def __setattr__(self, key: str, value: Any) -> None:
            if key not in self._values:
                raise AttributeError(f"IBuilderConfig has no attribute {key!r}")
            record("IBuilderConfig", key)
            calls.append(f"{key}={getattr(value, 'name', value)}")
            self._values[key] = value

        num_optimization_profiles = property(lambda self: len(self._profiles))

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            calls.append(f"set_memory_pool_limit({pool.name}, {size})")
            self._pools[pool.name] = size

        def get_memory_pool_limit(self, pool: Any) -> int:
            return self._pools.get(pool.name, 1 << 30)

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            calls.append("add_optimization_profile")
            self._profiles.append(profile)
            return len(self._profiles) - 1

        def create_timing_cache(self, data: bytes) -> ITimingCache:
            calls.append(f"create_timing_cache({len(data)} bytes)")
            return ITimingCache(data)

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            calls.append(f"set_timing_cache(ignore_mismatch={ignore_mismatch})")
            object.__setattr__(self, "_cache", cache)
            return True

        def get_timing_cache(self) -> ITimingCache:
            calls.append("get_timing_cache")
            return self._cache

        def set_flag(self, flag: Any) -> None:
            calls.append(f"set_flag({flag.name})")
            self._flags.add(flag.name)

        def clear_flag(self, flag: Any) -> None:
            calls.append(f"clear_flag({flag.name})")
            self._flags.discard(flag.name)

        def get_flag(self, flag: Any) -> bool:
            return flag.name in self._flags

        def get_tactic_sources(self) -> int:
            return 0b11111

        def get_preview_feature(self, feature: Any) -> bool:
            return False

    if major < 11:
        def get_quantization_flag(self: Any, flag: Any) -> bool:
            return False

        IBuilderConfig.get_quantization_flag = get_quantization_flag

    class Builder(_Api, metaclass=_ApiMeta):
        _api = "Builder"

        def __init__(self, logger: Any) -> None:
            calls.append("Builder")
            assert isinstance(logger, ILogger)

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            calls.append(f"create_network({flags})")
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            calls.append("create_builder_config")
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            calls.append("create_optimization_profile")
            return IOptimizationProfile()

        num_DLA_cores = property(lambda self: 2)

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> Any:
            calls.append("build_serialized_network")
            if build_fails:
                return None
            profile = config._profiles[0]._shapes if config._profiles else {}
            plan = {"inputs": [[t._name, t._shape, t._dtype] for t in network._inputs],
                    "outputs": [[t._name, t._shape, t._dtype] for t in network._outputs],
                    "profile": profile, "scale": scale, "flags": sorted(config._flags - {"TF32"}),
                    "fp16": network._fp16}
            if config._cache is not None:
                config._cache._data += b"+timed"
            return IHostMemory(b"FAKEPLAN" + json.dumps(plan).encode())

    class EngineInspector(_Api):
        _api = "EngineInspector"

        def __init__(self, plan: dict) -> None:
            self._plan = plan

        def get_engine_information(self, fmt: Any) -> str:
            calls.append(f"get_engine_information({fmt.name})")
            dtype = "FP16" if "FP16" in self._plan["flags"] or self._plan["fp16"] else "FP32"
            layers = [{"Name": "conv1", "LayerType": "CaskConvolution",
                       "Outputs": [{"Name": "t1", "Format/Datatype": f"Channel major {dtype} format"}]},
                      {"Name": "shuffle", "LayerType": "Shuffle",
                       "Outputs": [{"Name": "output", "Format/Datatype": "Row major linear FP32 format"}]}]
            io = [t[0] for t in self._plan["inputs"] + self._plan["outputs"]]
            key = "I/O Tensors" if major >= 11 else "Bindings"
            return json.dumps({"Layers": layers, key: io})

    class IOutputAllocator(_Api, metaclass=_ApiMeta):
        _api = "IOutputAllocator"

        def __init__(self) -> None:
            pass

    class IDebugListener(_Api, metaclass=_ApiMeta):
        _api = "IDebugListener"

        def __init__(self) -> None:
            pass

    class IExecutionContext(_Api, metaclass=_ApiMeta):
        _api = "IExecutionContext"

        def __init__(self, engine: "ICudaEngine") -> None:
            self._engine = engine
            self._shapes: dict[str, tuple[int, ...]] = {}
            self._addresses: dict[str, int] = {}
            self._allocators: dict[str, Any] = {}

        engine = property(lambda self: self._engine)
        active_optimization_profile = property(lambda self: 0)

        def set_input_shape(self, name: str, shape: tuple) -> bool:
            calls.append(f"set_input_shape({name}, {tuple(shape)})")
            lo, _, hi = self._engine._profile[name]
            if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                return False
            self._shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple:
            e = self._engine
            if name == e._input_name:
                return self._shapes.get(name, tuple(e._shapes[name]))
            n, c, h, w = self._shapes[e._input_name]
            return (n, c, h * e._scale, w * e._scale)

        def get_tensor_address(self, name: str) -> int:
            return self._addresses.get(name, 0)

        def set_tensor_address(self, name: str, address: int) -> bool:
            calls.append(f"set_tensor_address({name})")
            self._addresses[name] = address
            return True

        def set_output_allocator(self, name: str, allocator: Any) -> bool:
            calls.append(f"set_output_allocator({name})")
            self._allocators[name] = allocator
            return True

        def set_all_tensors_debug_state(self, flag: bool) -> bool:
            return True

        def set_debug_listener(self, listener: Any) -> bool:
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            calls.append("execute_async_v3")
            e = self._engine
            shape = self._shapes[e._input_name]
            x = _view(self._addresses[e._input_name], shape, _NP[e._dtypes[e._input_name]])
            out_shape = self.get_tensor_shape(e._output_name)
            out_dtype = _NP[e._dtypes[e._output_name]]
            nbytes = int(np.prod(out_shape)) * np.dtype(out_dtype).itemsize
            allocator = self._allocators[e._output_name]
            address = allocator.reallocate_output_async(e._output_name, 0, nbytes, 256, stream_handle)
            y = _view(address, out_shape, out_dtype)
            up = x.astype(np.float32).repeat(e._scale, axis=2).repeat(e._scale, axis=3)
            y[...] = up.astype(y.dtype)
            allocator.notify_shape(e._output_name, out_shape)
            return True

    class ICudaEngine(_Api, metaclass=_ApiMeta):
        _api = "ICudaEngine"

        def __init__(self, plan: dict) -> None:
            self._plan = plan
            self._scale = plan["scale"]
            self._names = [t[0] for t in plan["inputs"]] + [t[0] for t in plan["outputs"]]
            self._input_name, self._output_name = plan["inputs"][0][0], plan["outputs"][0][0]
            self._dtypes = {t[0]: t[2] for t in plan["inputs"] + plan["outputs"]}
            self._shapes = {t[0]: t[1] for t in plan["inputs"] + plan["outputs"]}
            self._profile = {k: [tuple(d) for d in v] for k, v in plan["profile"].items()}
            if self._input_name not in self._profile:
                s = tuple(self._shapes[self._input_name])
                self._profile[self._input_name] = [s, s, s]

        num_io_tensors = property(lambda self: len(self._names))
        device_memory_size_v2 = property(lambda self: 12 << 20)

        def get_tensor_name(self, i: int) -> str:
            return self._names[i]

        def get_tensor_mode(self, name: str) -> Any:
            return trt.TensorIOMode.INPUT if name == self._input_name else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> Any:
            return getattr(trt.DataType, self._dtypes[name])

        def get_tensor_shape(self, name: str) -> tuple:
            return tuple(self._shapes[name])

        def get_tensor_format(self, name: str, profile: int = 0) -> Any:
            return trt.TensorFormat.LINEAR

        def get_tensor_profile_shape(self, name: str, index: int) -> list:
            return [list(d) for d in self._profile[name]]

        def is_shape_inference_io(self, name: str) -> bool:
            return False

        def get_aliased_input_tensor(self, name: str) -> None:
            return None

        def create_engine_inspector(self) -> EngineInspector:
            calls.append("create_engine_inspector")
            return EngineInspector(self._plan)

        def create_execution_context(self, strategy: Any = None) -> IExecutionContext:
            calls.append("create_execution_context")
            return IExecutionContext(self)

    if major < 11:
        ICudaEngine.device_memory_size = property(lambda self: 12 << 20)

    class Runtime(_Api, metaclass=_ApiMeta):
        _api = "Runtime"

        def __init__(self, logger: Any) -> None:
            calls.append("Runtime")
            object.__setattr__(self, "_host_code", False)

        def __setattr__(self, key: str, value: Any) -> None:
            if key != "engine_host_code_allowed":
                raise AttributeError(key)
            record("Runtime", key)
            object.__setattr__(self, "_host_code", value)

        def deserialize_cuda_engine(self, data: Any) -> ICudaEngine | None:
            calls.append("deserialize_cuda_engine")
            data = bytes(data)
            if not data.startswith(b"FAKEPLAN"):
                return None
            return ICudaEngine(json.loads(data[len(b"FAKEPLAN"):]))

    for cls in (Builder, OnnxParser, Runtime, ICudaEngine, IExecutionContext, IOutputAllocator, IDebugListener,
                INetworkDefinition, IBuilderConfig, IOptimizationProfile, ITimingCache, IHostMemory, ITensor,
                ILayer, EngineInspector, ParserError):
        setattr(trt, cls.__name__, cls)
    return trt


def _view(address: int, shape: tuple, dtype: Any) -> np.ndarray:
    n = int(np.prod(shape))
    buf = (ctypes.c_byte * (n * np.dtype(dtype).itemsize)).from_address(address)
    return np.frombuffer(buf, dtype=dtype, count=n).reshape(shape)


# ---- installing the fakes under Polygraphy ---------------------------------------------------------------
def reset_polygraphy_trt() -> None:
    """Forget the `tensorrt` module that Polygraphy's lazy imports cached (each test brings its own fake)."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("polygraphy") or module is None:
            continue
        for value in list(vars(module).values()):
            if type(value).__name__ == "LazyModule":
                cached = object.__getattribute__(value, "module")
                if cached is not None and getattr(cached, "__name__", "") == "tensorrt":
                    object.__setattr__(value, "module", None)
    trt_util = sys.modules.get("polygraphy.backend.trt.util")
    if trt_util is not None:
        trt_util.TRT_LOGGER = None  # its logger class derives from the previous module's ILogger


def install_fake_trt(monkeypatch: Any, trt: types.ModuleType) -> types.ModuleType:
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    reset_polygraphy_trt()
    monkeypatch.setattr("polygraphy.backend.trt.util.TRT_LOGGER", None)
    return trt


class FakeCudart:
    """The CUDA runtime calls Polygraphy's `cuda.wrapper()` makes, on host memory (streams are numbers)."""

    def __init__(self) -> None:
        self.buffers: dict[int, Any] = {}
        self.calls: list[str] = []
        self._streams = 0

    @staticmethod
    def _out(ref: Any, value: int) -> int:
        ref._obj.value = value
        return 0

    def cudaStreamCreate(self, ref: Any) -> int:
        self._streams += 1
        return self._out(ref, 0x1000 + self._streams)

    def cudaStreamSynchronize(self, ptr: Any) -> int:
        return 0

    def cudaStreamDestroy(self, ptr: Any) -> int:
        return 0

    def cudaMalloc(self, ref: Any, nbytes: Any) -> int:
        buf = ctypes.create_string_buffer(max(int(getattr(nbytes, "value", nbytes)), 1))
        self.buffers[ctypes.addressof(buf)] = buf
        self.calls.append(f"cudaMalloc({len(buf)})")
        return self._out(ref, ctypes.addressof(buf))

    def cudaFree(self, ptr: Any) -> int:
        self.buffers.pop(ptr.value, None)
        return 0

    def cudaMemcpy(self, dst: Any, src: Any, nbytes: Any, kind: int) -> int:
        ctypes.memmove(dst.value, src.value, int(nbytes.value))
        return 0

    def cudaMemcpyAsync(self, dst: Any, src: Any, nbytes: Any, kind: int, stream: Any) -> int:
        return self.cudaMemcpy(dst, src, nbytes, kind)


def install_fake_cudart(monkeypatch: Any) -> FakeCudart:
    from polygraphy.cuda import cuda as pg_cuda

    fake = FakeCudart()
    wrapper = pg_cuda.Cuda.__new__(pg_cuda.Cuda)
    wrapper.handle = fake
    monkeypatch.setattr(pg_cuda, "G_CUDA", wrapper)
    return fake
