"""Tile size from a memory budget, mirror borders, tile plans and the bytes-per-pixel estimate.

Tolerances: border="mirror" equals the model run on the mirror-padded image exactly for local models
(receptive radius <= halo); with RLFN x4 (ESA) it keeps PSNR >= 50 dB vs untiled uint8 output, as
border="clip" does in tests/inference/test_tiling.py (measured on a 97x131 DIV2K crop, tile 64, halo 32:
mirror 65.5 dB, max diff 2 levels; clip 70.2 dB, max diff 1).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgesr.errors import UserInputError
from edgesr.inference import TilingConfig, tiled_forward
from edgesr.inference.tiling import estimate_bytes_per_lr_pixel, mirror_pad, plan_tiles, with_budget

MIB = 1024 * 1024


def _box_x2(radius: int):
    """A local 'model': `radius` passes of a 3x3 mean filter (zero padding, like a conv), then x2 nearest.
    Receptive radius = `radius` pixels."""

    def fn(a: np.ndarray) -> np.ndarray:
        y = a.astype(np.float64)
        for _ in range(radius):
            p = np.pad(y, ((0, 0), (0, 0), (1, 1), (1, 1)))
            y = sum(p[..., i:i + y.shape[-2], j:j + y.shape[-1]] for i in range(3) for j in range(3)) / 9.0
        return y.repeat(2, axis=-2).repeat(2, axis=-1).astype(np.float32)

    return fn


@pytest.mark.parametrize("budget_mb,bpp,halo,align", [(200, 7918.0, 32, 4), (64, 2000.0, 16, 1), (1, 12.0, 10, 8),
                                                      (512, 48.0, 0, 16)])
def test_budget_picks_the_largest_aligned_tile_that_fits(budget_mb, bpp, halo, align) -> None:
    cfg = TilingConfig.from_budget(budget_mb, bpp, halo, align)
    budget = budget_mb * MIB
    assert cfg.tile % align == 0 and cfg.tile >= max(halo, 1) and cfg.halo == halo and cfg.align == align
    padded = math.ceil((cfg.tile + 2 * halo) / align) * align
    assert padded ** 2 * bpp <= budget  # fits, alignment padding included
    bigger = math.ceil((cfg.tile + align + 2 * halo) / align) * align
    assert bigger ** 2 * bpp > budget  # the next aligned tile would not
    assert cfg.memory_mb(bpp) <= budget_mb


def test_budget_math_example() -> None:
    # 200 MiB at RLFN x4's activation estimate (~7.9 kB per LR pixel): a 163 px window -> 96 px cores + 2x32 halo
    cfg = TilingConfig.from_budget(200, 7917.6875, halo=32, align=4)
    assert (cfg.tile, cfg.window) == (96, 160)
    assert with_budget(TilingConfig(tile=512, halo=32, align=4), 200, 7917.6875).tile == 96
    assert with_budget(TilingConfig(tile=512), None, 1.0).tile == 512
    assert TilingConfig.from_budget(10_000, 12.0, 16, 1, max_tile=256).tile == 256


def test_budget_too_small_or_invalid_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match=r"Give at least [\d.]+ MiB"):
        TilingConfig.from_budget(1, 8000.0, halo=32)
    for bad in (0, -5, float("nan")):
        with pytest.raises(UserInputError, match="budget_mb must be a positive number"):
            TilingConfig.from_budget(bad, 100.0)
    with pytest.raises(UserInputError, match="bytes_per_lr_pixel"):
        TilingConfig.from_budget(100, 0)
    with pytest.raises(UserInputError, match="smaller than the halo"):
        tiled_forward(lambda a: a, np.zeros((1, 3, 40, 40), np.float32), 1, TilingConfig(tile=8, halo=16,
                                                                                          border="mirror"))
    with pytest.raises(UserInputError, match="border mode 'wrap'"):
        TilingConfig(tile=32, border="wrap").validate()


def test_mirror_pad_matches_numpy_reflect_and_handles_tiny_images() -> None:
    x = np.random.default_rng(0).random((1, 3, 9, 13), dtype=np.float32)
    assert np.array_equal(mirror_pad(x, 5), np.pad(x, ((0, 0), (0, 0), (5, 5), (5, 5)), mode="reflect"))
    tiny = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    padded = mirror_pad(tiny, 7)
    assert padded.shape == (1, 1, 16, 17)
    assert np.array_equal(padded[..., 7:9, 7:10], tiny)  # the image sits in the middle, unchanged
    assert mirror_pad(np.ones((1, 1, 1, 4), np.float32), 3).shape == (1, 1, 7, 10)


@pytest.mark.parametrize("tile,halo,align", [(16, 4, 1), (24, 8, 8), (100, 6, 4), (7, 7, 1)])
def test_mirror_border_equals_the_model_on_the_mirrored_image(tile, halo, align) -> None:
    """For a local model (radius <= halo) border='mirror' is exact: the same as running the model on the
    whole mirror-padded image and cropping, and the same as untiled away from the border."""
    x = np.random.default_rng(1).random((1, 3, 45, 58), dtype=np.float32)
    fn = _box_x2(radius=min(3, halo))
    out = tiled_forward(fn, x, 2, TilingConfig(tile=tile, halo=halo, align=align, border="mirror"))
    ref = fn(mirror_pad(x, halo))[..., 2 * halo: 2 * (halo + 45), 2 * halo: 2 * (halo + 58)]
    assert out.shape == (1, 3, 90, 116)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    untiled = fn(x)
    inner = (slice(None), slice(None), slice(2 * 3, -2 * 3), slice(2 * 3, -2 * 3))
    np.testing.assert_allclose(out[inner], untiled[inner], rtol=0, atol=1e-6)
    assert not np.allclose(out, untiled, atol=1e-6)  # at the border it is not the zero-padded model


def test_mirror_tiles_have_one_input_size() -> None:
    """Every tile gets its full halo, so inputs only differ by the core rounding (<= 1 px) and are equal
    once aligned: what a static-shape engine needs."""
    shapes = []

    def record(a: np.ndarray) -> np.ndarray:
        shapes.append(a.shape[-2:])
        return a.repeat(2, axis=-2).repeat(2, axis=-1)

    x = np.random.default_rng(2).random((1, 3, 101, 157), dtype=np.float32)
    out = tiled_forward(record, x, 2, TilingConfig(tile=32, halo=8, align=8, border="mirror"))
    assert np.array_equal(out, x.repeat(2, axis=-2).repeat(2, axis=-1))
    assert len(set(shapes)) == 1 and shapes[0] == (48, 48) and len(shapes) == 4 * 5
    shapes.clear()
    tiled_forward(record, x, 2, TilingConfig(tile=32, halo=8, align=8, border="clip"))
    assert len(set(shapes)) > 1  # clipped border tiles are smaller


def test_plan_covers_every_pixel_once() -> None:
    for border in ("clip", "mirror"):
        for h, w, cfg in [(53, 71, TilingConfig(16, 4, border=border)), (10, 10, TilingConfig(64, 8, border=border)),
                          (130, 20, TilingConfig(33, 33, border=border))]:
            cover = np.zeros((h, w), int)
            for t in plan_tiles(h, w, cfg):
                cover[t.y0:t.y1, t.x0:t.x1] += 1
                assert t.iy1 - t.iy0 >= t.y1 - t.y0 and t.ix1 - t.ix0 >= t.x1 - t.x0
            assert (cover == 1).all()


def test_acts_estimate_of_rlfn() -> None:
    from edgesr.analysis.complexity import profile_complexity
    from edgesr.models import create_model

    model = create_model("rlfn_x4")
    bpp = estimate_bytes_per_lr_pixel(model, size=64)
    acts = profile_complexity(model, (64, 64)).acts
    assert bpp == pytest.approx((acts + 3 * 64 * 64 * (1 + 16)) * 4 / (64 * 64))
    assert 7000 < bpp < 9000  # ~1.93k conv output elements per LR pixel, float32
    with pytest.raises(UserInputError, match="unknown estimate"):
        estimate_bytes_per_lr_pixel(model, method="guess")


@pytest.mark.slow
def test_rlfn_mirror_border_within_tolerance(datasets_dir) -> None:
    from edgesr.data import read_image
    from edgesr.inference import torch_sr_function, upscale_array
    from edgesr.metrics import psnr_between
    from edgesr.models import create_model

    model = create_model("rlfn_x4")
    fn = torch_sr_function(model)
    lr = read_image(datasets_dir / "DIV2K_test_LR_x4" / "0901.png")[:97, :131]
    x = (lr.astype(np.float32) / 255).transpose(2, 0, 1)[None]
    full = upscale_array(fn, lr, 4)
    y = tiled_forward(fn, np.ascontiguousarray(x), 4, TilingConfig(tile=64, halo=32, min_size=15, border="mirror"))
    tiled = np.round(np.clip(y[0].transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
    p = psnr_between(tiled.astype(np.float64), full.astype(np.float64), 255.0)
    assert p >= 50.0, f"mirror tiling vs untiled PSNR {p:.2f} dB"
