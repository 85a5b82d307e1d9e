"""Tiles assembled in the final dtype: hard crop equals the float path bit for bit, feathered seams are a
partition of unity, uint16 and batches keep their layout."""
from __future__ import annotations

import numpy as np
import pytest

from edgesr.errors import UserInputError
from edgesr.inference.stitch import quantize, upscale_tiled
from edgesr.inference.tiling import TilingConfig, tiled_forward


def nearest2(a: np.ndarray) -> np.ndarray:
    """A tile-invariant 'model': nearest-neighbour x2."""
    return a.repeat(2, axis=-2).repeat(2, axis=-1)


def smooth2(a: np.ndarray) -> np.ndarray:
    """A 'model' whose output depends on the window (like ESA): adds the window mean."""
    return nearest2(a) * 0.9 + a.mean() * 0.1


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (53, 71, 3), dtype=np.uint8)


@pytest.mark.parametrize("tile,halo,align,border", [(16, 4, 1, "clip"), (20, 3, 8, "clip"), (0, 4, 1, "clip"),
                                                    (16, 4, 1, "mirror")])
def test_hard_crop_equals_quantized_float_path(img: np.ndarray, tile: int, halo: int, align: int,
                                               border: str) -> None:
    cfg = TilingConfig(tile=tile, halo=halo, align=align, border=border)
    x = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    want = quantize(tiled_forward(smooth2, x, 2, cfg), np.uint8)[0].transpose(1, 2, 0)
    got = upscale_tiled(smooth2, img, 2, cfg)
    assert got.dtype == np.uint8 and got.shape == (106, 142, 3)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("blend", [2, 4, 8])
def test_blend_of_tile_invariant_model_is_exact(img: np.ndarray, blend: int) -> None:
    got = upscale_tiled(nearest2, img, 2, TilingConfig(tile=16, halo=4), blend=blend)
    assert np.array_equal(got, nearest2(img.transpose(2, 0, 1)).transpose(1, 2, 0))


def test_blend_smooths_seams_between_hard_and_whole(img: np.ndarray) -> None:
    """Blending a window-dependent model moves the output towards the untiled one at the seams."""
    cfg = TilingConfig(tile=16, halo=8)
    whole = upscale_tiled(smooth2, img, 2, TilingConfig()).astype(float)
    hard = upscale_tiled(smooth2, img, 2, cfg).astype(float)
    soft = upscale_tiled(smooth2, img, 2, cfg, blend=10).astype(float)
    assert np.abs(soft - whole).mean() < np.abs(hard - whole).mean()
    # the largest jump across a seam (row 32 of the output) shrinks
    assert np.abs(np.diff(soft, axis=0)).max() <= np.abs(np.diff(hard, axis=0)).max()


def test_uint16_and_batches(img: np.ndarray) -> None:
    deep = img.astype(np.uint16) * 257
    out = upscale_tiled(nearest2, np.stack([deep, deep[::-1]]), 2, TilingConfig(tile=16, halo=4), blend=4)
    assert out.dtype == np.uint16 and out.shape == (2, 106, 142, 3)
    assert np.array_equal(out[1], nearest2(deep[::-1].transpose(2, 0, 1)).transpose(1, 2, 0))


def test_gray_out_is_the_rounded_channel_mean(img: np.ndarray) -> None:
    rgb = upscale_tiled(smooth2, img, 2, TilingConfig(tile=16, halo=4))
    gray = upscale_tiled(smooth2, img, 2, TilingConfig(tile=16, halo=4), gray_out=True)
    assert gray.shape == (106, 142, 1)
    assert np.array_equal(gray[..., 0], np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8))


@pytest.mark.parametrize("kwargs,match", [({"blend": 10}, "halo of at least 5"),
                                          ({"blend": -1}, ">= 0")])
def test_bad_blend_is_explained(img: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        upscale_tiled(nearest2, img, 2, TilingConfig(tile=16, halo=4), **kwargs)
