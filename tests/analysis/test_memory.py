"""Peak memory: CPU RSS in a child process, CUDA peak allocation (logic tested with a fake)."""
from __future__ import annotations

import pytest

from edgesr.analysis.memory import CudaMemoryStats, measure_cpu_memory, measure_cuda_memory, measure_model_memory
from edgesr.errors import UserInputError

WORKLOAD = '''
import numpy as np

def setup(mb):
    keep = np.ones(8 * 2**20 // 8)          # loaded state: in the baseline, not in the delta
    def run():
        block = np.empty(int(mb * 2**20), dtype=np.uint8)
        block[::4096] = 1                    # touch every page
        return int(block[::4096].sum()) + int(keep[0])
    return run
'''


def test_child_sees_a_known_allocation(tmp_path):
    path = tmp_path / "workload.py"
    path.write_text(WORKLOAD)
    stats = measure_cpu_memory(f"{path}:setup", {"mb": 200})
    assert stats.method == "vmhwm-reset"
    assert stats.baseline_rss_mb > 8
    assert stats.inference_mb == pytest.approx(200, rel=0.10)
    assert stats.to_dict()["inference_mb"] == stats.inference_mb


def test_child_errors_are_reported(tmp_path):
    with pytest.raises(UserInputError, match="must be 'package.module:function'"):
        measure_cpu_memory("no_function_here")
    path = tmp_path / "broken.py"
    path.write_text("def setup():\n    raise ZeroDivisionError('boom')\n")
    with pytest.raises(RuntimeError, match="boom"):
        measure_cpu_memory(f"{path}:setup")


def test_model_memory_grows_with_the_input_and_sizes_tiles():
    from edgesr import create_model
    from edgesr.inference.tiling import estimate_bytes_per_lr_pixel

    model = create_model("rlfn", feature_channels=8, num_blocks=1, esa_channels=4)  # x4
    small = measure_model_memory(model, (1, 3, 32, 32), threads=1)
    large = measure_model_memory(model, (1, 3, 256, 256), threads=1)
    assert small.baseline_rss_mb > 50  # python + torch
    assert large.inference_mb > small.inference_mb + 12  # the 1x3x1024x1024 float32 output alone is 12 MiB
    assert estimate_bytes_per_lr_pixel(model, method="measured", size=128) > 3 * 16 * 4  # at least the output


class FakeCuda:
    def __init__(self, available=True):
        self.available, self.allocated, self.peak, self.calls = available, 100 * 2**20, 0, []

    def is_available(self):
        return self.available

    def synchronize(self, device=None):
        self.calls.append("sync")

    def memory_allocated(self, device=None):
        return self.allocated

    def reset_peak_memory_stats(self, device=None):
        self.peak = self.allocated
        self.calls.append("reset")

    def max_memory_allocated(self, device=None):
        return self.peak

    def max_memory_reserved(self, device=None):
        return self.peak + 2**20

    def alloc(self, n):
        self.peak = max(self.peak, self.allocated + n)


def test_cuda_peak_logic_with_a_fake():
    cuda = FakeCuda()
    stats = measure_cuda_memory(lambda: cuda.alloc(50 * 2**20), iters=2, cuda=cuda)
    assert isinstance(stats, CudaMemoryStats)
    assert (stats.baseline_mb, stats.peak_mb, stats.inference_mb) == (100, 150, 50)
    assert cuda.calls[:2] == ["sync", "reset"] and cuda.calls[-1] == "sync"


def test_cuda_memory_fails_clearly_without_cuda():
    with pytest.raises(UserInputError, match="CUDA GPU"):
        measure_cuda_memory(lambda: None, cuda=FakeCuda(available=False))
