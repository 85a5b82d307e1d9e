"""Two-pass ESA tiling: with the whole image's attention maps, tiles reproduce the untiled output far more
closely than tiles pooling over their own windows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgesr.data import read_image
from edgesr.errors import UserInputError
from edgesr.inference import torch_sr_function
from edgesr.inference.stitch import upscale_tiled
from edgesr.inference.tiling import TilingConfig
from edgesr.inference.two_pass import GlobalAttention
from edgesr.metrics import psnr_between
from edgesr.models import create_model


@pytest.mark.slow
def test_two_pass_approaches_untiled(datasets_dir: Path) -> None:
    model = create_model("rlfn_ntire_x4").eval()
    fn = torch_sr_function(model)
    lr = read_image(datasets_dir / "DIV2K_test_LR_x4" / "0901.png")[60:124, 100:196]  # 64x96, 2x3 tiles
    cfg = TilingConfig(32, 16, 1, model.min_input_size)
    full = upscale_tiled(fn, lr, 4, TilingConfig(0, 0, 1, model.min_input_size)).astype(np.float64)
    hard = upscale_tiled(fn, lr, 4, cfg).astype(np.float64)
    attention = GlobalAttention(model, lr)
    with attention.active():
        two = upscale_tiled(fn, lr, 4, cfg, on_tile=attention.on_tile).astype(np.float64)
    p_hard, p_two = psnr_between(hard, full, 255.0), psnr_between(two, full, 255.0)
    assert p_two > p_hard + 10 and p_two > 60, (p_hard, p_two)
    # outside the block the model is itself again
    assert np.array_equal(upscale_tiled(fn, lr, 4, cfg).astype(np.float64), hard)


def test_two_pass_needs_esa() -> None:
    with pytest.raises(UserInputError, match="no ESA"):
        GlobalAttention(create_model("imdn", scale=4), np.zeros((16, 16, 3), np.uint8))
