"""Torch runner: parity with the module, precisions, layouts, compile, staged timing, CUDA checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgesr.errors import UserInputError
from edgesr.runtimes import create_runner
from edgesr.runtimes.torch_runner import CudaStageTimer, TorchRunner


def _reference(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("options,atol", [
    ({}, 0.0),
    ({"channels_last": True}, 1e-5),
    ({"precision": "bf16"}, 0.05),
    ({"compile": {"backend": "eager"}}, 1e-6),
])
def test_parity_with_the_module(tiny_model, lr_batch, options, atol):
    runner = create_runner(tiny_model, **options)
    y = runner.infer(lr_batch)
    assert y.dtype == np.float32 and y.shape == (1, 3, 40, 56)
    np.testing.assert_allclose(y, _reference(tiny_model, lr_batch), atol=atol, rtol=0)
    assert runner.scale == 2 and runner.min_size == 4
    if "compile" in options:
        assert runner.compile_time_s is not None and runner.describe()["compile"] == {"backend": "eager"}


def test_callers_module_is_left_alone(tiny_model, lr_batch):
    with TorchRunner(tiny_model, precision="bf16", channels_last=True) as runner:
        runner.infer(lr_batch)
        assert runner.describe()["precision"] == "bfloat16"
    p = next(tiny_model.parameters())
    assert p.dtype == torch.float32 and p.is_contiguous()


def test_staged_timing_on_cpu(tiny_model, lr_batch):
    runner = TorchRunner(tiny_model)
    runner.infer(lr_batch)
    t = runner.last_timing
    assert set(t.stages) == {"h2d", "compute", "d2h"}
    assert all(v >= 0 for v in t.stages.values())
    assert sum(t.stages.values()) <= t.infer_s + 1e-3


def test_threads_option_is_restored(tiny_model, lr_batch):
    before = torch.get_num_threads()
    with TorchRunner(tiny_model, threads=1) as runner:
        assert torch.get_num_threads() == 1
        runner.infer(lr_batch)
    assert torch.get_num_threads() == before


def test_bad_options(tiny_model):
    with pytest.raises(UserInputError, match="fp32, fp16 or bf16"):
        TorchRunner(tiny_model, precision="int8")
    with pytest.raises(UserInputError, match="'cpu' or 'cuda'"):
        TorchRunner(tiny_model, device="mps")
    with pytest.raises(UserInputError, match="nn.Module"):
        TorchRunner("model.onnx")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_fails_clearly_without_a_gpu(tiny_model):
    with pytest.raises(UserInputError, match="CUDA is not available.*device='cpu'"):
        TorchRunner(tiny_model, device="cuda")


class FakeEvent:
    """Stands in for torch.cuda.Event: `record()` stamps the next time of a scripted clock (ms)."""

    def __init__(self, clock):
        self.clock, self.t, self.synced = clock, None, False

    def record(self):
        self.t = self.clock.pop(0)

    def synchronize(self):
        self.synced = True

    def elapsed_time(self, end):
        return end.t - self.t


def test_cuda_stage_timer_logic_with_fake_events():
    clock = [0.0, 1.5, 11.5, 12.0]  # ms: start, after h2d, after compute, after d2h
    made = []

    def factory():
        made.append(FakeEvent(clock))
        return made[-1]

    timer = CudaStageTimer(factory)
    for stage in ("h2d", "compute", "d2h"):
        timer.mark(stage)
    stages = timer.finish()
    assert stages == pytest.approx({"h2d": 0.0015, "compute": 0.010, "d2h": 0.0005})
    assert made[-1].synced and not made[0].synced


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_parity_and_event_timing(tiny_model, lr_batch):
    runner = TorchRunner(tiny_model, device="cuda", precision="fp16")
    y = runner.infer(lr_batch)
    np.testing.assert_allclose(y, _reference(tiny_model, lr_batch), atol=1e-2)
    assert set(runner.last_timing.stages) == {"h2d", "compute", "d2h"}
