"""Peak memory of a runner: CPU RSS in a child process, CUDA only for the torch runner on a GPU."""
from __future__ import annotations

import pytest
from torch import nn

from edgesr.bench.memory import measure_runner_cuda_memory, measure_runner_memory
from edgesr.errors import UserInputError
from edgesr.runtimes import create_runner


def test_runner_memory_of_a_module():
    from edgesr import create_model

    model = create_model("rlfn", feature_channels=8, num_blocks=1, esa_channels=4)
    stats = measure_runner_memory(model, (1, 3, 64, 64), threads=1)
    assert stats.peak_rss_mb >= stats.baseline_rss_mb > 50  # python + torch
    assert 0 <= stats.inference_mb < 200


def test_runner_cuda_memory_needs_the_torch_runner_on_cuda():
    with pytest.raises(UserInputError, match="torch runner on a CUDA device"):
        measure_runner_cuda_memory(create_runner(nn.Conv2d(3, 3, 1)), None)
