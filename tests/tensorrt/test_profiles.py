"""Optimisation profiles from shapes, tile sizes inside an engine's profile, ORT TensorRT EP options."""
from __future__ import annotations

import pytest

from edgesr.errors import UserInputError
from edgesr.export.tensorrt.profiles import (ProfileShapes, fit_tile, make_profile, parse_hw, profile_from_sidecar,
                                             tile_count)
from edgesr.export.tensorrt.runtime import ort_tensorrt_provider_options


def test_make_profile_defaults_and_order():
    p = make_profile(None, "256x256", (512, 768), min_size=15)
    assert p == ProfileShapes((1, 3, 15, 15), (1, 3, 256, 256), (1, 3, 512, 768))
    assert p.min_hw == (15, 15) and p.max_hw == (512, 768) and not p.is_static
    assert p.contains((1, 3, 15, 700)) and not p.contains((1, 3, 14, 20)) and not p.contains((2, 3, 20, 20))
    assert make_profile((64, 64), (64, 64), (64, 64)).is_static
    assert make_profile(None, (32, 32), (64, 64), min_size=15, alignment=4).min == (1, 3, 16, 16)
    assert make_profile((16, 16), (32, 32), (64, 64), batch=(1, 2, 8)).max == (8, 3, 64, 64)
    assert "min 1x3x15x15" in p.describe()


@pytest.mark.parametrize("args, kwargs, match", [
    (((64, 64), (32, 32), (128, 128)), {}, "min <= opt <= max"),
    (((16, 16), (32, 300), (128, 128)), {}, "widths must satisfy"),
    (((8, 8), (32, 32), (64, 64)), {"min_size": 15}, "below the model's minimum input size 15"),
    (((16, 18), (32, 32), (64, 64)), {"alignment": 4}, "not a multiple of the model's alignment 4; use 16x20"),
    (((16, 16), (32, 32), (64, 64)), {"batch": (2, 1, 4)}, "batch"),
    (("0x4", (32, 32), (64, 64)), {}, "positive"),
    (("big", (32, 32), (64, 64)), {}, "HEIGHTxWIDTH"),
])
def test_make_profile_errors(args, kwargs, match):
    with pytest.raises(UserInputError, match=match):
        make_profile(*args, **kwargs)


def test_parse_hw_and_sidecar_profiles():
    assert parse_hw("127x93") == (127, 93) and parse_hw(" 8 , 9 ") == (8, 9) and parse_hw([5, 6]) == (5, 6)
    onnx_side = {"shape_profile": {"min": [1, 3, 15, 15], "opt": [1, 3, 256, 256], "max": [4, 3, 1024, 1024]}}
    assert profile_from_sidecar(onnx_side).max_hw == (1024, 1024)
    engine_side = {**onnx_side, "tensorrt": {"profiles": [{"input": {"min": [1, 3, 16, 16], "opt": [1, 3, 64, 64],
                                                                     "max": [1, 3, 128, 96]}}]}}
    assert profile_from_sidecar(engine_side).max_hw == (128, 96)  # what the engine was built with wins
    assert profile_from_sidecar({}) is None
    with pytest.raises(UserInputError, match=r"\[N, C, H, W\]"):
        profile_from_sidecar({"shape_profile": {"min": [1, 3], "opt": [1, 3], "max": [1, 3]}})


def test_fit_tile_keeps_tiles_inside_the_profile():
    plan = fit_tile(256, 32, min_hw=(15, 15), max_hw=(128, 160), min_size=15)
    assert (plan.tile, plan.halo, plan.min_size) == (64, 32, 15) and "tile 256 -> 64" in plan.note
    assert fit_tile(48, 8, max_hw=(256, 256)).tile == 48 and fit_tile(48, 8, max_hw=(256, 256)).note == ""
    assert fit_tile(0, 16, max_hw=(100, 100), align=8).tile == 96 - 32  # whole image -> tiles that fit, aligned
    assert fit_tile(0, 16).tile == 0  # no maximum (ONNX Runtime): whatever the user asked
    assert fit_tile(64, 8, min_hw=(32, 16), max_hw=(256, 256), min_size=15).min_size == 32  # pad small tiles up
    with pytest.raises(UserInputError, match="halo 40 is too large .* 64x64"):
        fit_tile(64, 40, max_hw=(64, 64))
    with pytest.raises(UserInputError, match="minimum 80 exceeds its maximum 64"):
        fit_tile(64, 4, min_hw=(80, 80), max_hw=(64, 200))
    assert tile_count(100, 50, 32) == 8 and tile_count(100, 50, 0) == 1


def test_fit_tile_inputs_never_exceed_max():
    import numpy as np

    from edgesr.inference.tiling import TilingConfig, tiled_forward

    seen = []

    def fn(x):
        seen.append(x.shape[-2:])
        return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)

    plan = fit_tile(200, 12, min_hw=(20, 20), max_hw=(72, 90), min_size=4)
    x = np.random.default_rng(0).random((1, 3, 150, 137), dtype=np.float32)
    y = tiled_forward(fn, x, 2, TilingConfig(plan.tile, plan.halo, plan.align, plan.min_size))
    assert y.shape == (1, 3, 300, 274)
    assert all(20 <= h <= 72 and 20 <= w <= 72 for h, w in seen), seen
    np.testing.assert_array_equal(y, np.repeat(np.repeat(x, 2, axis=2), 2, axis=3))


def test_ort_tensorrt_provider_options():
    opts = ort_tensorrt_provider_options(fp16=True, engine_cache="cache/engines", timing_cache="cache", workspace_mb=1024,
                                         opt_level=4, profile=make_profile((16, 16), (64, 64), (256, 256)))
    assert opts == {"device_id": "0", "trt_fp16_enable": "True", "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": "cache/engines", "trt_timing_cache_enable": "True",
                    "trt_timing_cache_path": "cache", "trt_max_workspace_size": str(1024 << 20),
                    "trt_builder_optimization_level": "4", "trt_profile_min_shapes": "input:1x3x16x16",
                    "trt_profile_opt_shapes": "input:1x3x64x64", "trt_profile_max_shapes": "input:1x3x256x256"}
    assert ort_tensorrt_provider_options() == {"device_id": "0"}
    with pytest.raises(UserInputError, match="0..5"):
        ort_tensorrt_provider_options(opt_level=9)
