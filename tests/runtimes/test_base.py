"""The runner template: input validation, I/O conversion, timing records, SR-function adapter."""
from __future__ import annotations

import numpy as np
import pytest

from edgesr.errors import UserInputError
from edgesr.inference import upscale_array
from edgesr.runtimes import BaseRunner, InputSpec, IOConvention


class NearestRunner(BaseRunner):
    """Backend-free runner: nearest-neighbour x2 of whatever native input it gets."""

    backend = "nearest"

    def __init__(self, spec: InputSpec = InputSpec(min_size=8), io: IOConvention | None = None) -> None:
        super().__init__()
        self.spec, self.seen = spec, []
        if io is not None:
            self.io = io

    def activate_impl(self) -> None:
        pass

    def get_input_spec(self) -> InputSpec:
        return self.spec

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(x)
        self._stages = {"compute": 0.001}
        axes = (1, 2) if self.io.layout == "NHWC" else (2, 3)
        return x.repeat(2, axis=axes[0]).repeat(2, axis=axes[1])


@pytest.mark.parametrize("bad,why", [
    (np.zeros((3, 16, 16), np.float32), "3 dimensions"),
    (np.zeros((1, 4, 16, 16), np.float32), "C=4"),
    (np.zeros((1, 3, 16, 16), np.float64), "dtype float64"),
    (np.zeros((1, 3, 16, 16), np.uint8), "dtype uint8"),
    (np.zeros((1, 3, 4, 16), np.float32), "too small"),
    ([[0.0]], "is a list"),
])
def test_bad_inputs_name_the_expected_shape(bad, why):
    runner = NearestRunner()
    with pytest.raises(UserInputError) as info:
        runner.infer(bad)
    msg = str(info.value)
    assert why in msg
    assert "float32 NCHW array of shape (N, 3, H, W) with H, W >= 8" in msg


def test_static_shape_and_alignment():
    runner = NearestRunner(InputSpec("lr", (1, 3, 32, 32)))
    with pytest.raises(UserInputError, match=r"N=2.*shape \(1, 3, 32, 32\)"):
        runner.infer(np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(UserInputError, match=r"H=16"):
        runner.infer(np.zeros((1, 3, 16, 32), np.float32))
    aligned = NearestRunner(InputSpec(align=4))
    with pytest.raises(UserInputError, match="multiples of 4"):
        aligned.infer(np.zeros((1, 3, 18, 16), np.float32))
    assert aligned.infer(np.zeros((1, 3, 20, 16), np.float32)).shape == (1, 3, 40, 32)


def test_feed_by_name_and_timing_records():
    runner = NearestRunner()
    x = np.random.default_rng(0).random((1, 3, 8, 12), dtype=np.float32)
    y = runner.infer({"input": x})
    np.testing.assert_array_equal(y[..., ::2, ::2], x)
    with pytest.raises(UserInputError, match="no input 'image'"):
        runner.infer({"image": x})
    assert runner.is_active and runner.scale == 2
    runner.infer(x)
    assert len(runner.timings) == 2
    t = runner.last_timing
    assert 0 <= t.infer_s <= t.total_s and t.stages == {"compute": 0.001}
    runner.reset_timings()
    assert runner.last_timing is None


def test_non_contiguous_input_is_accepted():
    runner = NearestRunner()
    x = np.random.default_rng(1).random((1, 3, 16, 32), dtype=np.float32)[..., ::2]
    np.testing.assert_array_equal(runner.infer(x)[..., ::2, ::2], x)


@pytest.mark.parametrize("io", [
    IOConvention(np.uint8, 255.0, np.uint8, 255.0, source="test"),
    IOConvention(np.float32, 255.0, np.float32, 255.0, source="test"),
    IOConvention(np.float16, 1.0, np.float16, 1.0, source="test"),
    IOConvention(layout="NHWC", source="test"),
])
def test_io_conversion_round_trip(io):
    runner = NearestRunner(io=io)
    x = np.random.default_rng(2).random((1, 3, 8, 8), dtype=np.float32)
    y = runner.infer(x)
    native = runner.seen[-1]
    assert native.dtype == np.dtype(io.input_dtype)
    assert native.shape == ((1, 8, 8, 3) if io.layout == "NHWC" else (1, 3, 8, 8))
    assert y.dtype == np.float32 and y.shape == (1, 3, 16, 16)
    tol = 0.5 / 255 + 1e-6 if io.input_dtype is np.uint8 else 1e-3
    np.testing.assert_allclose(y[..., ::2, ::2], x, atol=tol)


def test_sr_function_runs_through_tiling():
    runner = NearestRunner()
    lr = np.random.default_rng(3).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    fn = runner.as_sr_function()
    assert fn.runner is runner
    sr = upscale_array(fn, lr, 2, tile=16, halo=4, min_size=runner.min_size)
    np.testing.assert_array_equal(sr[::2, ::2], lr)
