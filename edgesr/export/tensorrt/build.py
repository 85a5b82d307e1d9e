"""ONNX -> serialized TensorRT engine + its sidecar JSON, built with Polygraphy (TensorRT 10.x and 11.x).

The TensorRT steps are Polygraphy's loaders (`polygraphy.backend.trt`), maintained with TensorRT itself:

    network_from_onnx_path(onnx, strongly_typed=...)              Builder, network, OnnxParser.parse_from_file
    create_config(builder, network, profiles=[Profile], memory_pool_limits={WORKSPACE: ...},
                  load_timing_cache=..., builder_optimization_level=..., hardware_compatibility_level=...,
                  profiling_verbosity=DETAILED, fp16/int8 (10.x weak typing only), use_dla=...)
    engine_bytes_from_network((builder, network, parser), config)  build_serialized_network
    engine_from_bytes(plan)                                        Runtime.deserialize_cuda_engine

What stays edgesr's own: the precision decision (TensorRT 11 removed the FP16/INT8 builder flags, so FP16
means an FP16 ONNX built strongly typed; the FP16 flag is a TensorRT 10.x fallback for an FP32 ONNX, INT8
means Q/DQ nodes), the profile taken from the ONNX sidecar, the report of every ONNX parser error (Polygraphy
only logs them), the timing cache file (read before, merged and written atomically after the build, with a
warning when TensorRT refuses an old one), the engine inspection (I/O tensors, profile, device memory,
engine-inspector layer JSON) and the engine sidecar. `trt` (the module) and `gpu` are parameters so that
tests can pass fakes; Polygraphy imports the same `tensorrt` module.

The engine sidecar (``<name>.json`` beside ``<name>.engine``) is the ONNX artifact's sidecar (same schema:
I/O names and conventions, scale, alignment, min size, halo, parity) with ``artifact`` describing the engine,
``shape_profile`` the engine's actual profile, and a ``tensorrt`` block:

``version`` (TensorRT), ``major``, ``gpu`` {name, compute_capability, index, memory_gb, driver},
``precision`` ("fp32" | "fp16" | "int8" | "int8+fp16"), ``strongly_typed``, ``builder_flags`` (weak-typing
flags used, e.g. ["FP16"]), ``builder_options`` {workspace_mb, opt_level, hardware_compatibility_level,
profiling_verbosity, timing_cache (file name), timing_cache_reused, dla_core, version_compatible},
``profiles`` [{"input": {min, opt, max}}], ``io_tensors`` [{name, mode, dtype, shape}],
``device_memory_bytes``, ``layers`` (summary of the engine inspector: count, per type, per precision),
``layer_info`` (the inspector's JSON), ``source_onnx`` {file, sha256}, ``build_seconds``, ``builder``
("polygraphy <version>").
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

from edgesr.errors import ExportError, UserInputError
from edgesr.export.tensorrt.profiles import ProfileShapes, profile_from_dict
from edgesr.export.tensorrt.runtime import GpuInfo, import_tensorrt, require_gpu, trt_major, trt_version
from edgesr.utils.hashing import sha256_bytes, sha256_file

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
    """``DIR/<name>.engine.json`` for ``DIR/<name>.engine`` (as for every edgesr artifact)."""
    from edgesr.artifacts.sidecar import sidecar_path_for

    return sidecar_path_for(engine)


def read_engine_sidecar(engine: str | Path) -> dict[str, Any]:
    """The engine's validated sidecar (files checked against it) as a dict; UserInputError without one."""
    from edgesr.artifacts.sidecar import Sidecar

    side = Sidecar.for_artifact(engine, required=True)
    if not side.block("tensorrt"):
        raise UserInputError(f"{engine_sidecar_path(engine)} is not an edgesr TensorRT engine sidecar (no 'tensorrt' "
                             "block).")
    return side.to_dict()


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


def decide_precision(trt: ModuleType, options: TrtBuildOptions, onnx_fp16: bool,
                     onnx_qdq: int) -> tuple[bool, list[str], list[str], bool]:
    """(strongly_typed, builder flags to set, notes, int8) for this TensorRT and ONNX; UserInputError when
    the combination cannot be built. The FP16/INT8 builder flags exist in TensorRT 10.x only."""
    major = trt_major(trt)
    version = trt_version(trt)
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
        if major >= 11:
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
            flags.append("INT8")
        if onnx_fp16 and "FP16" not in flags:
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
@contextlib.contextmanager
def polygraphy_quiet() -> Iterator[None]:
    """Polygraphy's own log at ERROR (INFO when edgesr logs at DEBUG), in plain text: edgesr prints its own
    summary, and a message about Polygraphy's optional 'colored' package would only be noise."""
    from polygraphy.logger import G_LOGGER

    colors = G_LOGGER.colors
    G_LOGGER.colors = False
    try:
        with G_LOGGER.verbosity(G_LOGGER.INFO if log.isEnabledFor(logging.DEBUG) else G_LOGGER.ERROR):
            yield
    finally:
        G_LOGGER.colors = colors


def _polygraphy_version() -> str:
    import polygraphy

    return str(polygraphy.__version__)


def _polygraphy_error() -> type[Exception]:
    from polygraphy.exception import PolygraphyException

    return PolygraphyException


def _parse(onnx_path: Path, strong: bool, trt: ModuleType, facts: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(builder, network, parser) from Polygraphy's `network_from_onnx_path`; on a parse failure, every
    parser error with its ONNX node (Polygraphy logs them and raises a generic error, so the ONNX is parsed
    once more with a fresh parser to collect them)."""
    from polygraphy.backend.trt import create_network, network_from_onnx_path
    from polygraphy.backend.trt.util import get_trt_logger

    try:
        return network_from_onnx_path(str(onnx_path), strongly_typed=strong)
    except _polygraphy_error() as exc:
        _, network = create_network(strongly_typed=strong)
        parser = trt.OnnxParser(network, get_trt_logger())
        parser.parse_from_file(str(onnx_path))
        errors = format_parser_errors(parser, facts["nodes"])
        raise ExportError(f"the TensorRT {trt_version(trt)} ONNX parser rejected {onnx_path.name} with "
                          f"{len(errors)} error(s):\n  " + "\n  ".join(errors or [str(exc)])
                          + "\nRun `edgesr trt-check` on the ONNX for the unsupported ops and attributes.") from None


def _profile(network: Any, options: TrtBuildOptions, onnx_sidecar: dict[str, Any], onnx_path: Path,
             warnings: list[str]) -> tuple[str | None, ProfileShapes | None]:
    """(input name, optimisation profile) of the one dynamic image input (shapes from the options, else the
    ONNX sidecar's); (None, None) for a static network."""
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    dynamic = [t for t in inputs if any(d < 0 for d in _dims(t.shape))]
    if not dynamic:
        if options.profile is not None:
            warnings.append("the ONNX has static input shapes: --min/--opt/--max-shape ignored")
        return None, None
    shapes = options.profile
    if shapes is None and isinstance(onnx_sidecar.get("shape_profile"), dict):
        shapes = profile_from_dict(onnx_sidecar["shape_profile"], "ONNX sidecar")
    if shapes is None:
        raise UserInputError(f"{onnx_path.name} has dynamic input dimensions ({dynamic[0].name}: "
                             f"{_dims(dynamic[0].shape)}): give --min-shape/--opt-shape/--max-shape.")
    if len(dynamic) != 1:
        raise UserInputError(f"{onnx_path.name} has {len(dynamic)} dynamic inputs; edgesr builds one image input.")
    return dynamic[0].name, shapes


def _config_kwargs(trt: ModuleType, options: TrtBuildOptions, flags: list[str], name: str | None,
                   profile: ProfileShapes | None, cache_file: Any) -> dict[str, Any]:
    """Polygraphy `CreateConfig` arguments for these options. TF32 stays on (TensorRT's default; Polygraphy
    would clear it); without DETAILED profiling the verbosity is TensorRT's default, LAYER_NAMES_ONLY."""
    from polygraphy.backend.trt import Profile

    kwargs: dict[str, Any] = {
        "tf32": True,
        "fp16": "FP16" in flags,
        "int8": "INT8" in flags,
        "profiling_verbosity": (trt.ProfilingVerbosity.DETAILED if options.detailed_profiling
                                else trt.ProfilingVerbosity.LAYER_NAMES_ONLY),
        # an open file: Polygraphy then reads it without leaving a .lock file beside it
        "load_timing_cache": cache_file,
    }
    if profile is not None and name is not None:
        kwargs["profiles"] = [Profile().add(name, list(profile.min), list(profile.opt), list(profile.max))]
    if options.workspace_mb is not None:
        kwargs["memory_pool_limits"] = {trt.MemoryPoolType.WORKSPACE: int(options.workspace_mb) << 20}
    if options.opt_level is not None:
        kwargs["builder_optimization_level"] = int(options.opt_level)
    if options.hardware_compat:
        kwargs["hardware_compatibility_level"] = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if options.dla_core is not None:
        kwargs.update(use_dla=True, allow_gpu_fallback=True)
    return kwargs


def _save_timing_cache(config: Any, path: Path, old: bytes, warnings: list[str]) -> bool:
    """Merge the old cache into the build's (TensorRT refuses one from another version or GPU) and write it
    atomically. Returns whether the old cache was reused."""
    from edgesr.utils.atomic import write_bytes_atomic

    cache = config.get_timing_cache()
    reused = False
    if old:
        reused = bool(cache.combine(config.create_timing_cache(old), ignore_mismatch=False))
        if not reused:
            warnings.append(f"timing cache {path} is from another TensorRT version or GPU: replaced by this build's")
    write_bytes_atomic(path, bytes(memoryview(cache.serialize())), force=True)
    return reused


def engine_from_onnx(onnx_path: str | Path, engine_path: str | Path, options: TrtBuildOptions | None = None, *,
                     force: bool = False, trt: ModuleType | None = None, gpu: GpuInfo | None = None,
                     onnx_sidecar: dict[str, Any] | None = None) -> EngineBuildResult:
    """Build `engine_path` (.engine/.plan) and its sidecar from `onnx_path` (see the module doc).

    `onnx_sidecar`: the ONNX artifact's sidecar dict (default: its sidecar ``<onnx>.json`` when present).
    Raises MissingDependencyError without TensorRT or a GPU, UserInputError for bad options/paths,
    ExportError when parsing or building fails (with every parser error, or Polygraphy's and TensorRT's
    message).
    """
    from edgesr.artifacts.sidecar import Sidecar
    from edgesr.utils.atomic import check_writable

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
        found = Sidecar.for_artifact(onnx_path)
        onnx_sidecar = found.to_dict() if found is not None else {}
    facts = _onnx_facts(onnx_path)
    strong, flags, notes, int8 = decide_precision(trt, options, facts["fp16"], facts["qdq"])
    warnings: list[str] = []
    cache_path = Path(options.timing_cache) if options.timing_cache is not None else None
    cache_data = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
    started = time.perf_counter()
    from polygraphy.backend.trt import create_config, engine_bytes_from_network

    with polygraphy_quiet():
        builder, network, parser = _parse(onnx_path, strong, trt, facts)
        dynamic_name, profile = _profile(network, options, onnx_sidecar, onnx_path, warnings)
        try:
            with open(cache_path, "rb") if cache_data else contextlib.nullcontext() as cache_file:
                config = create_config(builder, network,
                                       **_config_kwargs(trt, options, flags, dynamic_name, profile, cache_file))
            if options.dla_core is not None:
                config.DLA_core = int(options.dla_core)  # Polygraphy's use_dla picks core 0
            plan = engine_bytes_from_network((builder, network, parser), config=config)
        except _polygraphy_error() as exc:
            raise ExportError(f"TensorRT {trt_version(trt)} failed to build the engine from {onnx_path.name}: {exc} "
                              "(TensorRT's messages are above)") from None
    if options.dla_core is not None and profile is not None and not profile.is_static:
        warnings.append("DLA needs static shapes: layers with dynamic shapes fall back to the GPU "
                        "(give equal --min/--opt/--max-shape)")
    plan_bytes = bytes(memoryview(plan))
    cache_reused = _save_timing_cache(config, cache_path, cache_data, warnings) if cache_path else False
    seconds = time.perf_counter() - started

    info = engine_facts(trt, plan_bytes)
    hw_level = "AMPERE_PLUS" if options.hardware_compat else "NONE"
    sidecar = _engine_sidecar(onnx_sidecar, onnx_path, engine_path, plan_bytes, trt, gpu, options, strong, flags,
                              facts, profile, info, cache_reused, hw_level, seconds, notes, int8)
    engine_side = Sidecar.from_dict(sidecar, validate=False)  # validated by `write`
    engine_side.write({engine_path: plan_bytes}, force=force)  # the sidecar last, with the engine's sha256
    sidecar = engine_side.to_dict()
    return EngineBuildResult(engine_path, side_path, sidecar, seconds, notes + warnings)


def load_engine(trt: ModuleType, plan: bytes) -> Any:
    """Deserialize a plan with Polygraphy's `engine_from_bytes`; None when TensorRT cannot load it."""
    from polygraphy.backend.trt import engine_from_bytes

    with polygraphy_quiet():
        try:
            return engine_from_bytes(plan)
        except _polygraphy_error():
            return None


def engine_facts(trt: ModuleType, plan_or_engine: Any) -> dict[str, Any]:
    """I/O tensors, the input's profile shapes, device memory and the inspector's layer info of an engine
    (a plan is deserialized first)."""
    from edgesr.export.tensorrt.engine_info import parse_engine_information, summarize_engine_info

    engine = load_engine(trt, plan_or_engine) if isinstance(plan_or_engine, (bytes, bytearray)) else plan_or_engine
    if engine is None:
        raise ExportError(f"TensorRT {trt_version(trt)} built an engine it cannot deserialize (its messages are above)")
    io_tensors = []
    profiles: dict[str, Any] = {}
    input_mode = trt.TensorIOMode.INPUT
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = engine.get_tensor_mode(name)
        entry = {"name": name, "mode": "input" if mode == input_mode else "output",
                 "dtype": dtype_name(engine.get_tensor_dtype(name)), "shape": _dims(engine.get_tensor_shape(name))}
        io_tensors.append(entry)
        if mode == input_mode and any(d < 0 for d in entry["shape"]):
            lo, opt, hi = engine.get_tensor_profile_shape(name, 0)
            profiles[name] = {"min": _dims(lo), "opt": _dims(opt), "max": _dims(hi)}
    layer_info = None
    try:
        inspector = engine.create_engine_inspector()
        layer_info = parse_engine_information(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    except Exception as exc:  # noqa: BLE001 - informative only
        log.warning("engine inspector failed: %s", exc)
    return {"io": io_tensors, "profiles": profiles, "device_memory_bytes": device_memory_bytes(trt, engine),
            "layer_info": layer_info, "layers": summarize_engine_info(layer_info) if layer_info else None}


def device_memory_bytes(trt: ModuleType, engine: Any) -> int:
    """The engine's device memory: `device_memory_size_v2` (TensorRT >= 10.1; the only one in 11)."""
    if trt_major(trt) == 10 and trt_version(trt).startswith("10.0."):
        return int(engine.device_memory_size)
    return int(engine.device_memory_size_v2)


_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
           "INT32": "int32", "INT64": "int64", "BOOL": "bool", "FP8": "float8", "INT4": "int4", "FP4": "float4"}


def dtype_name(dtype: Any) -> str:
    name = _enum_name(dtype).upper()
    return _DTYPES.get(name, name.lower())


def _engine_sidecar(onnx_side: dict[str, Any], onnx_path: Path, engine_path: Path, plan: bytes, trt: ModuleType,
                    gpu: GpuInfo, options: TrtBuildOptions, strong: bool, flags: list[str], facts: dict[str, Any],
                    profile: ProfileShapes | None, info: dict[str, Any], cache_reused: bool, hw_level: str,
                    seconds: float, notes: list[str], int8: bool) -> dict[str, Any]:
    from edgesr.artifacts.sidecar import KIND, SCHEMA_VERSION

    side = json.loads(json.dumps(onnx_side)) if onnx_side else {"schema_version": SCHEMA_VERSION, "kind": KIND}
    side["schema_version"] = SCHEMA_VERSION
    side["artifact"] = {"file": engine_path.name, "format": "tensorrt", "bytes": len(plan),
                        "sha256": sha256_bytes(plan)}
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
        "source_onnx": {"file": onnx_path.name, "sha256": sha256_file(onnx_path), "qdq_nodes": facts["qdq"],
                        "fp16": facts["fp16"]},
        "build_seconds": round(seconds, 3),
        "builder": f"polygraphy {_polygraphy_version()}",
        "notes": notes,
    }
    versions = dict(side.get("versions") or {})
    versions["tensorrt"] = trt_version(trt)
    side["versions"] = versions
    return side
