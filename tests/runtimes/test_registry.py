"""Backend registry and `create_runner`: dispatch by target, clear errors for missing backends."""
from __future__ import annotations

import subprocess
import sys

import pytest

from edgesr.errors import MissingDependencyError, UserInputError
from edgesr.runtimes import create_runner, get_backend, list_backends

HEAVY = ("onnxruntime", "openvino", "tensorrt", "ncnn", "executorch")


def test_every_backend_is_registered():
    assert set(list_backends()) >= {"torch", "onnxruntime", "openvino", "tensorrt", "ncnn", "executorch"}
    assert get_backend("ort").name == "onnxruntime" and get_backend("TRT").name == "tensorrt"


def test_importing_runtimes_and_bench_loads_no_backend_package():
    code = ("import sys, edgesr.runtimes, edgesr.bench.latency, edgesr.bench.memory, edgesr.bench.env\n"
            "from edgesr.runtimes import list_backends, get_backend\n"
            "list_backends(available_only=True); get_backend('tensorrt').load_runner_class()\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_unknown_backend_suggests_names():
    with pytest.raises(UserInputError, match="Did you mean: onnxruntime"):
        get_backend("onnxruntim")


@pytest.mark.parametrize("suffix,backend,extra", [
    (".engine", "tensorrt", "edgesr[tensorrt]"),
    (".plan", "tensorrt", "edgesr[tensorrt]"),
    (".param", "ncnn", "edgesr[mobile]"),
    (".pte", "executorch", "edgesr[executorch]"),
])
def test_missing_backend_names_the_extra(tmp_path, monkeypatch, suffix, backend, extra):
    monkeypatch.setitem(sys.modules, get_backend(backend).package, None)  # as if not installed
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\0")
    with pytest.raises(MissingDependencyError) as info:
        create_runner(path)
    msg = str(info.value)
    assert f"pip install {extra}" in msg
    if backend == "tensorrt":
        assert "NVIDIA GPU" in msg


def test_stub_runner_itself_checks_its_dependency(tmp_path, monkeypatch):
    from edgesr.runtimes.tensorrt_runner import TensorRTRunner

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingDependencyError, match=r"pip install edgesr\[tensorrt\].*NVIDIA GPU"):
        TensorRTRunner(tmp_path / "model.engine")


def test_missing_openvino_names_its_extra(tiny_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(MissingDependencyError, match=r"pip install edgesr\[openvino\]"):
        create_runner(tiny_onnx, backend="openvino")


def test_dispatch_by_target(tiny_model, tiny_onnx):
    assert create_runner(tiny_model).backend == "torch"
    assert create_runner(tiny_onnx).backend == "onnxruntime"
    if get_backend("openvino").is_available():
        assert create_runner(tiny_onnx, backend="ov").backend == "openvino"


def test_user_errors(tiny_model, tiny_onnx, tmp_path):
    with pytest.raises(UserInputError, match="known extensions"):
        create_runner(tmp_path / "model.bin")
    with pytest.raises(UserInputError, match="not a PyTorch module"):
        create_runner(tiny_model, backend="onnxruntime")
    with pytest.raises(UserInputError, match="nn.Module, not a file"):
        create_runner(tiny_onnx, backend="torch")
    with pytest.raises(UserInputError, match=r"opens \.engine, \.plan files, not 'tiny_sr.onnx'"):
        create_runner(tiny_onnx, backend="tensorrt")
    with pytest.raises(UserInputError, match="not found"):
        create_runner(tmp_path / "missing.onnx")
    with pytest.raises(UserInputError, match="takes: .*threads"):
        create_runner(tiny_onnx, thread=2)
    with pytest.raises(UserInputError, match="cannot run a int"):
        create_runner(3)


def test_onnxruntime_gpu_providers_fail_clearly_without_onnxruntime_gpu(tiny_onnx):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu with CUDA is installed here")
    for provider in ("cuda", "tensorrt"):
        with pytest.raises(MissingDependencyError, match=r"edgesr\[gpu\].*NVIDIA GPU"):
            create_runner(tiny_onnx, provider=provider).activate()
