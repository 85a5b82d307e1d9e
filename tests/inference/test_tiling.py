"""Tiled inference equals whole-image inference: exactly for local models, within a stated
tolerance for ESA models whose attention is pooled over each tile."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgesr.data import read_image
from edgesr.errors import UserInputError
from edgesr.inference import TilingConfig, tiled_forward, torch_sr_function, upscale_array
from edgesr.metrics import psnr_between
from edgesr.models import create_model


def _lr(datasets_dir: Path, h: int, w: int) -> np.ndarray:
    return read_image(datasets_dir / "DIV2K_test_LR_x4" / "0901.png")[:h, :w]


def test_local_model_tiles_exactly(datasets_dir: Path) -> None:
    """IMDN has no global op: with a halo >= its receptive radius (35 px) tiling is exact."""
    model = create_model("imdn_x4")
    fn = torch_sr_function(model)
    x = (_lr(datasets_dir, 97, 131).astype(np.float32) / 255).transpose(2, 0, 1)[None]
    full = fn(x)
    tiled = tiled_forward(fn, x, 4, TilingConfig(tile=48, halo=36))
    assert tiled.shape == full.shape == (1, 3, 388, 524)
    assert np.abs(tiled - full).max() < 1e-5


def test_rlfn_tiles_within_tolerance(datasets_dir: Path) -> None:
    """RLFN's ESA pools attention over the whole input, so tiles see slightly different maps.
    Stated tolerance for the default halo (32): PSNR >= 50 dB vs untiled on uint8 output."""
    model = create_model("rlfn_x4")
    fn = torch_sr_function(model)
    lr = _lr(datasets_dir, 201, 303)  # odd size, 3x2 tiles
    full = upscale_array(fn, lr, 4)
    tiled = upscale_array(fn, lr, 4, tile=128, halo=32, min_size=15)
    assert tiled.shape == full.shape == (804, 1212, 3)
    diff = np.abs(tiled.astype(int) - full.astype(int))
    p = psnr_between(tiled.astype(np.float64), full.astype(np.float64), 255.0)
    assert p >= 50.0, f"tiled vs untiled PSNR {p:.2f} dB, max abs diff {diff.max()}"
    assert (diff > 2).mean() < 0.01


def test_tiny_and_odd_inputs_are_padded_to_model_minimum(datasets_dir: Path) -> None:
    model = create_model("rlfn_ntire_x4")
    lr = _lr(datasets_dir, 7, 5)
    sr = upscale_array(torch_sr_function(model), lr, 4, min_size=model.min_input_size)
    assert sr.shape == (28, 20, 3)


def test_tile_smaller_than_halo_is_rejected() -> None:
    with pytest.raises(UserInputError, match="smaller than the halo"):
        tiled_forward(lambda a: a, np.zeros((1, 3, 64, 64), np.float32), 1, TilingConfig(tile=8, halo=16))


def test_tiling_uses_every_pixel_once() -> None:
    """A fake 'model' (nearest-neighbour x2 of the input) must be reproduced exactly by the tiler."""
    x = np.random.default_rng(0).random((1, 3, 53, 71), dtype=np.float32)

    def nearest(a: np.ndarray) -> np.ndarray:
        return a.repeat(2, axis=-2).repeat(2, axis=-1)

    for tile, halo, align in [(16, 0, 1), (20, 3, 8), (64, 4, 1), (7, 7, 4)]:
        out = tiled_forward(nearest, x, 2, TilingConfig(tile=tile, halo=halo, align=align))
        assert np.array_equal(out, nearest(x))


def test_self_ensemble_of_equivariant_function_is_identity() -> None:
    from edgesr.inference import self_ensemble

    x = np.random.default_rng(1).random((1, 3, 9, 13), dtype=np.float32)
    f = self_ensemble(lambda a: a * 2.0)
    assert np.allclose(f(x), x * 2.0, atol=1e-6)
    assert torch.is_tensor(torch.from_numpy(f(x)))


def test_span_tiles_exactly_with_the_halo_it_reports(datasets_dir: Path) -> None:
    """SPAN is purely local: with its receptive radius as the halo, tiles equal the whole image; with a
    small halo the tile borders show."""
    model = create_model("span_ch28_x4")
    assert model.tiling_halo == 21
    fn = torch_sr_function(model)
    x = (_lr(datasets_dir, 61, 83).astype(np.float32) / 255).transpose(2, 0, 1)[None]
    full = fn(x)
    tiled = tiled_forward(fn, x, 4, TilingConfig(tile=24, halo=model.tiling_halo))
    assert tiled.shape == full.shape == (1, 3, 244, 332)
    assert np.abs(tiled - full).max() < 1e-5
    short = tiled_forward(fn, x, 4, TilingConfig(tile=24, halo=6))
    assert np.abs(short - full).max() > 1e-4


def test_efdn_tiles_within_tolerance(datasets_dir: Path) -> None:
    """EFDN's cells end with ESA (attention pooled over the input), like RLFN. Stated tolerance for the
    default halo of ESA models (32): PSNR >= 50 dB vs untiled on uint8 output."""
    model = create_model("efdn_x4")
    fn = torch_sr_function(model)
    lr = _lr(datasets_dir, 101, 157)  # odd size, 2x3 tiles
    full = upscale_array(fn, lr, 4)
    tiled = upscale_array(fn, lr, 4, tile=64, halo=32, min_size=model.min_input_size)
    assert tiled.shape == full.shape == (404, 628, 3)
    diff = np.abs(tiled.astype(int) - full.astype(int))
    p = psnr_between(tiled.astype(np.float64), full.astype(np.float64), 255.0)
    assert p >= 50.0, f"tiled vs untiled PSNR {p:.2f} dB, max abs diff {diff.max()}"
    assert (diff > 2).mean() < 0.01
