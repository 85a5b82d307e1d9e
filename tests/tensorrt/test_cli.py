"""TensorRT from the command line without TensorRT/GPU: fast, clear failures (exit 2 naming the extra), the
readiness command, and `import edgesr` never importing TensorRT."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
import onnx

from edgesr.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "EDGESR_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full, cwd=ROOT, timeout=300)


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_import_edgesr_never_imports_tensorrt():
    code = ("import sys, edgesr, edgesr.export, edgesr.runtimes, edgesr.cli.main\n"
            "import edgesr.export.tensorrt as t\n"
            "from edgesr.export.tensorrt import build, profiles, readiness, engine_info, qdq, pipeline, runtime\n"
            "import edgesr.runtimes.tensorrt_runner, edgesr.cli.trt_check_cmd, edgesr.cli.export_cmd\n"
            "t.check_readiness, t.engine_from_onnx, edgesr.runtimes.TensorRTRunner\n"
            "assert 'tensorrt' not in sys.modules, 'tensorrt imported'\n"
            "import torch; assert not torch.cuda.is_initialized()\n"
            "print('clean')")
    proc = _run("-c", code)
    assert proc.returncode == 0 and "clean" in proc.stdout, proc.stderr


def test_export_trt_without_tensorrt_fails_fast_naming_the_extra(tmp_path):
    start = time.perf_counter()
    proc = _run("-m", "edgesr.cli.main", "export", "rlfn_x4", "--format", "trt", "--fp16", "-o", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "pip install edgesr[tensorrt]" in proc.stderr and "NVIDIA GPU" in proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())  # nothing exported first
    assert time.perf_counter() - start < 60


def test_export_trt_with_tensorrt_but_no_gpu_names_the_gpu(tmp_path):
    if os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("an NVIDIA driver is present")
    fake = tmp_path / "site" / "tensorrt"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("__version__ = '10.13.0.35'\n")
    proc = _run("-m", "edgesr.cli.main", "export", "rlfn_x4", "--format", "trt", "-o", str(tmp_path / "out"),
                env={"PYTHONPATH": os.pathsep.join([str(fake.parent), str(ROOT)]), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr
    assert "needs an NVIDIA GPU with a CUDA driver, and none was found" in proc.stderr
    assert "pip install edgesr[tensorrt]" in proc.stderr and "Traceback" not in proc.stderr


def test_trt_options_are_validated_first(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    code, _, err = _main(capsys, "export", "rlfn_x4", "--format", "trt", "--int8", "-o", str(tmp_path))
    assert code == 2 and "--int8 needs --calib-images DIR" in err
    code, _, err = _main(capsys, "export", "rlfn_x4", "--timing-cache", "x.cache", "-o", str(tmp_path))
    assert code == 2 and "--timing-cache applies to --format trt only" in err
    code, _, err = _main(capsys, "export", "rlfn_x4", "--format", "trt", "--opt-level", "9", "-o", str(tmp_path))
    assert code == 2 and "0 to 5" in err
    code, _, err = _main(capsys, "export", "rlfn_x4", "--format", "trt", "--weakly-typed", "-o", str(tmp_path))
    assert code == 2 and "--weakly-typed goes with --fp16" in err


def test_engine_commands_without_tensorrt(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 16)
    img = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    for argv in (["upscale", "--engine", str(engine), str(img), str(tmp_path / "out.png")],
                 ["bench", "--engine", str(engine), "--size", "32x32"]):
        code, _, err = _main(capsys, *argv)
        assert code == 2 and "edgesr[tensorrt]" in err and "NVIDIA GPU" in err, (argv, err)
    code, _, err = _main(capsys, "upscale", str(img), str(tmp_path / "o.png"))
    assert code == 2 and "MODEL SRC DST" in err


def test_trt_check_command(capsys, tmp_path, tiny_exports):
    code, out, _ = _main(capsys, "trt-check", str(tiny_exports["fp16"]), "--no-polygraphy", "--json",
                         str(tmp_path / "r.json"))
    assert code == 0 and "READY for the TensorRT ONNX parser" in out and "DLA hints" in out
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is True
    bad = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("NonMaxSuppression", ["c"], ["n"]),
         helper.make_node("MatMulInteger", ["c", "c"], ["y"], name="mmi")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        initializer=[numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "w")]),
        opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    code, out, err = _main(capsys, "trt-check", str(tmp_path / "bad.onnx"), "--no-dla", "--no-polygraphy")
    assert code == 1 and "NOT READY" in out and "MatMulInteger: not supported" in out and "[mmi]" in out
    assert "not ready for TensorRT: 1 error(s)" in err
    code, _, err = _main(capsys, "trt-check", str(tmp_path / "missing.onnx"))
    assert code == 2 and "not found" in err


def test_trt_check_runs_polygraphy_when_installed(capsys, tiny_exports):
    pytest.importorskip("polygraphy")
    code, out, _ = _main(capsys, "trt-check", str(tiny_exports["fp32"]), "--polygraphy", "--no-dla")
    assert code == 0 and "polygraphy: inspect model: loaded (opset 18" in out
