"""PyTorch runner: eager or torch.compile, cpu or cuda, fp32/fp16/bf16, optional channels_last.

Each call is timed in three stages: ``h2d`` (numpy -> tensor on the device, in the run dtype and
memory format), ``compute`` (the forward) and ``d2h`` (back to float32 numpy). On CUDA the stages
are timed with CUDA events on the current stream, so ``compute`` is GPU time without the
host<->device copies; on CPU they are wall-clock (``h2d``/``d2h`` are then the conversions).
With `compile=True` the first call compiles (`compile_time_s`); measure after a warm-up call.
"""
from __future__ import annotations

import copy
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from edgesr.errors import UserInputError
from edgesr.runtimes.base import BaseRunner, InputSpec

_PRECISIONS = {
    "fp32": torch.float32, "float32": torch.float32, "f32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16, "f16": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}


def parse_precision(precision: str | torch.dtype) -> torch.dtype:
    if isinstance(precision, torch.dtype):
        if precision in _PRECISIONS.values():
            return precision
    elif str(precision).lower() in _PRECISIONS:
        return _PRECISIONS[str(precision).lower()]
    raise UserInputError(f"unsupported precision {precision!r} for the torch backend; use fp32, fp16 or bf16.")


def check_device(device: str | torch.device) -> torch.device:
    """A torch.device, failing clearly when CUDA is asked for but unavailable."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UserInputError(f"invalid device {device!r}: {exc}. Use 'cpu', 'cuda' or 'cuda:N'.") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU-only build")
            raise UserInputError(f"device {device!r} asked for, but CUDA is not available ({build}). "
                                 "Run on a machine with an NVIDIA GPU and a CUDA build of torch, or use device='cpu'.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserInputError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s).")
    elif dev.type != "cpu":
        raise UserInputError(f"device {device!r} is not supported by the torch runner; use 'cpu' or 'cuda'.")
    return dev


class WallStageTimer:
    """Stage timer on the host clock: `mark(name)` ends the stage `name`."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._last = clock()
        self._stages: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = self._clock()
        self._stages[name] = now - self._last
        self._last = now

    def finish(self) -> dict[str, float]:
        return dict(self._stages)


class CudaStageTimer:
    """Stage timer with CUDA events recorded on the current stream; `finish()` waits for the last
    event and returns seconds per stage. `event_factory` is injectable for tests."""

    def __init__(self, event_factory: Callable[[], Any] | None = None) -> None:
        self._new = event_factory or (lambda: torch.cuda.Event(enable_timing=True))
        self._events: list[tuple[str, Any]] = [("", self._new())]
        self._events[0][1].record()

    def mark(self, name: str) -> None:
        event = self._new()
        event.record()
        self._events.append((name, event))

    def finish(self) -> dict[str, float]:
        self._events[-1][1].synchronize()
        out: dict[str, float] = {}
        for (_, start), (name, end) in zip(self._events, self._events[1:]):
            out[name] = start.elapsed_time(end) / 1000.0  # elapsed_time is in ms
        return out


def _first_conv_channels(model: nn.Module) -> int | None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return None


class TorchRunner(BaseRunner):
    """Run an `nn.Module` (float 0..1 NCHW in and out, as `create_model` builds them).

    Args:
        model: the module, put in eval mode. It is copied when a device/dtype/layout change is
            asked for, so the caller's module keeps its device, dtype and layout.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; CUDA without a GPU is a UserInputError.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` for weights and activations (the edge stays
            float32).
        channels_last: run in NHWC memory format (faster convolutions on CPU with oneDNN).
        compile: False, True, or a dict of `torch.compile` keyword arguments (e.g. ``{"mode":
            "max-autotune"}``). Compilation happens on the first call (or per new shape).
        threads: set `torch.set_num_threads` while active (a process-wide setting, restored on
            `deactivate()`); None leaves it.
        min_size / align / scale: override what is read from the model (`min_input_size`,
            `scale` attributes).
    """

    backend = "torch"

    def __init__(self, model: nn.Module, *, device: str | torch.device = "cpu", precision: str | torch.dtype = "fp32",
                 channels_last: bool = False, compile: bool | dict[str, Any] = False, threads: int | None = None,
                 min_size: int | None = None, align: int | None = None, scale: int | None = None,
                 name: str | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise UserInputError(f"the torch runner takes an nn.Module, got {type(model).__name__}.")
        super().__init__(name or f"torch:{getattr(model, 'edgesr_name', type(model).__name__)}")
        self.source_model = model
        self.device = check_device(device)
        self.dtype = parse_precision(precision)
        self.channels_last = bool(channels_last)
        if compile not in (True, False) and not isinstance(compile, dict):
            raise UserInputError(f"compile must be True, False or a dict of torch.compile options, got {compile!r}.")
        self.compile_options: dict[str, Any] | None = (
            dict(compile) if isinstance(compile, dict) else ({} if compile else None))
        if threads is not None and threads < 1:
            raise UserInputError(f"threads must be >= 1, got {threads}.")
        self.threads = threads
        self._min_size = min_size
        self._align = align
        self.scale = scale or getattr(model, "scale", None)
        self.model: nn.Module | None = None
        self.compile_time_s: float | None = None
        self._compiled_shapes: set[tuple[int, ...]] = set()
        self._saved_threads: int | None = None

    def activate_impl(self) -> None:
        self.device = check_device(self.device)
        if self.threads is not None:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        model = self.source_model
        params = list(model.parameters())
        needs_copy = (self.dtype != torch.float32 or self.device.type != "cpu" or self.channels_last
                      or any(p.device != self.device or p.dtype != self.dtype for p in params))
        if needs_copy:
            model = copy.deepcopy(model).to(device=self.device, dtype=self.dtype)
            if self.channels_last:
                model = model.to(memory_format=torch.channels_last)
        model = model.eval()
        if self.compile_options is not None:
            model = torch.compile(model, **self.compile_options)
        self.model = model

    def deactivate_impl(self) -> None:
        self.model = None
        self._compiled_shapes.clear()
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None

    def get_input_spec(self) -> InputSpec:
        channels = _first_conv_channels(self.source_model) or 3
        min_size = self._min_size or int(getattr(self.source_model, "min_input_size", 1) or 1)
        return InputSpec("input", (None, channels, None, None), np.float32, min_size, self._align or 1)

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        assert self.model is not None
        cuda = self.device.type == "cuda"
        timer = CudaStageTimer() if cuda else WallStageTimer()
        first_compile = self.compile_options is not None and x.shape not in self._compiled_shapes
        wall = time.perf_counter()
        with torch.inference_mode():
            t = torch.from_numpy(x)
            if cuda:
                t = t.pin_memory().to(self.device, non_blocking=True)
            t = t.to(dtype=self.dtype)
            if self.channels_last:
                t = t.contiguous(memory_format=torch.channels_last)
            timer.mark("h2d")
            y = self.model(t)
            timer.mark("compute")
            if first_compile:
                if cuda:
                    torch.cuda.synchronize(self.device)
                self.compile_time_s = time.perf_counter() - wall
                self._compiled_shapes.add(tuple(x.shape))
            out = y.float().cpu().numpy() if cuda else y.to(torch.float32).numpy()
            timer.mark("d2h")
        self._stages = timer.finish()
        return out

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(device=str(self.device), precision=str(self.dtype).replace("torch.", ""),
                    channels_last=self.channels_last, compile=self.compile_options,
                    threads=self.threads or torch.get_num_threads(), torch=torch.__version__)
        if self.compile_time_s is not None:
            info["compile_time_s"] = round(self.compile_time_s, 3)
        return info
