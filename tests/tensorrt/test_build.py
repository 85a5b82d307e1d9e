"""Engine build through Polygraphy's loaders on a recording fake `tensorrt` (10.x and 11.x feature sets):
what edgesr decides (precision, profile, options handed to Polygraphy, parser errors, timing cache file,
sidecar contents), seen at the level where Polygraphy calls TensorRT."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgesr.errors import ExportError, UserInputError
from edgesr.export.tensorrt.build import (TrtBuildOptions, decide_precision, engine_from_onnx, engine_sidecar_path,
                                          read_engine_sidecar)
from edgesr.export.tensorrt.profiles import make_profile

@pytest.mark.parametrize("version", ["10.13.0.35", "11.4.0.7"])
def test_fp16_onnx_builds_strongly_typed(version, fake_trt, gpu, tiny_exports, tmp_path):
    trt = fake_trt(version)
    cache = tmp_path / "trt.cache"
    opts = TrtBuildOptions(fp16=True, timing_cache=cache, opt_level=5, hardware_compat=True, workspace_mb=512,
                           profile=make_profile((8, 8), (64, 64), (128, 96), min_size=4))
    res = engine_from_onnx(tiny_exports["fp16"], tmp_path / "tiny_trt.engine", opts, trt=trt, gpu=gpu)
    calls = trt.calls
    assert "create_network(2)" in calls  # 1 << STRONGLY_TYPED
    assert not any(c.startswith(("set_flag(FP16", "set_flag(INT8")) for c in calls)  # strongly typed: no flags
    assert "clear_flag(TF32)" not in calls  # TensorRT's default TF32 stays on
    assert calls.index("build_serialized_network") < calls.index("deserialize_cuda_engine")
    assert "set_memory_pool_limit(WORKSPACE, 536870912)" in calls
    assert "set_shape(input, [1, 3, 8, 8], [1, 3, 64, 64], [1, 3, 128, 96])" in calls
    assert "create_timing_cache(0 bytes)" in calls and "set_timing_cache(ignore_mismatch=False)" in calls
    assert "hardware_compatibility_level=AMPERE_PLUS" in calls and "profiling_verbosity=DETAILED" in calls
    assert cache.read_bytes() == b"+timed"  # saved after the build
    side = json.loads(engine_sidecar_path(res.engine_path).read_text())
    t = side["tensorrt"]
    assert t["version"] == version and t["major"] == int(version.split(".")[0])
    assert t["gpu"] == {"name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9", "index": 0, "memory_gb": 24.0,
                        "driver": "550.54"}
    assert t["precision"] == "fp16" and t["strongly_typed"] is True and t["builder_flags"] == []
    assert t["builder_options"]["hardware_compatibility_level"] == "AMPERE_PLUS"
    assert t["builder_options"]["opt_level"] == 5 and t["builder_options"]["workspace_mb"] == 512
    assert t["builder_options"]["timing_cache"] == "trt.cache" and t["builder_options"]["timing_cache_reused"] is False
    assert t["profiles"] == [{"input": {"min": [1, 3, 8, 8], "opt": [1, 3, 64, 64], "max": [1, 3, 128, 96]}}]
    assert side["shape_profile"] == t["profiles"][0]["input"]
    assert t["device_memory_bytes"] == 12 << 20
    assert [x["name"] for x in t["io_tensors"]] == ["input", "output"] and t["io_tensors"][0]["mode"] == "input"
    assert t["layers"]["count"] == 2 and t["layers"]["by_precision"]["fp16"] == 1
    assert t["layers"]["io_tensors"] == ["input", "output"]  # Bindings (10.x) or I/O Tensors (11.x)
    assert t["source_onnx"]["file"] == "tiny_fp16.onnx" and t["source_onnx"]["fp16"] is True
    # the ONNX sidecar's conventions carry over; the artifact is the engine
    assert side["artifact"]["format"] == "tensorrt" and side["artifact"]["file"] == "tiny_trt.engine"
    assert side["artifact"]["bytes"] == res.engine_path.stat().st_size
    assert side["scale"] == 2 and side["min_size"] == 4 and side["export"]["precision"] == "fp16"
    assert side["versions"]["tensorrt"] == version
    assert read_engine_sidecar(res.engine_path)["tensorrt"]["version"] == version
    assert any("profile" in line for line in res.summary())


def test_timing_cache_is_reused_and_rewritten_atomically(fake_trt, gpu, tiny_exports, tmp_path):
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"CACHE")
    trt = fake_trt()
    res = engine_from_onnx(tiny_exports["fp16"], tmp_path / "a.engine", TrtBuildOptions(timing_cache=cache), trt=trt,
                           gpu=gpu)
    assert "create_timing_cache(5 bytes)" in trt.calls
    assert cache.read_bytes() == b"CACHE+timed"
    assert res.sidecar["tensorrt"]["builder_options"]["timing_cache_reused"] is True
    assert not list(tmp_path.glob(".t.cache.*"))  # no temporary left behind
    assert not list(tmp_path.glob("*.lock"))  # and no lock file beside the cache
    cache.write_bytes(b"OTHER-VERSION")  # a cache TensorRT refuses: another version's
    res = engine_from_onnx(tiny_exports["fp16"], tmp_path / "b.engine", TrtBuildOptions(timing_cache=cache),
                           trt=fake_trt(), gpu=gpu)
    assert any("another TensorRT version" in w for w in res.warnings)
    assert cache.read_bytes() == b"+timed"


def test_fp32_onnx_with_fp16_uses_the_builder_flag_only_on_10x(fake_trt, gpu, tiny_exports, tmp_path):
    trt10 = fake_trt("10.8.0.43")
    opts = TrtBuildOptions(fp16=True, strongly_typed=False)
    res = engine_from_onnx(tiny_exports["fp32"], tmp_path / "w.engine", opts, trt=trt10, gpu=gpu)
    assert "create_network(0)" in trt10.calls and "set_flag(FP16)" in trt10.calls
    assert trt10.calls.index("set_flag(FP16)") < trt10.calls.index("build_serialized_network")
    t = res.sidecar["tensorrt"]
    assert t["strongly_typed"] is False and t["builder_flags"] == ["FP16"] and t["precision"] == "fp16"
    assert any("deprecated since 10.12" in n for n in t["notes"])
    with pytest.raises(UserInputError, match=r"TensorRT 11\.1\.0 has no FP16 builder flag .*--fp16"):
        engine_from_onnx(tiny_exports["fp32"], tmp_path / "x.engine", TrtBuildOptions(fp16=True), trt=fake_trt("11.1.0"),
                         gpu=gpu)
    with pytest.raises(UserInputError, match="strongly typed network keeps the ONNX's types"):
        engine_from_onnx(tiny_exports["fp32"], tmp_path / "y.engine", TrtBuildOptions(fp16=True, strongly_typed=True),
                         trt=fake_trt(), gpu=gpu)
    with pytest.raises(UserInputError, match="always strongly typed"):
        engine_from_onnx(tiny_exports["fp16"], tmp_path / "z.engine", TrtBuildOptions(strongly_typed=False),
                         trt=fake_trt("11.0.0"), gpu=gpu)


def test_decide_precision_table(fake_trt):
    t10, t11 = fake_trt("10.13.0"), fake_trt("11.0.0")
    assert decide_precision(t10, TrtBuildOptions(), False, 0) == (True, [], [], False)
    assert decide_precision(t11, TrtBuildOptions(fp16=True), True, 0)[:2] == (True, [])
    strong, flags, notes, int8 = decide_precision(t11, TrtBuildOptions(), False, 40)
    assert (strong, flags, int8) == (True, [], True) and "40 Q/DQ" in notes[0]
    assert decide_precision(t10, TrtBuildOptions(int8=True, strongly_typed=False), False, 40)[1] == ["INT8"]
    with pytest.raises(UserInputError, match="Q/DQ ONNX"):
        decide_precision(t10, TrtBuildOptions(int8=True), False, 0)


def test_parser_errors_are_reported_in_full(fake_trt, gpu, tiny_exports, tmp_path):
    errors = [{"desc": "Unsupported operator Foo", "node": 3, "node_name": "", "node_operator": ""},
              {"desc": "Attribute mode=cubic is not supported", "node": 5, "node_name": "resize_1",
               "node_operator": "Resize", "code": "INVALID_NODE"},
              {"desc": "graph-level problem"}]
    trt = fake_trt(parser_errors=errors)
    with pytest.raises(ExportError) as info:
        engine_from_onnx(tiny_exports["fp32"], tmp_path / "e.engine", TrtBuildOptions(), trt=trt, gpu=gpu)
    msg = str(info.value)
    assert "3 error(s)" in msg
    assert re.search(r"\[1/3\] node #3 '.+' \(\w+\): Unsupported operator Foo \[UNSUPPORTED_NODE\]", msg)  # from ONNX
    assert "[2/3] node #5 'resize_1' (Resize): Attribute mode=cubic is not supported [INVALID_NODE]" in msg
    assert "[3/3] graph: graph-level problem" in msg and "edgesr trt-check" in msg
    assert not (tmp_path / "e.engine").exists() and not (tmp_path / "e.engine.json").exists()


def test_build_failure_and_option_errors(fake_trt, gpu, tiny_exports, tmp_path):
    with pytest.raises(ExportError, match="failed to build"):
        engine_from_onnx(tiny_exports["fp16"], tmp_path / "f.engine", TrtBuildOptions(), trt=fake_trt(build_fails=True),
                         gpu=gpu)
    assert not (tmp_path / "f.engine").exists()
    for bad, match in ((TrtBuildOptions(opt_level=7), "0 to 5"), (TrtBuildOptions(workspace_mb=0), "positive"),
                       (TrtBuildOptions(timing_cache=tmp_path), "must be a file")):
        with pytest.raises(UserInputError, match=match):
            engine_from_onnx(tiny_exports["fp16"], tmp_path / "g.engine", bad, trt=fake_trt(), gpu=gpu)
    with pytest.raises(UserInputError, match=r"\.engine or \.plan"):
        engine_from_onnx(tiny_exports["fp16"], tmp_path / "g.trt", TrtBuildOptions(), trt=fake_trt(), gpu=gpu)
    (tmp_path / "h.engine").write_bytes(b"old")
    with pytest.raises(UserInputError, match="--force"):
        engine_from_onnx(tiny_exports["fp16"], tmp_path / "h.engine", TrtBuildOptions(), trt=fake_trt(), gpu=gpu)


def test_profile_comes_from_the_onnx_sidecar(fake_trt, gpu, tiny_exports, tmp_path):
    trt = fake_trt()
    res = engine_from_onnx(tiny_exports["uint8"], tmp_path / "u.plan", TrtBuildOptions(), trt=trt, gpu=gpu)
    assert "set_shape(input, [1, 3, 4, 4], [1, 3, 64, 64], [4, 3, 128, 128])" in trt.calls
    assert res.sidecar["tensorrt"]["io_tensors"][0]["dtype"] == "uint8"
    assert res.sidecar["export"]["io"] == "uint8" and res.sidecar["tensorrt"]["precision"] == "fp32"
