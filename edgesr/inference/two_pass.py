"""Two-pass tiling for ESA models: the attention's pooled statistics come from the whole image.

ESA (RFDN, RLFN, EFDN) max-pools its features over the whole input and upsamples the result back as an
attention map, so a tile sees a map pooled over its own window only: tiled output differs from untiled
(RLFN x4, tile 128: ~50 dB). Pass 1 runs the model once on the whole image, or a downscaled copy when
memory is short, and records each ESA's pooled branch (a map ~6x smaller per side than the features,
16 channels). Pass 2 runs the tiles with a forward hook on each ESA's last pooled convolution that returns,
instead of the tile's own map, the crop of the whole image's map bilinearly upsampled exactly as the untiled
model would (PyTorch's align_corners=False rule), already at the tile's size, so ESA's own interpolation is
the identity. Only PyTorch modules can be hooked; exported artifacts tile the ordinary way.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.errors import UserInputError
from edgesr.inference.stitch import TileHook
from edgesr.inference.tiling import Tile


def _pooled_conv(esa: nn.Module) -> nn.Module:
    """The conv whose output ESA upsamples: conv3 (RLFN/EFDN variant) or conv3_ (RFDN)."""
    return getattr(esa, "conv3_", None) or esa.conv3


def esa_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if type(m).__name__ == "ESA" and hasattr(m, "conv3")]


def _bilinear_rows(out_len: int, in_len: int, start: int, count: int) -> torch.Tensor:
    """(count x in_len) matrix: rows start..start+count of a bilinear (align_corners=False) resize from in_len
    to out_len samples; rows past the end repeat the last one (mirror padding of a tile is not modelled)."""
    scale = in_len / out_len
    dst = np.minimum(np.arange(start, start + count), out_len - 1).astype(np.float64)
    src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_len - 1)
    w1 = src - i0
    m = np.zeros((count, in_len), dtype=np.float64)
    m[np.arange(count), i0] += 1.0 - w1
    m[np.arange(count), i1] += w1
    return torch.from_numpy(m.astype(np.float32))


class GlobalAttention:
    """Records the whole-image ESA maps of `model` (pass 1) and serves their crops to tiles (pass 2)."""

    def __init__(self, model: nn.Module, image: np.ndarray, downscale: int = 1) -> None:
        """`image`: HxWx3 uint8/uint16 LR; `downscale` > 1 runs pass 1 on a bicubic-downscaled copy."""
        self.modules = esa_modules(model)
        if not self.modules:
            raise UserInputError(f"{type(model).__name__} has no ESA attention: two-pass tiling does not apply.")
        self.height, self.width = image.shape[:2]
        x = torch.from_numpy(image.astype(np.float32) / float(np.iinfo(image.dtype).max)).permute(2, 0, 1)[None]
        if downscale > 1:
            size = (max(15, self.height // downscale), max(15, self.width // downscale))
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        self.maps: dict[nn.Module, torch.Tensor] = {}
        handles = [_pooled_conv(m).register_forward_hook(self._record(m)) for m in self.modules]
        try:
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        self.window: Tile | None = None

    def _record(self, esa: nn.Module):
        def hook(_module, _inputs, output):
            self.maps[esa] = output.detach()
        return hook

    def on_tile(self, tile: Tile) -> None:
        """Tell the hooks which window the next model call runs on (a `TileHook` for `upscale_tiled`)."""
        self.window = tile

    def _serve(self, esa: nn.Module):
        def hook(_module, _inputs, output):
            if self.window is None:
                return output
            h, w = output.shape[-2:]  # the tile's own pooled map; its input size is what ESA upsamples to
            full = self.maps[esa]
            size_in = self._esa_input_size[esa]
            ry = _bilinear_rows(self.height, full.shape[-2], self.window.iy0, size_in[0])
            rx = _bilinear_rows(self.width, full.shape[-1], self.window.ix0, size_in[1])
            crop = torch.einsum("yh,nchw,xw->ncyx", ry, full, rx)
            return crop.expand(output.shape[0], -1, -1, -1).to(output.dtype)
        return hook

    @contextlib.contextmanager
    def active(self) -> Iterator["GlobalAttention"]:
        """Within the block, every ESA of the model uses the whole image's map for the current window."""
        self._esa_input_size: dict[nn.Module, tuple[int, int]] = {}

        def remember(esa):
            def pre(_module, inputs):
                self._esa_input_size[esa] = tuple(inputs[0].shape[-2:])
            return pre

        handles = []
        for esa in self.modules:
            handles.append(esa.register_forward_pre_hook(remember(esa)))
            handles.append(_pooled_conv(esa).register_forward_hook(self._serve(esa)))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()
            self.window = None


def whole_image_attention(model: nn.Module, downscale: int = 1) -> Callable[[np.ndarray], ContextManager[TileHook]]:
    """An `ImageHook` for `upscale_file` (`UpscaleOptions.on_image`): pass 1 on each image, then its tiles
    use the whole image's ESA maps. Refuses models without ESA and `downscale` < 1 up front, before any
    image is read, so a folder run fails once rather than on every file."""
    if not esa_modules(model):
        raise UserInputError(f"{type(model).__name__} has no ESA attention: --two-pass applies to ESA models "
                             "(RLFN, RFDN, EFDN).")
    if downscale < 1:
        raise UserInputError(f"--two-pass-downscale must be >= 1, got {downscale}.")

    @contextlib.contextmanager
    def per_image(image: np.ndarray) -> Iterator[TileHook]:
        attention = GlobalAttention(model, image, downscale)
        with attention.active():
            yield attention.on_tile

    return per_image
