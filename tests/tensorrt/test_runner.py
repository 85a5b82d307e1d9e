"""TensorRTRunner on Polygraphy's TrtRunner, with fakes of TensorRT and of the CUDA runtime under Polygraphy
(host-memory buffers): edgesr's own parts (sidecar conventions, profile limits, stage timing, version / GPU
compatibility rules, clear errors)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from edgesr.artifacts import Sidecar
from edgesr.errors import MissingDependencyError, UserInputError
from edgesr.export.tensorrt.build import TrtBuildOptions, engine_from_onnx
from edgesr.export.tensorrt.runtime import EngineCompatibilityError, GpuInfo, check_engine_compat
from edgesr.runtimes.tensorrt_runner import TensorRTRunner
from edgesr.runtimes.torch_runner import WallStageTimer


class CpuRunner(TensorRTRunner):
    """The real runner with its torch CUDA hooks replaced: input as a CPU tensor, wall-clock stages."""

    gpu_for_test = GpuInfo("NVIDIA GeForce RTX 4090", "8.9")

    def _setup_device(self):
        self.gpu = self.gpu_for_test
        return torch.device("cpu")

    def _timer(self):
        return WallStageTimer()


@pytest.fixture
def built(fake_trt, fake_cudart, gpu, tiny_exports, tmp_path):
    """An engine + sidecar built by the fake from the tiny uint8-I/O export (the fake is the `tensorrt` that
    Polygraphy imports; CUDA memory is host memory)."""
    trt = fake_trt("10.13.0.35")
    res = engine_from_onnx(tiny_exports["uint8"], tmp_path / "tiny_trt.engine", TrtBuildOptions(), trt=trt, gpu=gpu)
    return res, trt


def test_runner_runs_with_sidecar_io_and_profile(built):
    res, trt = built
    runner = CpuRunner(res.engine_path)
    x = np.random.default_rng(0).random((1, 3, 20, 28), dtype=np.float32)
    with runner:
        y = runner.infer(x)
        assert runner.io.input_dtype == np.uint8 and runner.scale == 2
        assert runner.max_hw == (128, 128) and runner.min_hw == (4, 4) and runner.input_spec.min_size == 4
        assert set(runner.last_timing.stages) == {"h2d", "compute", "d2h"}
        assert runner.device_memory_bytes == 12 << 20
        info = runner.describe()
        assert info["tensorrt"] == "10.13.0.35" and info["built_with"] == "10.13.0.35" and info["gpu"].endswith("4090")
        with pytest.raises(UserInputError, match="outside the engine's profile .* tile the image"):
            runner.infer(np.zeros((1, 3, 20, 140), np.float32))
        runner.infer(np.zeros((1, 3, 40, 40), np.float32))  # another shape: new output buffer
    expected = np.repeat(np.repeat(np.rint(x * 255) / 255, 2, axis=2), 2, axis=3)  # uint8 in, uint8 out
    np.testing.assert_allclose(y, expected, atol=1e-6)
    calls = trt.calls[trt.calls.index("create_execution_context"):]
    first = [c for c in calls if c.startswith(("set_input_shape", "set_tensor_address", "set_output_allocator",
                                               "execute"))][:4]
    assert first == ["set_input_shape(input, (1, 3, 20, 28))", "set_tensor_address(input)",
                     "set_output_allocator(output)", "execute_async_v3"]


def test_runner_upscale_cli_tiles_inside_the_profile(built, tmp_path, monkeypatch):
    """`edgesr upscale --engine` through the real runner (CUDA hooks patched): tiles fit the 128x128 maximum."""
    from PIL import Image

    from edgesr.cli.main import cli
    from click.testing import CliRunner

    res, trt = built
    for hook in ("_setup_device", "_timer"):
        monkeypatch.setattr(TensorRTRunner, hook, getattr(CpuRunner, hook))
    monkeypatch.setattr(TensorRTRunner, "gpu_for_test", CpuRunner.gpu_for_test, raising=False)
    src = tmp_path / "lr.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (150, 301, 3), dtype=np.uint8)).save(src)
    out = CliRunner().invoke(cli, ["upscale", "--engine", str(res.engine_path), str(src), str(tmp_path / "sr.png"),
                                   "--tile", "300", "--halo", "8"])
    assert out.exit_code == 0, out.output
    assert "tile 300 -> 112" in out.output and "6 tile(s)" in out.output
    shapes = [c for c in trt.calls if c.startswith("set_input_shape")]
    assert shapes and all(max(eval(c.split(", ", 1)[1][:-1])[2:]) <= 128 for c in shapes)
    sr = np.asarray(Image.open(tmp_path / "sr.png"))
    lr = np.asarray(Image.open(src))
    np.testing.assert_array_equal(sr, lr.repeat(2, axis=0).repeat(2, axis=1))  # nearest x2, tiles seamless


def test_version_and_gpu_mismatch_name_both_sides(built, monkeypatch):
    res, _ = built
    newer = sys.modules["tensorrt"]
    monkeypatch.setattr(newer, "__version__", "10.14.1.48")
    with pytest.raises(EngineCompatibilityError, match=r"built with TensorRT 10\.13\.0\.35 but this is TensorRT "
                                                       r"10\.14\.1\.48"):
        CpuRunner(res.engine_path).activate()
    monkeypatch.setattr(newer, "__version__", "10.13.0.99")  # another build number of the same release: fine
    monkeypatch.setattr(CpuRunner, "gpu_for_test", GpuInfo("NVIDIA A100-SXM4-80GB", "8.0"))
    with pytest.raises(EngineCompatibilityError, match=r"compute capability 8\.9 \(NVIDIA GeForce RTX 4090\) but this "
                                                       r"GPU, NVIDIA A100-SXM4-80GB, has compute capability 8\.0"):
        CpuRunner(res.engine_path).activate()
    CpuRunner(res.engine_path, check_compat=False).activate()  # the user's own risk: TensorRT decides


def test_check_engine_compat_rules():
    built = {"version": "10.13.0.35", "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
             "builder_options": {"hardware_compatibility_level": "NONE"}}
    assert check_engine_compat(built, "10.13.0.35", GpuInfo("NVIDIA H100 80GB HBM3", "9.0")) == []
    warn = check_engine_compat(built, "10.13.0.35", GpuInfo("NVIDIA H200", "9.0"))
    assert len(warn) == 1 and "NVIDIA H200" in warn[0]
    with pytest.raises(EngineCompatibilityError, match="11.0.0.1"):
        check_engine_compat(built, "11.0.0.1", None)
    portable = {**built, "builder_options": {"hardware_compatibility_level": "AMPERE_PLUS"}}
    assert check_engine_compat(portable, "10.13.0.35", GpuInfo("NVIDIA A10", "8.6")) == []
    with pytest.raises(EngineCompatibilityError, match=r"Ampere and newer .* Tesla T4, has compute capability 7\.5"):
        check_engine_compat(portable, "10.13.0.35", GpuInfo("Tesla T4", "7.5"))


def test_undeserializable_engine_is_a_clear_error(built, tmp_path):
    res, _ = built
    bad = tmp_path / "bad.engine"
    side = Sidecar.from_dict(json.loads(res.sidecar_path.read_text()))
    side.write({bad: b"garbage"})  # a sidecar that matches the file, from an engine built elsewhere
    with pytest.raises(UserInputError, match=r"cannot load .*bad\.engine.* built with TensorRT 10\.13\.0\.35 for "
                                             r"compute capability 8\.9.*Rebuild"):
        CpuRunner(bad).activate()


def test_runner_without_tensorrt_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingDependencyError, match=r"pip install edgesr\[tensorrt\].*NVIDIA GPU"):
        TensorRTRunner(tmp_path / "m.engine")


def test_cuda_hooks_fail_clearly_without_cuda(built):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    res, _ = built
    with pytest.raises(UserInputError, match="CUDA is not available"):
        TensorRTRunner(res.engine_path).activate()
