"""Peak memory of a runner (any backend): CPU RSS in a child process, CUDA allocations in this one.

The measuring itself (child process, high-water mark, CUDA peak) is `edgesr.analysis.memory`'s;
this module only builds the runner the child measures.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Sequence

from edgesr.analysis.memory import (CpuMemoryStats, CudaMemoryStats, measure_cpu_memory, measure_cuda_memory,
                                    saved_module)
from edgesr.errors import UserInputError

__all__ = ["runner_workload", "measure_runner_memory", "measure_runner_cuda_memory"]


def runner_workload(target: str, input_shape: Sequence[int], backend: str | None = None,
                    options: dict[str, Any] | None = None, module_file: str | None = None,
                    seed: int = 0) -> Callable[[], Any]:
    """Child-side workload: build a runner (from a file, or a module saved in `module_file`),
    activate it, make the input; return the inference call."""
    import numpy as np

    from edgesr.runtimes import create_runner

    if module_file is not None:
        import torch

        target = torch.load(module_file, weights_only=False)
    runner = create_runner(target, backend, **(options or {}))
    runner.activate()
    x = np.random.default_rng(seed).random(tuple(input_shape), dtype=np.float32)
    return lambda: runner.infer(x)


def measure_runner_memory(target: Any, input_shape: Sequence[int] = (1, 3, 256, 256), backend: str | None = None, *,
                          iters: int = 1, warmup: int = 0, timeout_s: float = 600.0,
                          **options: Any) -> CpuMemoryStats:
    """Peak CPU RSS of a runner in a child process: `target` is an artifact path or an nn.Module
    (pickled whole with `torch.save` into a temporary file; its class must be importable).
    `options` (JSON-serialisable) go to `create_runner`."""
    from torch import nn

    kwargs: dict[str, Any] = {"target": "", "input_shape": list(input_shape), "backend": backend, "options": options}
    is_module = isinstance(target, nn.Module)
    with saved_module(target) if is_module else nullcontext(None) as module_file:
        if is_module:
            kwargs["module_file"] = module_file
        else:
            kwargs["target"] = str(Path(target).resolve())
        return measure_cpu_memory("edgesr.bench.memory:runner_workload", kwargs, iters=iters, warmup=warmup,
                                  timeout_s=timeout_s)


def measure_runner_cuda_memory(runner: Any, x: Any, *, iters: int = 1) -> CudaMemoryStats:
    """`measure_cuda_memory` for a torch runner on a CUDA device (activated first, so the
    baseline holds its weights)."""
    device = getattr(runner, "device", None)
    if getattr(runner, "backend", None) != "torch" or getattr(device, "type", None) != "cuda":
        raise UserInputError(f"CUDA memory is measured for the torch runner on a CUDA device, not {runner!r} "
                             f"(device {device}).")
    runner.activate()
    return measure_cuda_memory(lambda: runner.infer(x), iters=iters, device=device)
