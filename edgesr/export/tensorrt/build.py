"""ONNX -> serialized TensorRT engine + its sidecar JSON (TensorRT 10.x and 11.x Python API).

The build follows TensorRT's documented sequence (docs/deploy.md):

    Builder(logger) -> create_network(1 << STRONGLY_TYPED) -> OnnxParser(network, logger).parse_from_file
    (every parser error reported) -> create_builder_config -> set_memory_pool_limit(WORKSPACE)
    -> create_optimization_profile().set_shape(input, min, opt, max) -> add_optimization_profile
    -> create_timing_cache(bytes of the cache file, or b"") -> set_timing_cache(cache, ignore_mismatch=False)
    -> builder_optimization_level -> hardware_compatibility_level -> profiling_verbosity = DETAILED
    -> build_serialized_network -> timing cache saved (get_timing_cache().serialize(), written atomically)
    -> Runtime.deserialize_cuda_engine (I/O tensors, profile, device memory, engine-inspector layer JSON)

Precision follows TensorRT 11: the network is strongly typed, so the ONNX's own types decide (an FP16 ONNX
gives FP16 layers, Q/DQ nodes give INT8 layers). Only on TensorRT 10.x, and only when asked for FP16 from an
FP32 ONNX, the deprecated FP16 builder flag is used instead (weak typing); TensorRT 11 removed it, and the
build then fails with a message saying to export an FP16 ONNX. Features are detected with hasattr and the
major version, never assumed. `trt` (the module) and `gpu` are parameters so that tests can pass fakes.

The engine sidecar (``<name>.json`` beside ``<name>.engine``) is the ONNX artifact's sidecar (same schema:
I/O names and conventions, scale, alignment, min size, halo, parity) with ``artifact`` describing the engine,
``shape_profile`` the engine's actual profile, and a ``tensorrt`` block:

``version`` (TensorRT), ``major``, ``gpu`` {name, compute_capability, index, memory_gb, driver},
``precision`` ("fp32" | "fp16" | "int8" | "int8+fp16"), ``strongly_typed``, ``builder_flags`` (weak-typing
flags used, e.g. ["FP16"]), ``builder_options`` {workspace_mb, opt_level, hardware_compatibility_level,
profiling_verbosity, timing_cache (file name), timing_cache_reused, dla_core, version_compatible},
``profiles`` [{"input": {min, opt, max}}], ``io_tensors`` [{name, mode, dtype, shape}],
``device_memory_bytes``, ``layers`` (summary of the engine inspector: count, per type, per precision),
``layer_info`` (the inspector's JSON), ``source_onnx`` {file, sha256}, ``build_seconds``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from edgesr.errors import ExportError, UserInputError
from edgesr.export.tensorrt.profiles import ProfileShapes, profile_from_dict
from edgesr.export.tensorrt.runtime import GpuInfo, import_tensorrt, require_gpu, trt_major, trt_version

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_MB = 2048


@dataclass
class TrtBuildOptions:
    """How to build. `None` means TensorRT's default.

    fp16: FP16 layers. From an FP16 ONNX (edgesr's `--fp16` export) this is plain strong typing; from an FP32
        ONNX it needs the TensorRT 10.x FP16 builder flag (fallback; not in TensorRT 11).
    int8: the ONNX carries Q/DQ nodes (explicit quantization); checked against the graph.
    strongly_typed: None = yes (TensorRT 11 always; 10.x unless the FP16 flag fallback is needed).
    workspace_mb: WORKSPACE memory-pool limit. timing_cache: file reused if it exists, saved after the build.
    opt_level: builder optimization level 0..5 (TensorRT's default 3; higher builds slower, may run faster).
    hardware_compat: AMPERE_PLUS hardware compatibility (one engine for compute capability >= 8.0, slower).
    profile: input shapes (None: the ONNX sidecar's `shape_profile`; required for dynamic inputs).
    detailed_profiling: DETAILED profiling verbosity (per-layer info in the engine inspector).
    dla_core: build for DLA core N with GPU fallback (Jetson); needs FP16/INT8 and a static profile.
    """

    fp16: bool = False
    int8: bool = False
    strongly_typed: bool | None = None
    workspace_mb: int | None = DEFAULT_WORKSPACE_MB
    timing_cache: Path | None = None
    opt_level: int | None = None
    hardware_compat: bool = False
    profile: ProfileShapes | None = None
    detailed_profiling: bool = True
    dla_core: int | None = None
    gpu_index: int = 0

    def validate(self) -> None:
        if self.workspace_mb is not None and (not isinstance(self.workspace_mb, int) or self.workspace_mb < 1):
            raise UserInputError(f"--workspace must be a positive number of MB, got {self.workspace_mb!r}.")
        if self.opt_level is not None and (not isinstance(self.opt_level, int) or not 0 <= self.opt_level <= 5):
            raise UserInputError(f"--opt-level must be an integer from 0 to 5, got {self.opt_level!r}.")
        if self.dla_core is not None and self.dla_core < 0:
            raise UserInputError(f"DLA core must be >= 0, got {self.dla_core}.")
        if self.timing_cache is not None and Path(self.timing_cache).is_dir():
            raise UserInputError(f"--timing-cache must be a file, {self.timing_cache} is a folder.")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["timing_cache"] = str(self.timing_cache) if self.timing_cache else None
        d["profile"] = self.profile.to_dict() if self.profile else None
        return d


@dataclass
class EngineBuildResult:
    engine_path: Path
    sidecar_path: Path
    sidecar: dict[str, Any]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        t = self.sidecar["tensorrt"]
        layers = t.get("layers") or {}
        prof = t.get("profiles") or [{}]
        typing_ = ("strongly typed" if t["strongly_typed"]
                   else f"weakly typed (builder flags {', '.join(t['builder_flags'])})")
        lines = [
            f"TensorRT {t['version']} on {t['gpu'].get('name')} (compute capability "
            f"{t['gpu'].get('compute_capability')}): {t['precision']} engine, {typing_}, built in {self.seconds:.1f} s",
            f"profile {prof[0].get('input')}",
            f"device memory {t.get('device_memory_bytes', 0) / 2**20:.1f} MiB; {layers.get('count', '?')} layers "
            f"{layers.get('by_precision', {})}",
            f"wrote {self.engine_path} ({self.sidecar['artifact']['bytes'] / 2**20:.2f} MiB) and {self.sidecar_path}",
        ]
        if t["builder_options"].get("timing_cache"):
            lines.append(f"timing cache {t['builder_options']['timing_cache']} "
                         f"({'reused' if t['builder_options'].get('timing_cache_reused') else 'new'}, saved)")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines


def engine_sidecar_path(engine: str | Path) -> Path:
    """``DIR/<name>.json`` for ``DIR/<name>.engine`` (as for every edgesr artifact)."""
    return Path(engine).with_suffix(".json")


def read_engine_sidecar(engine: str | Path) -> dict[str, Any]:
    path = engine_sidecar_path(engine)
    if not path.is_file():
        raise UserInputError(f"engine sidecar not found: {path} (engines built by edgesr have one beside them).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read the engine sidecar {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tensorrt"), dict):
        raise UserInputError(f"{path} is not an edgesr TensorRT engine sidecar (no 'tensorrt' block).")
    return data


# ---- logger ----------------------------------------------------------------------------------------
_SEVERITY = {0: "INTERNAL_ERROR", 1: "ERROR", 2: "WARNING", 3: "INFO", 4: "VERBOSE"}
_LEVEL = {0: logging.ERROR, 1: logging.ERROR, 2: logging.WARNING, 3: logging.DEBUG, 4: logging.DEBUG}


def make_logger(trt: ModuleType) -> Any:
    """A trt.ILogger that forwards to `logging` and keeps errors/warnings for error messages."""

    class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # TensorRT's docs: call the base initialiser explicitly
            self.errors: list[str] = []
            self.warnings: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            try:
                level = int(severity)
            except (TypeError, ValueError):
                level = 3
            (self.errors if level <= 1 else self.warnings if level == 2 else []).append(msg)
            log.log(_LEVEL.get(level, logging.DEBUG), "TensorRT %s: %s", _SEVERITY.get(level, level), msg)

    return _Logger()


# ---- helpers ---------------------------------------------------------------------------------------
def _call(obj: Any, name: str, default: Any = None) -> Any:
    fn = getattr(obj, name, None)
    if fn is None:
        return default
    try:
        return fn() if callable(fn) else fn
    except Exception:  # noqa: BLE001 - optional diagnostics only
        return default


def _enum_name(value: Any) -> str:
    text = getattr(value, "name", None) or str(value)
    return str(text).split(".")[-1]


def format_parser_errors(parser: Any, onnx_nodes: list[Any] | None = None) -> list[str]:
    """Every error of a failed parse: index, node index / name / op type, description, error code."""
    n = int(parser.num_errors)
    out = []
    for i in range(n):
        err = parser.get_error(i)
        node = _call(err, "node", -1)
        name = _call(err, "node_name", "") or ""
        op = _call(err, "node_operator", "") or ""
        if onnx_nodes is not None and isinstance(node, int) and 0 <= node < len(onnx_nodes):
            name = name or onnx_nodes[node].name
            op = op or onnx_nodes[node].op_type
        where = f"node #{node}" if isinstance(node, int) and node >= 0 else "graph"
        if name or op:
            where += f" {name!r}" + (f" ({op})" if op else "")
        desc = _call(err, "desc", "") or str(err)
        code = _call(err, "code", None)
        out.append(f"[{i + 1}/{n}] {where}: {desc}" + (f" [{_enum_name(code)}]" if code is not None else ""))
    return out


def _onnx_facts(path: Path) -> dict[str, Any]:
    """What the ONNX itself says about precision: FP16 tensors, Q/DQ nodes (and uint8 ones), its nodes."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    f16 = onnx.TensorProto.FLOAT16
    fp16 = any(i.data_type == f16 for i in model.graph.initializer) or any(
        n.op_type == "Cast" and any(a.name == "to" and a.i == f16 for a in n.attribute) for n in model.graph.node)
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    return {"fp16": fp16, "qdq": len(qdq), "nodes": list(model.graph.node)}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def decide_precision(trt: ModuleType, options: TrtBuildOptions, onnx_fp16: bool,
                     onnx_qdq: int) -> tuple[bool, list[str], list[str], bool]:
    """(strongly_typed, builder flags to set, notes, int8) for this TensorRT and ONNX; UserInputError when
    the combination cannot be built."""
    major = trt_major(trt)
    version = trt_version(trt)
    has_flag = {name: hasattr(getattr(trt, "BuilderFlag", object), name) for name in ("FP16", "INT8")}
    notes: list[str] = []
    if options.int8 and not onnx_qdq:
        raise UserInputError("INT8 engines come from a Q/DQ ONNX (explicit quantization; TensorRT 11 removed the "
                             "calibrator): this ONNX has no QuantizeLinear/DequantizeLinear nodes. Use --int8 "
                             "--calib-images DIR, which quantizes the export first.")
    int8 = bool(options.int8 or onnx_qdq)
    if onnx_qdq and not options.int8:
        notes.append(f"the ONNX has {onnx_qdq} Q/DQ nodes: INT8 layers where they sit")
    strong = options.strongly_typed
    if major >= 11 and strong is False:
        raise UserInputError(f"TensorRT {version} networks are always strongly typed (weak typing was removed in 11); "
                             "drop the request for weak typing.")
    flags: list[str] = []
    if options.fp16 and not onnx_fp16:
        if strong:
            raise UserInputError("a strongly typed network keeps the ONNX's types, and this ONNX is FP32: export it "
                                 "with --fp16 (an FP16 ONNX) for an FP16 engine.")
        if not has_flag["FP16"] or major >= 11:
            raise UserInputError(f"TensorRT {version} has no FP16 builder flag (removed in TensorRT 11: precision comes "
                                 "from the ONNX types). Build from an FP16 ONNX: `edgesr export MODEL --format trt "
                                 "--fp16` exports one.")
        strong = False
        flags.append("FP16")
        notes.append(f"FP32 ONNX with the FP16 builder flag: TensorRT {version} weak-typing fallback (deprecated since "
                     "10.12, removed in 11); prefer an FP16 ONNX")
    if strong is None:
        strong = True
    if not strong:
        if int8:
            if not has_flag["INT8"]:
                raise UserInputError(f"TensorRT {version} has no INT8 builder flag; build the Q/DQ ONNX strongly typed.")
            flags.append("INT8")
        if onnx_fp16 and "FP16" not in flags and has_flag["FP16"]:
            flags.append("FP16")
    return bool(strong), flags, notes, int8


def _precision_name(onnx_fp16: bool, int8: bool, flags: list[str]) -> str:
    half = onnx_fp16 or "FP16" in flags
    if int8:
        return "int8+fp16" if half else "int8"
    return "fp16" if half else "fp32"


def _dims(value: Any) -> list[int]:
    try:
        return [int(v) for v in value]
    except TypeError:
        return []


# ---- the build ---------------------------------------------------------------------------------------
def engine_from_onnx(onnx_path: str | Path, engine_path: str | Path, options: TrtBuildOptions | None = None, *,
                     force: bool = False, trt: ModuleType | None = None, gpu: GpuInfo | None = None,
                     onnx_sidecar: dict[str, Any] | None = None) -> EngineBuildResult:
    """Build `engine_path` (.engine/.plan) and its sidecar from `onnx_path` (see the module doc).

    `onnx_sidecar`: the ONNX artifact's sidecar dict (default: read from ``<onnx>.json`` when present).
    Raises MissingDependencyError without TensorRT or a GPU, UserInputError for bad options/paths,
    ExportError when parsing or building fails (with every parser error and TensorRT's own messages).
    """
    from edgesr.utils.atomic import atomic_path, check_writable, write_bytes_atomic

    options = options or TrtBuildOptions()
    options.validate()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise UserInputError(f"ONNX file not found: {onnx_path}")
    if engine_path.suffix.lower() not in (".engine", ".plan"):
        raise UserInputError(f"the engine path must end in .engine or .plan, got {engine_path}.")
    side_path = engine_sidecar_path(engine_path)
    check_writable(engine_path, force)
    check_writable(side_path, force)
    trt = import_tensorrt(trt)
    gpu = gpu or require_gpu(options.gpu_index)
    if onnx_sidecar is None:
        cand = onnx_path.with_suffix(".json")
        onnx_sidecar = json.loads(cand.read_text(encoding="utf-8")) if cand.is_file() else {}
    facts = _onnx_facts(onnx_path)
    strong, flags, notes, int8 = decide_precision(trt, options, facts["fp16"], facts["qdq"])
    warnings: list[str] = []
    major = trt_major(trt)
    started = time.perf_counter()

    logger = make_logger(trt)
    builder = trt.Builder(logger)
    if builder is None:
        raise ExportError("TensorRT could not create a builder (no usable CUDA device?): "
                          + "; ".join(logger.errors[-5:]))
    net_flags = 0
    creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
    if strong:
        if creation is not None and hasattr(creation, "STRONGLY_TYPED"):
            net_flags |= 1 << int(creation.STRONGLY_TYPED)  # required on 10.x, accepted (always on) in 11.x
        elif major < 11:
            raise UserInputError(f"TensorRT {trt_version(trt)} has no strongly typed networks (TensorRT >= 10 has): "
                                 "upgrade with pip install -U edgesr[tensorrt].")
    network = builder.create_network(net_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = format_parser_errors(parser, facts["nodes"])
        raise ExportError(f"the TensorRT {trt_version(trt)} ONNX parser rejected {onnx_path.name} with "
                          f"{len(errors)} error(s):\n  " + "\n  ".join(errors or logger.errors[-10:])
                          + "\nRun `edgesr trt-check` on the ONNX for the unsupported ops and attributes.")

    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    config = builder.create_builder_config()
    if options.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_mb) << 20)

    profile_dict = None
    dynamic = [t for t in inputs if any(d < 0 for d in _dims(t.shape))]
    if dynamic:
        shapes = options.profile
        if shapes is None and isinstance(onnx_sidecar.get("shape_profile"), dict):
            shapes = profile_from_dict(onnx_sidecar["shape_profile"], "ONNX sidecar")
        if shapes is None:
            raise UserInputError(f"{onnx_path.name} has dynamic input dimensions ({dynamic[0].name}: "
                                 f"{_dims(dynamic[0].shape)}): give --min-shape/--opt-shape/--max-shape.")
        if len(dynamic) != 1:
            raise UserInputError(f"{onnx_path.name} has {len(dynamic)} dynamic inputs; edgesr builds one image input.")
        profile = builder.create_optimization_profile()
        profile.set_shape(dynamic[0].name, list(shapes.min), list(shapes.opt), list(shapes.max))
        config.add_optimization_profile(profile)
        profile_dict = shapes
    elif options.profile is not None:
        warnings.append("the ONNX has static input shapes: --min/--opt/--max-shape ignored")

    cache_reused = False
    if options.timing_cache is not None:
        cache_path = Path(options.timing_cache)
        data = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = config.create_timing_cache(data)
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            warnings.append(f"timing cache {cache_path} is from another TensorRT version or GPU: starting a new one "
                            "(it will be overwritten)")
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
        else:
            cache_reused = bool(data)
    if options.opt_level is not None:
        config.builder_optimization_level = int(options.opt_level)
    hw_level = "NONE"
    if options.hardware_compat:
        level = getattr(getattr(trt, "HardwareCompatibilityLevel", None), "AMPERE_PLUS", None)
        if level is None:
            raise UserInputError(f"TensorRT {trt_version(trt)} has no hardware compatibility levels.")
        config.hardware_compatibility_level = level
        hw_level = "AMPERE_PLUS"
    if options.detailed_profiling:
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    for name in flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(options.dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        if profile_dict is not None and not profile_dict.is_static:
            warnings.append("DLA needs static shapes: layers with dynamic shapes fall back to the GPU "
                            "(give equal --min/--opt/--max-shape)")

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT {trt_version(trt)} failed to build the engine from {onnx_path.name}:\n  "
                          + "\n  ".join(logger.errors[-10:] or ["(no error message from TensorRT)"]))
    plan_bytes = bytes(memoryview(plan)) if not isinstance(plan, (bytes, bytearray)) else bytes(plan)
    if options.timing_cache is not None:
        serialized = config.get_timing_cache().serialize()
        write_bytes_atomic(options.timing_cache, bytes(memoryview(serialized)), force=True)
    seconds = time.perf_counter() - started

    info = _engine_facts(trt, logger, plan_bytes)
    sidecar = _engine_sidecar(onnx_sidecar, onnx_path, engine_path, plan_bytes, trt, gpu, options, strong, flags,
                              facts, profile_dict, info, cache_reused, hw_level, seconds, notes, int8)
    with atomic_path(engine_path, force) as tmp_engine, atomic_path(side_path, force) as tmp_side:
        tmp_engine.write_bytes(plan_bytes)
        tmp_side.write_text(json.dumps(sidecar, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return EngineBuildResult(engine_path, side_path, sidecar, seconds, notes + warnings)


def _engine_facts(trt: ModuleType, logger: Any, plan: bytes) -> dict[str, Any]:
    """Deserialize the plan once: I/O tensors, profile shapes, device memory, inspector layer info."""
    from edgesr.export.tensorrt.engine_info import parse_engine_information, summarize_engine_info

    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise ExportError("TensorRT built an engine it cannot deserialize: " + "; ".join(logger.errors[-5:]))
    io = []
    profiles: dict[str, Any] = {}
    input_mode = trt.TensorIOMode.INPUT
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = engine.get_tensor_mode(name)
        entry = {"name": name, "mode": "input" if mode == input_mode else "output",
                 "dtype": dtype_name(engine.get_tensor_dtype(name)), "shape": _dims(engine.get_tensor_shape(name))}
        io.append(entry)
        if mode == input_mode and any(d < 0 for d in entry["shape"]):
            lo, opt, hi = engine.get_tensor_profile_shape(name, 0)
            profiles[name] = {"min": _dims(lo), "opt": _dims(opt), "max": _dims(hi)}
    memory = getattr(engine, "device_memory_size_v2", None)
    if memory is None:  # TensorRT < 10.1
        memory = getattr(engine, "device_memory_size", None)
    layer_info = None
    try:
        inspector = engine.create_engine_inspector()
        layer_info = parse_engine_information(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    except Exception as exc:  # noqa: BLE001 - informative only
        log.warning("engine inspector failed: %s", exc)
    return {"io": io, "profiles": profiles, "device_memory_bytes": int(memory) if memory is not None else None,
            "layer_info": layer_info, "layers": summarize_engine_info(layer_info) if layer_info else None}


_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
           "INT32": "int32", "INT64": "int64", "BOOL": "bool", "FP8": "float8", "INT4": "int4", "FP4": "float4"}


def dtype_name(dtype: Any) -> str:
    name = _enum_name(dtype).upper()
    return _DTYPES.get(name, name.lower())


def _engine_sidecar(onnx_side: dict[str, Any], onnx_path: Path, engine_path: Path, plan: bytes, trt: ModuleType,
                    gpu: GpuInfo, options: TrtBuildOptions, strong: bool, flags: list[str], facts: dict[str, Any],
                    profile: ProfileShapes | None, info: dict[str, Any], cache_reused: bool, hw_level: str,
                    seconds: float, notes: list[str], int8: bool) -> dict[str, Any]:
    side = json.loads(json.dumps(onnx_side)) if onnx_side else {"schema_version": "1.0", "kind": "edgesr-artifact"}
    side["artifact"] = {"file": engine_path.name, "format": "tensorrt", "bytes": len(plan),
                        "sha256": hashlib.sha256(plan).hexdigest()}
    if not side.get("inputs"):
        side["inputs"] = [{"name": t["name"], "dtype": t["dtype"], "shape": t["shape"], "layout": "NCHW"}
                          for t in info["io"] if t["mode"] == "input"]
        side["outputs"] = [{"name": t["name"], "dtype": t["dtype"], "shape": t["shape"], "layout": "NCHW"}
                           for t in info["io"] if t["mode"] == "output"]
    engine_profiles = [{"input": p} for p in info["profiles"].values()]
    if engine_profiles:
        side["shape_profile"] = engine_profiles[0]["input"]
    elif profile is not None:
        side["shape_profile"] = profile.to_dict()
    side["created"] = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    side["tensorrt"] = {
        "version": trt_version(trt),
        "major": trt_major(trt),
        "gpu": gpu.to_dict(),
        "precision": _precision_name(facts["fp16"], int8, flags),
        "strongly_typed": strong,
        "builder_flags": flags,
        "builder_options": {
            "workspace_mb": options.workspace_mb, "opt_level": options.opt_level,
            "hardware_compatibility_level": hw_level,
            "profiling_verbosity": "DETAILED" if options.detailed_profiling else "default",
            "timing_cache": Path(options.timing_cache).name if options.timing_cache else None,
            "timing_cache_reused": cache_reused, "dla_core": options.dla_core, "version_compatible": False,
        },
        "profiles": engine_profiles,
        "io_tensors": info["io"],
        "device_memory_bytes": info["device_memory_bytes"],
        "layers": info["layers"],
        "layer_info": info["layer_info"],
        "source_onnx": {"file": onnx_path.name, "sha256": _sha256(onnx_path), "qdq_nodes": facts["qdq"],
                        "fp16": facts["fp16"]},
        "build_seconds": round(seconds, 3),
        "notes": notes,
    }
    versions = dict(side.get("versions") or {})
    versions["tensorrt"] = trt_version(trt)
    side["versions"] = versions
    return side
