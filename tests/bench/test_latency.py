"""Latency statistics and the warm-up / iteration / duration rules."""
from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from edgesr.bench.latency import LatencyStats, measure_latency, measure_runner, output_pixels
from edgesr.errors import UserInputError


class FakeClock:
    """A clock that only moves when the measured function says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stepping_fn(clock: FakeClock, durations_s):
    seq = itertools.cycle(durations_s)
    calls = []

    def fn():
        calls.append(1)
        clock.now += next(seq)

    return fn, calls


def test_synthetic_sleeps_give_known_statistics():
    """A function that sleeps 10, 10, 10, 20 ms in turn, on the real clock. sleep() never returns early
    and a busy machine only adds time, so only lower bounds and the order of the statistics are
    asserted (exact statistics are checked against numpy and a fake clock below; no pass/fail on speed)."""
    pattern = itertools.cycle([0.010, 0.010, 0.010, 0.020])
    stats = measure_latency(lambda: time.sleep(next(pattern)), warmup_iters=0, warmup_s=0,
                            min_iters=40, min_seconds=0.0)
    assert stats.iterations == 40
    assert 10.0 <= stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.mean_ms >= 12.5 and stats.p90_ms >= 20.0 and stats.max_ms >= 20.0
    assert stats.total_s >= 0.5


def test_statistics_match_numpy():
    samples = np.random.default_rng(0).gamma(2.0, 0.005, 101)
    s = LatencyStats.from_samples(samples)
    ms = samples * 1000
    assert s.iterations == 101
    assert s.median_ms == pytest.approx(np.median(ms))
    assert s.p95_ms == pytest.approx(np.percentile(ms, 95))
    assert s.p99_ms == pytest.approx(np.percentile(ms, 99))
    assert s.std_ms == pytest.approx(ms.std())
    assert (s.min_ms, s.max_ms) == pytest.approx((ms.min(), ms.max()))
    with pytest.raises(ValueError):
        LatencyStats.from_samples([])


def test_min_iterations_rule():
    clock = FakeClock()
    fn, calls = stepping_fn(clock, [0.001])
    stats = measure_latency(fn, warmup_iters=3, warmup_s=0, min_iters=25, min_seconds=0.001, clock=clock)
    assert stats.iterations == 25 and stats.warmup_iterations == 3 and len(calls) == 28
    assert stats.median_ms == pytest.approx(1.0)


def test_min_seconds_rule():
    clock = FakeClock()
    fn, _ = stepping_fn(clock, [0.010])
    stats = measure_latency(fn, warmup_iters=0, warmup_s=0, min_iters=2, min_seconds=0.5, clock=clock)
    assert stats.iterations == 50 and stats.total_s == pytest.approx(0.5)


def test_warmup_by_time_covers_a_slow_first_call():
    clock = FakeClock()
    fn, _ = stepping_fn(clock, [5.0] + [0.1] * 1000)  # e.g. torch.compile on the first call
    stats = measure_latency(fn, warmup_iters=1, warmup_s=5.25, min_iters=5, min_seconds=0, clock=clock)
    assert stats.warmup_iterations == 4  # 5.0 + 3 x 0.1 > 5.25
    assert stats.max_ms == pytest.approx(100.0)  # the compile is not in the timed loop


def test_caps_and_sync():
    clock = FakeClock()
    fn, _ = stepping_fn(clock, [0.010])
    synced = []
    stats = measure_latency(fn, warmup_iters=0, warmup_s=0, min_iters=100, min_seconds=100, max_iters=7,
                            sync=lambda: synced.append(1), clock=clock)
    assert stats.iterations == 7 and len(synced) == 7
    stats = measure_latency(fn, warmup_iters=0, warmup_s=0, min_iters=100, min_seconds=100, max_seconds=0.1,
                            clock=clock)
    assert stats.iterations == 10
    stats = measure_latency(fn, warmup_iters=0, warmup_s=0, min_iters=0, min_seconds=0, clock=clock)
    assert stats.iterations == 1
    with pytest.raises(UserInputError, match="min_iters"):
        measure_latency(fn, min_iters=-1)


def test_throughput():
    clock = FakeClock()
    fn, _ = stepping_fn(clock, [0.050])
    stats = measure_latency(fn, warmup_iters=0, warmup_s=0, min_iters=3, min_seconds=0, clock=clock,
                            output_shape=(2, 3, 1000, 500))
    assert stats.batch_size == 2
    assert stats.images_per_s == pytest.approx(40.0)
    assert stats.output_megapixels_per_s == pytest.approx(20.0)  # 2 x 0.5 MP per 50 ms
    assert output_pixels((1000, 500), batch_size=3) == 1_500_000
    d = stats.to_dict()
    assert d["output_shape"] == [2, 3, 1000, 500] and d["images_per_s"] == pytest.approx(40.0)
    assert "img/s" in stats.summary()


def test_measure_runner_adds_the_breakdown():
    from edgesr.runtimes import BaseRunner, InputSpec

    class Doubler(BaseRunner):
        backend = "doubler"

        def activate_impl(self):
            pass

        def get_input_spec(self):
            return InputSpec()

        def infer_impl(self, x):
            self._stages = {"h2d": 0.001, "compute": 0.002, "d2h": 0.0005}
            return x.repeat(2, axis=2).repeat(2, axis=3)

    runner = Doubler()
    x = np.zeros((1, 3, 8, 10), np.float32)
    stats = measure_runner(runner, x, warmup_iters=2, warmup_s=0, min_iters=5, min_seconds=0)
    assert stats.iterations == 5 and stats.warmup_iterations == 2
    assert stats.output_shape == (1, 3, 16, 20) and stats.output_megapixels_per_s is not None
    assert set(stats.breakdown) == {"infer", "h2d", "compute", "d2h"}
    assert stats.breakdown["compute"].median_ms == pytest.approx(2.0)
    assert stats.breakdown["infer"].iterations == 5
