"""Latency measurement (trtexec / Polygraphy conventions).

`measure_latency(fn)` warms up (at least `warmup_iters` calls and `warmup_s` seconds, so a
torch.compile or an engine's first-call set-up lands here), then times calls one by one until at
least `min_iters` calls and `min_seconds` seconds (or a `max_iters` / `max_seconds` cap), and
reports min/mean/median/p90/p95/p99/max/std in milliseconds with throughput.

`measure_runner(runner, x)` does the same for a runner and adds the runner's own per-call
breakdown: ``infer`` (the backend call alone, without validation and I/O conversion) and the
backend's stages (the torch runner's ``h2d`` / ``compute`` / ``d2h``, from CUDA events on GPU).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from edgesr.errors import UserInputError


@dataclass(frozen=True)
class LatencyStats:
    """Statistics of timed calls. Times in ms; `std_ms` is the population standard deviation;
    percentiles are linearly interpolated (numpy's default)."""

    iterations: int
    min_ms: float
    mean_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float
    total_s: float
    warmup_iterations: int = 0
    warmup_s: float = 0.0
    batch_size: int = 1
    output_shape: tuple[int, ...] | None = None
    breakdown: dict[str, "LatencyStats"] = field(default_factory=dict)

    @classmethod
    def from_samples(cls, samples_s: Sequence[float], **meta: Any) -> "LatencyStats":
        """Statistics of per-call times given in seconds."""
        a = np.asarray(samples_s, dtype=np.float64) * 1000.0
        if a.size == 0:
            raise ValueError("no samples")
        p90, p95, p99 = np.percentile(a, [90, 95, 99])
        meta.setdefault("total_s", float(a.sum()) / 1000.0)
        return cls(iterations=int(a.size), min_ms=float(a.min()), mean_ms=float(a.mean()),
                   median_ms=float(np.median(a)), p90_ms=float(p90), p95_ms=float(p95), p99_ms=float(p99),
                   max_ms=float(a.max()), std_ms=float(a.std()), **meta)

    @property
    def images_per_s(self) -> float:
        """Images per second from the mean latency (`batch_size` images per call)."""
        return self.batch_size * 1000.0 / self.mean_ms if self.mean_ms > 0 else math.inf

    @property
    def output_megapixels_per_s(self) -> float | None:
        """Output megapixels per second from the mean latency; None without an output shape."""
        if self.output_shape is None:
            return None
        return output_pixels(self.output_shape, self.batch_size) / 1e6 * 1000.0 / self.mean_ms

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["breakdown"] = {k: v.to_dict() for k, v in self.breakdown.items()}
        d["output_shape"] = list(self.output_shape) if self.output_shape else None
        d["images_per_s"] = self.images_per_s
        d["output_megapixels_per_s"] = self.output_megapixels_per_s
        return d

    def summary(self) -> str:
        text = (f"median {self.median_ms:.2f} ms (min {self.min_ms:.2f}, mean {self.mean_ms:.2f}, "
                f"p90 {self.p90_ms:.2f}, p99 {self.p99_ms:.2f}; n={self.iterations})")
        mpix = self.output_megapixels_per_s
        return text + (f", {self.images_per_s:.2f} img/s" + (f", {mpix:.2f} MP/s" if mpix is not None else ""))


def output_pixels(shape: Sequence[int], batch_size: int = 1) -> int:
    """Pixels per call: N*H*W for an NCHW shape, else H*W (last two dims) times `batch_size`."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise UserInputError(f"output shape {shape} needs at least (H, W).")
    if len(shape) == 4:
        return shape[0] * shape[2] * shape[3]
    return batch_size * shape[-2] * shape[-1]


def measure_latency(fn: Callable[[], Any], *, warmup_s: float = 0.2, warmup_iters: int = 1, min_iters: int = 10,
                    min_seconds: float = 3.0, max_iters: int | None = None, max_seconds: float | None = None,
                    sync: Callable[[], Any] | None = None, batch_size: int | None = None,
                    output_shape: Sequence[int] | None = None, on_timed_start: Callable[[], Any] | None = None,
                    clock: Callable[[], float] = time.perf_counter) -> LatencyStats:
    """Time `fn()` (no arguments) and return its statistics.

    Warm-up runs until both `warmup_iters` calls and `warmup_s` seconds are done. The timed loop
    runs until both `min_iters` calls and `min_seconds` seconds are done, or until a cap
    (`max_iters` calls, `max_seconds` seconds) is reached, whichever comes first; at least one
    call is always timed. `sync()` runs after every call inside the timed region (e.g.
    `torch.cuda.synchronize` for asynchronous work). `batch_size` (default: the N of a 4-D
    `output_shape`, else 1) and `output_shape` give throughput. `on_timed_start()` is called
    once between warm-up and the timed loop.
    """
    for name, value in (("warmup_s", warmup_s), ("warmup_iters", warmup_iters), ("min_iters", min_iters),
                        ("min_seconds", min_seconds)):
        if value < 0:
            raise UserInputError(f"{name} must be >= 0, got {value}.")
    if max_iters is not None and max_iters < 1:
        raise UserInputError(f"max_iters must be >= 1, got {max_iters}.")
    if max_seconds is not None and max_seconds < 0:
        raise UserInputError(f"max_seconds must be >= 0, got {max_seconds}.")
    if batch_size is None:
        batch_size = int(output_shape[0]) if output_shape is not None and len(output_shape) == 4 else 1
    if batch_size < 1:
        raise UserInputError(f"batch_size must be >= 1, got {batch_size}.")

    def call() -> None:
        fn()
        if sync is not None:
            sync()

    start = clock()
    n_warm = 0
    while n_warm < warmup_iters or clock() - start < warmup_s:
        call()
        n_warm += 1
    warm_s = clock() - start
    if on_timed_start is not None:
        on_timed_start()

    samples: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        call()
        t1 = clock()
        samples.append(t1 - t0)
        elapsed = t1 - start
        if max_iters is not None and len(samples) >= max_iters:
            break
        if max_seconds is not None and elapsed >= max_seconds:
            break
        if len(samples) >= min_iters and elapsed >= min_seconds:
            break
    return LatencyStats.from_samples(samples, total_s=clock() - start, warmup_iterations=n_warm, warmup_s=warm_s,
                                     batch_size=batch_size,
                                     output_shape=tuple(int(s) for s in output_shape) if output_shape else None)


def measure_runner(runner: Any, x: np.ndarray, **kwargs: Any) -> LatencyStats:
    """`measure_latency` of `runner.infer(x)`, with the runner's per-call `breakdown`
    (``infer`` and the backend's stages). Keyword arguments go to `measure_latency`; the output
    shape (for throughput) is taken from the first call."""
    runner.activate()
    timed: list[Any] = []
    recording = [False]
    shape: list[tuple[int, ...]] = []

    def call() -> None:
        y = runner.infer(x)
        if recording[0]:
            timed.append(runner.last_timing)
        elif not shape:
            shape.append(tuple(y.shape))

    def start_recording() -> None:
        recording[0] = True

    kwargs.setdefault("warmup_iters", 1)
    kwargs["warmup_iters"] = max(1, kwargs["warmup_iters"])  # one call to learn the output shape
    stats = measure_latency(call, on_timed_start=start_recording, **kwargs)
    breakdown: dict[str, LatencyStats] = {}
    if timed:
        breakdown["infer"] = LatencyStats.from_samples([t.infer_s for t in timed])
        for stage in timed[0].stages:
            breakdown[stage] = LatencyStats.from_samples([t.stages.get(stage, 0.0) for t in timed])
    out_shape = kwargs.get("output_shape") or (shape[0] if shape else None)
    batch = kwargs.get("batch_size") or (out_shape[0] if out_shape and len(out_shape) == 4 else 1)
    return replace(stats, breakdown=breakdown, output_shape=tuple(out_shape) if out_shape else None,
                   batch_size=batch)


def measure_interleaved(fns: dict[str, Callable[[], Any]], *, warmup_iters: int = 2, min_iters: int = 10,
                        min_seconds: float = 0.0, max_seconds: float | None = None,
                        on_round: Callable[[int], Any] | None = None,
                        clock: Callable[[], float] = time.perf_counter) -> dict[str, LatencyStats]:
    """Time several workloads in one run, interleaved: after `warmup_iters` calls of each, every round calls
    each function once (the order rotated each round), so a change in machine load between rounds touches all
    of them alike. Rounds go on until `min_iters` rounds and `min_seconds` seconds are done, or `max_seconds`
    (at least `min_iters` rounds always run). `on_round(done)` is called after each round."""
    if not fns:
        return {}
    if min_iters < 1 or warmup_iters < 0:
        raise UserInputError(f"min_iters must be >= 1 and warmup_iters >= 0, got {min_iters} and {warmup_iters}.")
    names = list(fns)
    warm: dict[str, float] = {}
    for name in names:
        t0 = clock()
        for _ in range(warmup_iters):
            fns[name]()
        warm[name] = clock() - t0
    samples: dict[str, list[float]] = {name: [] for name in names}
    start = clock()
    rounds = 0
    while True:
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = clock()
            fns[name]()
            samples[name].append(clock() - t0)
        rounds += 1
        if on_round is not None:
            on_round(rounds)
        elapsed = clock() - start
        if rounds >= min_iters and (elapsed >= min_seconds or (max_seconds is not None and elapsed >= max_seconds)):
            break
    return {name: LatencyStats.from_samples(samples[name], warmup_iterations=warmup_iters, warmup_s=warm[name])
            for name in names}
