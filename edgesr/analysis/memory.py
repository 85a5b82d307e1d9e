"""Peak memory of a workload: CPU resident set size in a child process, CUDA allocations in this one.

CPU: the model is loaded and run in a fresh Python child, so nothing the parent holds (other
models, datasets, pytest) is counted. The child records its RSS after loading (``baseline``),
resets the kernel's high-water mark (``/proc/self/clear_refs`` = 5, Linux >= 4.0), runs the
inference and reads ``VmHWM`` (``peak``): ``peak - baseline`` is what inference adds. Where the
mark cannot be reset, ``peak`` is the lifetime ``ru_maxrss`` (it then also covers loading) and
`method` says so.

CUDA: `torch.cuda.max_memory_allocated` around the inference, after `reset_peak_memory_stats`;
the baseline (`memory_allocated` before) holds the weights.

A CPU workload is named ``"package.module:function"`` or ``"/path/to/file.py:function"``; the
function is called in the child with the given keyword arguments, does its loading, and returns
a zero-argument callable: the inference that is measured. `measure_model_memory` measures an eager
PyTorch forward pass; `edgesr.bench.memory` measures any runner with the same machinery.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from edgesr.errors import UserInputError

_MB = 1024.0 * 1024.0


@dataclass(frozen=True)
class CpuMemoryStats:
    """RSS of the child, in MiB: after loading (`baseline_rss_mb`), highest during loading
    (`load_peak_rss_mb`) and highest during inference (`peak_rss_mb`)."""

    baseline_rss_mb: float
    peak_rss_mb: float
    load_peak_rss_mb: float
    iterations: int
    method: str

    @property
    def inference_mb(self) -> float:
        """What inference adds on top of the loaded model: peak - baseline."""
        return self.peak_rss_mb - self.baseline_rss_mb

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "inference_mb": self.inference_mb}


@dataclass(frozen=True)
class CudaMemoryStats:
    """CUDA memory in MiB: allocated before inference (`baseline_mb`, the weights), the peak of
    `max_memory_allocated` during it, and the peak reserved by the caching allocator."""

    baseline_mb: float
    peak_mb: float
    peak_reserved_mb: float
    iterations: int
    device: str

    @property
    def inference_mb(self) -> float:
        return self.peak_mb - self.baseline_mb

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "inference_mb": self.inference_mb}


# ---- CPU (child process) -----------------------------------------------------------------------
def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _maxrss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _resolve(workload: str) -> Callable[..., Callable[[], Any]]:
    target, sep, func = workload.rpartition(":")
    if not sep or not target or not func:
        raise UserInputError(f"workload {workload!r} must be 'package.module:function' or '/path/file.py:function'.")
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(f"_edgesr_workload_{Path(target).stem}", target)
        if spec is None or spec.loader is None:
            raise UserInputError(f"cannot load workload file {target}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    return getattr(module, func)


def _child_main(spec_path: str) -> None:
    """Entry point of the measuring child: read the spec, load, measure, write the result."""
    import gc

    spec = json.loads(Path(spec_path).read_text())
    run = _resolve(spec["workload"])(**spec.get("kwargs", {}))
    for _ in range(int(spec.get("warmup", 0))):
        run()
    gc.collect()
    baseline = _status_kb("VmRSS")
    load_peak = _status_kb("VmHWM") or _maxrss_kb()
    reset = baseline is not None and _reset_hwm()
    for _ in range(int(spec.get("iters", 1))):
        run()
    if reset:
        peak, method = _status_kb("VmHWM") or 0, "vmhwm-reset"
    else:
        peak, method = _maxrss_kb(), "ru_maxrss"
        baseline = baseline if baseline is not None else 0
    Path(spec["result"]).write_text(json.dumps({
        "baseline_rss_mb": baseline / 1024.0, "peak_rss_mb": peak / 1024.0,
        "load_peak_rss_mb": load_peak / 1024.0, "iterations": int(spec.get("iters", 1)), "method": method}))


def measure_cpu_memory(workload: str, kwargs: dict[str, Any] | None = None, *, iters: int = 1, warmup: int = 0,
                       timeout_s: float = 600.0, env: dict[str, str] | None = None) -> CpuMemoryStats:
    """Run `workload` in a fresh Python child and return its RSS before and during inference.

    `kwargs` must be JSON-serialisable. `warmup` calls run before the baseline is taken (use one
    for torch.compile, whose compilation would otherwise count as inference memory; note that
    memory the allocator kept from it then sits in the baseline). `env` replaces the child's
    environment (default: this process's).
    """
    if iters < 1:
        raise UserInputError(f"iters must be >= 1, got {iters}.")
    target, sep, func = workload.rpartition(":")
    if not sep or not target or not func.isidentifier():
        raise UserInputError(f"workload {workload!r} must be 'package.module:function' or '/path/file.py:function'.")
    with tempfile.TemporaryDirectory(prefix="edgesr-mem-") as tmp:
        spec_path, result = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({"workload": workload, "kwargs": kwargs or {}, "iters": iters,
                                         "warmup": warmup, "result": str(result)}))
        code = "import sys; from edgesr.analysis.memory import _child_main; _child_main(sys.argv[1])"
        cmd = [sys.executable, "-c", code, str(spec_path)]
        child_env = dict(os.environ if env is None else env)
        # the child must import this very edgesr, even when it is not installed (tests, checkouts)
        root = str(Path(__file__).resolve().parents[2])
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, child_env.get("PYTHONPATH", "")) if p)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=child_env)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"memory measurement of {workload} timed out after {timeout_s:g} s") from exc
        if proc.returncode != 0 or not result.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            last = tail[-1] if tail else ""
            if "UserInputError" in last or "MissingDependencyError" in last:
                raise UserInputError(f"memory measurement of {workload} failed: {last.split(': ', 1)[-1]}")
            raise RuntimeError(f"memory measurement child failed (exit {proc.returncode}):\n" + "\n".join(tail))
        return CpuMemoryStats(**json.loads(result.read_text()))


def model_workload(module_file: str, input_shape: Sequence[int], threads: int | None = None,
                   seed: int = 0) -> Callable[[], Any]:
    """Child-side workload: load a module saved by `saved_module`, make the input; return the
    forward pass (eval mode, no autograd) that is measured."""
    import numpy as np
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    model = torch.load(module_file, weights_only=False).eval()
    x = torch.from_numpy(np.random.default_rng(seed).random(tuple(input_shape), dtype=np.float32))

    def run() -> Any:
        with torch.no_grad():
            return model(x)

    return run


@contextlib.contextmanager
def saved_module(model: Any) -> Iterator[str]:
    """A temporary file holding `model` pickled whole with `torch.save` (its class must be importable),
    for a measuring child to load; removed on exit."""
    import torch

    with tempfile.TemporaryDirectory(prefix="edgesr-mem-model-") as tmp:
        path = str(Path(tmp) / "model.pt")
        torch.save(model, path)
        yield path


def measure_model_memory(model: Any, input_shape: Sequence[int] = (1, 3, 256, 256), *, threads: int | None = None,
                         iters: int = 1, warmup: int = 0, timeout_s: float = 600.0) -> CpuMemoryStats:
    """Peak CPU RSS of an eager PyTorch forward pass of `model` (an nn.Module) in a child process."""
    with saved_module(model) as module_file:
        kwargs = {"module_file": module_file, "input_shape": list(input_shape), "threads": threads}
        return measure_cpu_memory("edgesr.analysis.memory:model_workload", kwargs, iters=iters, warmup=warmup,
                                  timeout_s=timeout_s)


# ---- CUDA ----------------------------------------------------------------------------------------
def measure_cuda_memory(fn: Callable[[], Any], *, iters: int = 1, device: Any = None,
                        cuda: Any = None) -> CudaMemoryStats:
    """Peak CUDA memory allocated by torch while `fn()` runs `iters` times.

    Fails with a UserInputError when CUDA is not available. `cuda` defaults to `torch.cuda`
    (injectable for tests)."""
    if cuda is None:
        import torch

        cuda = torch.cuda
    if not cuda.is_available():
        raise UserInputError("CUDA memory can only be measured with a CUDA GPU and a CUDA build of torch; "
                             "none is available here. Use measure_runner_memory for CPU peak RSS.")
    cuda.synchronize(device)
    baseline = cuda.memory_allocated(device)
    cuda.reset_peak_memory_stats(device)
    for _ in range(iters):
        fn()
    cuda.synchronize(device)
    return CudaMemoryStats(baseline / _MB, cuda.max_memory_allocated(device) / _MB,
                           cuda.max_memory_reserved(device) / _MB, iters, str(device if device is not None else "cuda"))
