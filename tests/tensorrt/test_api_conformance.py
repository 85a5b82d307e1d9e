"""TensorRT API conformance without a GPU: every TensorRT name edgesr and the Polygraphy loaders it calls
touch exists in the real Python bindings of each supported version.

`tests/tensorrt/data/trt_api_<version>.txt` lists the names of the real bindings (written by
`scripts/trt_api_names.py` from the wheels on the package index). The names touched come from two places:
the recording fake, while edgesr's build -> inspect -> run path runs through Polygraphy on it (for each
supported version, with that version's feature set), and an `ast` walk of edgesr's source for ``trt.X`` /
``trt.X.Y``. On top, the 11.x path must use nothing TensorRT 11 removed (the FP16/INT8 builder flags, the
INT8 calibrator), which the scope-less names files cannot tell for ``INT8`` alone. The Polygraphy side is
checked against the installed Polygraphy: every name edgesr imports from it exists and every keyword it
passes is accepted; Polygraphy's ONNX-only loaders and runners are run for real on an RLFN export.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np
import pytest

from edgesr.export.tensorrt.build import TrtBuildOptions, engine_facts, engine_from_onnx
from edgesr.export.tensorrt.profiles import make_profile

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).with_name("data")
SUPPORTED = sorted((p.stem.removeprefix("trt_api_") for p in DATA.glob("trt_api_*.txt")),
                   key=lambda v: tuple(int(x) for x in v.split(".")))

# Removed in TensorRT 11 (release notes; docs/deploy.md). "INT8" is also a DataType member, so the names
# files alone cannot show that BuilderFlag.INT8 is gone: these are checked by scope.
REMOVED_IN_11 = frozenset({
    "BuilderFlag.FP16", "BuilderFlag.INT8", "BuilderFlag.BF16", "IBuilderConfig.int8_calibrator",
    "IBuilderConfig.set_calibration_profile", "IBuilderConfig.get_calibration_profile", "IInt8Calibrator",
    "IInt8EntropyCalibrator", "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator", "IInt8LegacyCalibrator",
    "ICudaEngine.device_memory_size", "NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
})
# Names of REMOVED_IN_11 that edgesr's source may use because the use only runs on 10.x (none today: the
# 10.x FP16/INT8 flags are requested through Polygraphy's create_config, which the fake records).
VERSION_GATED: frozenset[str] = frozenset()


class ApiNames:
    """One version's names; a name is present as a whole string or as the tail of one (the linker stores
    a string that ends another inside it)."""

    def __init__(self, version: str) -> None:
        lines = (DATA / f"trt_api_{version}.txt").read_text(encoding="utf-8").splitlines()
        self.version = version
        self.names = {ln for ln in lines if ln and not ln.startswith("#")}
        self.tails = {n[i:] for n in self.names for i in range(len(n))}

    def has(self, dotted: str) -> bool:
        return all(part in self.tails for part in dotted.split("."))


def missing(touched: Iterable[str], api: ApiNames) -> list[str]:
    return sorted(name for name in set(touched) if not api.has(name))


def conformance_errors(touched: dict[str, set[str]], static: dict[str, list[str]]) -> list[str]:
    """Everything wrong, one line each: names the fake recorded under a version but that version lacks,
    names in edgesr's source that a supported version lacks, removed-in-11 names touched under 11.x."""
    errors = []
    for version in SUPPORTED:
        api = ApiNames(version)
        for name in missing(touched.get(version, ()), api):
            errors.append(f"TensorRT {version} has no {name} (touched while building/running through Polygraphy)")
        for name in missing(static, api):
            errors.append(f"TensorRT {version} has no {name} (used at {', '.join(static[name][:3])})")
        if int(version.split(".")[0]) >= 11:
            for name in sorted(set(touched.get(version, ())) & REMOVED_IN_11):
                errors.append(f"TensorRT {version} removed {name}, but the 11.x path touches it")
            for name in sorted((set(static) & REMOVED_IN_11) - VERSION_GATED):
                errors.append(f"TensorRT {version} removed {name}, used at {', '.join(static[name][:3])} (gate it on "
                              "the major version and list it in VERSION_GATED)")
    return errors


# ---- names in edgesr's source ------------------------------------------------------------------------
def static_trt_names(root: Path) -> dict[str, list[str]]:
    """``X`` / ``X.Y`` for each ``trt.X.Y`` / ``tensorrt.X.Y`` (and ``getattr(trt, "X")``) under `root`."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = f"{path.relative_to(root.parent)}"
        for node in ast.walk(tree):
            chain: list[str] = []
            cur: ast.AST = node
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            parts = [p for p in reversed(chain) if not p.startswith("__")][:2]
            if parts and isinstance(cur, ast.Name) and cur.id in ("trt", "tensorrt"):
                found.setdefault(".".join(parts), []).append(f"{where}:{node.lineno}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                    and len(node.args) >= 2 and isinstance(node.args[0], ast.Name)
                    and node.args[0].id in ("trt", "tensorrt") and isinstance(node.args[1], ast.Constant)):
                found.setdefault(str(node.args[1].value), []).append(f"{where}:{node.lineno}")
    # keep only the longest chains ("BuilderFlag.FP16" covers "BuilderFlag")
    return {k: v for k, v in found.items() if not any(o.startswith(k + ".") for o in found)}


# ---- names touched at run time -----------------------------------------------------------------------
def exercise(version: str, fake_trt, gpu, tiny_exports, tmp_path: Path) -> set[str]:
    """edgesr's build -> inspect -> run path on a fake of `version` through Polygraphy; the names touched."""
    from edgesr.runtimes.tensorrt_runner import TensorRTRunner
    from edgesr.runtimes.torch_runner import WallStageTimer

    touched: set[str] = set()
    out = tmp_path / version
    out.mkdir()
    profile = make_profile((8, 8), (64, 64), (128, 96), min_size=4)
    trt = fake_trt(version)
    cache = out / "trt.cache"
    for i in range(2):  # a new timing cache, then the same one reused and merged
        res = engine_from_onnx(tiny_exports["fp16"], out / f"fp16_{i}.engine",
                               TrtBuildOptions(timing_cache=cache, opt_level=4, hardware_compat=True,
                                               workspace_mb=256, profile=profile), trt=trt, gpu=gpu)
    engine_facts(trt, res.engine_path.read_bytes())
    touched |= trt.touched
    trt = fake_trt(version)
    engine_from_onnx(tiny_exports["uint8"], out / "dla.engine", TrtBuildOptions(dla_core=1, detailed_profiling=False),
                     trt=trt, gpu=gpu)
    touched |= trt.touched
    if int(version.split(".")[0]) < 11:  # the weak-typing fallback exists on 10.x only
        trt = fake_trt(version)
        engine_from_onnx(tiny_exports["fp32"], out / "weak.engine", TrtBuildOptions(fp16=True, strongly_typed=False),
                         trt=trt, gpu=gpu)
        touched |= trt.touched
    trt = fake_trt(version, parser_errors=[{"desc": "Unsupported operator Foo", "node": 1}])
    with pytest.raises(Exception, match="parser rejected"):
        engine_from_onnx(tiny_exports["fp32"], out / "bad.engine", TrtBuildOptions(), trt=trt, gpu=gpu)
    touched |= trt.touched

    trt = fake_trt(version)
    built = engine_from_onnx(tiny_exports["uint8"], out / "run.engine", TrtBuildOptions(), trt=trt, gpu=gpu)

    class CpuRunner(TensorRTRunner):
        def _setup_device(self):
            import torch

            self.gpu = gpu
            return torch.device("cpu")

        def _timer(self):
            return WallStageTimer()

    with CpuRunner(built.engine_path) as runner:
        y = runner.infer(np.zeros((1, 3, 20, 28), np.float32))
        assert y.shape == (1, 3, 40, 56) and runner.device_memory_bytes == 12 << 20
    touched |= trt.touched
    return touched


@pytest.fixture
def touched_by_version(fake_trt, fake_cudart, gpu, tiny_exports, tmp_path) -> dict[str, set[str]]:
    return {v: exercise(v, fake_trt, gpu, tiny_exports, tmp_path) for v in SUPPORTED}


def test_names_files_cover_a_10x_and_an_11x_release():
    majors = {int(v.split(".")[0]) for v in SUPPORTED}
    assert {10, 11} <= majors, SUPPORTED
    old, new = ApiNames(SUPPORTED[0]), ApiNames(SUPPORTED[-1])
    for name in ("Builder", "OnnxParser", "Runtime", "ICudaEngine.get_tensor_name", "IExecutionContext.execute_async_v3",
                 "IBuilderConfig.set_memory_pool_limit", "BuilderFlag.GPU_FALLBACK", "NetworkDefinitionCreationFlag"):
        assert old.has(name) and new.has(name), name
    # what the binaries themselves show of TensorRT 11's removals
    for name in ("FP16", "int8_calibrator", "IInt8Calibrator", "IInt8EntropyCalibrator2", "EXPLICIT_BATCH"):
        assert name in old.names and not new.has(name), name


def test_trt_api_conformance(touched_by_version):
    static = static_trt_names(ROOT / "edgesr")
    assert {"TensorIOMode.INPUT", "MemoryPoolType.WORKSPACE", "LayerInformationFormat.JSON"} <= set(static)
    for version, touched in touched_by_version.items():
        # the build, inspect and run steps of both edgesr and Polygraphy were seen
        assert {"Builder.create_network", "OnnxParser.parse_from_file", "IBuilderConfig.set_memory_pool_limit",
                "IOptimizationProfile.set_shape", "Builder.build_serialized_network", "ITimingCache.combine",
                "Runtime.deserialize_cuda_engine", "ICudaEngine.create_engine_inspector",
                "IExecutionContext.execute_async_v3", "IOutputAllocator", "ParserError.desc",
                "IBuilderConfig.DLA_core"} <= touched, version
    assert "BuilderFlag.FP16" in touched_by_version[SUPPORTED[0]]  # the 10.x weak-typing fallback ran
    errors = conformance_errors(touched_by_version, static)
    assert not errors, "\n".join(errors)


def test_planted_removed_or_unknown_names_fail(touched_by_version, tmp_path):
    """A planted use of a removed or non-existent attribute, in a copy of edgesr's source or at run time,
    makes the check fail naming it."""
    copy = tmp_path / "edgesr"
    shutil.copytree(ROOT / "edgesr", copy, ignore=shutil.ignore_patterns("__pycache__"))
    build = copy / "export" / "tensorrt" / "build.py"
    build.write_text(build.read_text(encoding="utf-8") + "\n\ndef _planted(trt, config):\n"
                     "    config.set_flag(trt.BuilderFlag.FP16)\n"
                     "    config.set_flag(trt.BuilderFlag.INT8)\n"
                     "    config.int8_calibrator = trt.IInt8EntropyCalibrator2()\n"
                     "    return trt.ICudaEngine.enqueue_v9\n", encoding="utf-8")
    errors = conformance_errors(touched_by_version, static_trt_names(copy))
    text = "\n".join(errors)
    newest = SUPPORTED[-1]
    assert f"TensorRT {newest} has no BuilderFlag.FP16 (used at edgesr/export/tensorrt/build.py:" in text
    assert f"TensorRT {newest} has no IInt8EntropyCalibrator2" in text
    assert f"TensorRT {newest} removed BuilderFlag.INT8, used at edgesr/export/tensorrt/build.py:" in text  # scoped
    assert all(f"TensorRT {v} has no ICudaEngine.enqueue_v9" in text for v in SUPPORTED)
    assert f"TensorRT {SUPPORTED[0]} has no BuilderFlag.FP16" not in text  # 10.x still has it

    planted = {v: set(t) for v, t in touched_by_version.items()}
    planted[newest] |= {"BuilderFlag.INT8", "ICudaEngine.device_memory_size"}  # a fake too lenient for 11.x
    text = "\n".join(conformance_errors(planted, {}))
    assert f"TensorRT {newest} removed BuilderFlag.INT8, but the 11.x path touches it" in text
    assert f"TensorRT {newest} has no ICudaEngine.device_memory_size (touched" in text


# ---- Polygraphy: the calls edgesr makes, and its ONNX-only parts for real ------------------------------------
def _polygraphy_calls(root: Path) -> list[tuple[str, object, list[str]]]:
    """(where, Polygraphy object, keyword names) for each call in `root` of a name imported from polygraphy."""
    calls = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("polygraphy"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{path}: polygraphy has no {node.module}.{alias.name}"
                    imported[alias.asname or alias.name] = (getattr(module, alias.name), module)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported:
                obj, module = imported[node.func.id]
                calls.append((f"{path.name}:{node.lineno}", obj, module, [k.arg for k in node.keywords if k.arg]))
    return calls


def _accepted_keywords(obj: object, module: object) -> set[str] | None:
    """Parameter names `obj` accepts (None: any). A funcified Polygraphy loader (``create_config``) forwards
    **kwargs to its loader class's constructors (``CreateConfig``)."""
    params = inspect.signature(obj).parameters
    names = {p.name for p in params.values()}
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return names
    cls = getattr(module, "".join(w.title() for w in obj.__name__.split("_")), None)
    if cls is None:
        return None
    for base in inspect.getmro(cls):
        if "__init__" in vars(base):
            names |= set(inspect.signature(base.__init__).parameters)
    return names


def test_polygraphy_calls_match_the_installed_polygraphy(fake_trt, tmp_path):
    """Every name edgesr imports from Polygraphy exists, every keyword it passes is accepted (the options
    handed to `create_config` included, all set at once)."""
    calls = _polygraphy_calls(ROOT / "edgesr")
    called = {getattr(obj, "__name__", "") for _, obj, _, _ in calls}
    assert {"network_from_onnx_path", "create_config", "engine_bytes_from_network", "engine_from_bytes",
            "TrtRunner", "Profile"} <= called, called
    for where, obj, module, keywords in calls:
        accepted = _accepted_keywords(obj, module)
        assert accepted is not None, where
        assert set(keywords) <= accepted, f"{where}: {obj.__name__} does not take {set(keywords) - accepted}"
    from polygraphy.backend import trt as pg_trt

    from edgesr.export.tensorrt.build import _config_kwargs

    options = TrtBuildOptions(workspace_mb=64, opt_level=2, hardware_compat=True, dla_core=0)
    kwargs = _config_kwargs(fake_trt("10.16.1.11"), options, ["FP16"], "input", make_profile(None, (8, 8), (16, 16)),
                            None)
    assert set(kwargs) <= _accepted_keywords(pg_trt.create_config, pg_trt)
    assert {"profiles", "memory_pool_limits", "builder_optimization_level", "hardware_compatibility_level",
            "use_dla", "fp16"} <= set(kwargs)


@pytest.fixture(scope="module")
def rlfn_onnx(rlfn_x4_onnx):
    """The real RLFN x4 (official weights), exported by edgesr (the session's shared export)."""
    return rlfn_x4_onnx.path


def test_polygraphy_onnx_loaders_and_comparator_on_rlfn(rlfn_onnx, datasets_dir):
    """Polygraphy's ONNX-only parts for real: load and shape-infer the export, run it with Polygraphy's ONNX
    Runtime runner on a Set5 LR crop, and compare it with edgesr's own ONNX Runtime runner."""
    from polygraphy.backend.onnx import infer_shapes, onnx_from_path
    from polygraphy.backend.onnxrt import OnnxrtRunner, session_from_onnx
    from polygraphy.comparator import Comparator, SimpleCompareFunc

    from edgesr.data import read_image
    from edgesr.runtimes import create_runner

    model = infer_shapes(onnx_from_path(str(rlfn_onnx)))
    assert [i.name for i in model.graph.input] == ["input"] and len(model.graph.node) > 50
    lr = read_image(sorted((datasets_dir / "Set5" / "LR_bicubic" / "X4").glob("*.png"))[0])
    x = np.ascontiguousarray(lr[:40, :48].transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    runners = [OnnxrtRunner(session_from_onnx(str(rlfn_onnx), providers=["CPUExecutionProvider"])) for _ in range(2)]
    results = Comparator.run(runners, data_loader=[{"input": x}])
    assert bool(Comparator.compare_accuracy(results, compare_func=SimpleCompareFunc(atol=1e-6)))
    y = np.asarray(results[0][1][0]["output"])
    assert y.shape == (1, 3, 160, 192) and 0.2 < float(y.mean()) < 0.8
    with create_runner(rlfn_onnx) as ours:
        ref = ours.infer(x)
    np.testing.assert_allclose(y, ref, atol=1e-5)
