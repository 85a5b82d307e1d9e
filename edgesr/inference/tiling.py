"""Tiled inference shared by every runtime.

The image is cut into cores of `tile` LR pixels; each core is run with `halo` extra pixels of
context on every side, and only the core of each output is kept. Tiles come from host memory one at
a time, so peak device memory follows the tile size, not the image size.

Borders (`TilingConfig.border`):

* ``"clip"`` (default): tile windows are clipped at the image border, where the model sees exactly
  what it sees untiled. Local models (receptive radius <= halo) then tile *exactly*; ESA models differ
  slightly because their attention is pooled over the window (measured: PSNR >= 50 dB vs untiled with a
  halo of 32 on RLFN x4). Border tiles are smaller than inner ones.
* ``"mirror"``: the image is first mirror-padded by `halo` on every side (reflection without repeating
  the edge pixel, as realesrgan-ncnn-vulkan does), so every tile has a full halo, and all tiles of an
  image have the same input size (a short last core reads a window that overlaps its neighbour's):
  what static-shape engines need. Away from the borders the output is
  the same as with "clip"; within the receptive field of the border it shows what the model does on
  mirrored content instead of its own zero padding: not identical to untiled, but close (RLFN x4, tile 64,
  halo 32 on a DIV2K crop: 65.5 dB vs untiled, max 2 levels; "clip": 70.2 dB, max 1 level).

Tile size from a memory budget: `TilingConfig.from_budget(budget_mb, bytes_per_lr_pixel, halo, align)` picks
the largest core whose padded tile ``(tile + 2 halo)^2`` fits; `estimate_bytes_per_lr_pixel` gives the
bytes a model needs per LR input pixel (see its docstring for what each estimate counts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterator

import numpy as np

from edgesr.errors import NonFiniteError, UserInputError

if TYPE_CHECKING:
    from torch import nn

BORDERS = ("clip", "mirror")
_MIB = 1024.0 * 1024.0


@dataclass(frozen=True)
class TilingConfig:
    """tile: core size in LR pixels (0 = no tiling); halo: context pixels on each side;
    align: tile inputs are padded (mirror) to a multiple of this; min_size: smallest input the
    model accepts (mirror-padded up to it); border: "clip" or "mirror" (see the module docstring)."""

    tile: int = 0
    halo: int = 16
    align: int = 1
    min_size: int = 1
    border: str = "clip"

    def validate(self) -> None:
        for name, value, least in (("tile", self.tile, 0), ("halo", self.halo, 0), ("align", self.align, 1),
                                   ("min_size", self.min_size, 1)):
            if value < least:
                raise UserInputError(f"--{name.replace('_', '-')} must be >= {least}, got {value}"
                                     f"{' (0 runs the whole image at once)' if name == 'tile' else ''}.")
        if self.border not in BORDERS:
            raise UserInputError(f"unknown tiling border mode {self.border!r}; choose one of {', '.join(BORDERS)}.")
        if self.tile and self.tile < self.halo:
            raise UserInputError(
                f"tile size {self.tile} is smaller than the halo {self.halo}: each tile would be mostly "
                "context. Use a tile of at least the halo (typically 4x it) or a smaller halo."
            )

    @property
    def window(self) -> int:
        """LR side of the largest tile input (core + both halos), before alignment padding."""
        return self.tile + 2 * self.halo if self.tile else 0

    @classmethod
    def from_budget(cls, budget_mb: float, bytes_per_lr_pixel: float, halo: int = 16, align: int = 1, *,
                    min_size: int = 1, border: str = "clip", max_tile: int | None = None) -> "TilingConfig":
        """The largest tile whose padded input fits `budget_mb` MiB at `bytes_per_lr_pixel`.

        The tile input is ``(tile + 2 halo)`` pixels square, rounded up to `align`; the core `tile` is
        rounded down to a multiple of `align` (so aligned tiles waste no padding when `halo` is a multiple
        of `align` too) and capped at `max_tile`. Raises UserInputError when even a core of `halo`
        pixels (the smallest the tiler accepts) does not fit, naming the budget it would need.
        """
        for name, value in (("budget_mb", budget_mb), ("bytes_per_lr_pixel", bytes_per_lr_pixel)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise UserInputError(f"{name} must be a positive number, got {value!r}.")
        if halo < 0 or align < 1:
            raise UserInputError(f"halo must be >= 0 and align >= 1, got halo={halo}, align={align}.")
        side = math.isqrt(int(budget_mb * _MIB / bytes_per_lr_pixel))  # largest window that fits
        window = side // align * align  # the padded window itself must fit after alignment
        tile = (window - 2 * halo) // align * align
        if max_tile is not None:
            tile = min(tile, max(align, max_tile // align * align))
        smallest = max(halo, align, 1)
        if tile < smallest:
            need = _ceil_to(smallest + 2 * halo, align) ** 2 * bytes_per_lr_pixel / _MIB
            raise UserInputError(
                f"a tiling budget of {budget_mb:g} MiB at {bytes_per_lr_pixel:g} bytes per LR pixel fits a "
                f"{side}x{side} window, too small for a core of at least the halo ({smallest} px) plus 2x{halo} px "
                f"of halo. Give at least {need:.3g} MiB or use a smaller halo.")
        cfg = cls(tile=tile, halo=halo, align=align, min_size=min_size, border=border)
        cfg.validate()
        return cfg

    def memory_mb(self, bytes_per_lr_pixel: float) -> float:
        """Estimated memory (MiB) of one tile's inference at `bytes_per_lr_pixel`."""
        side = max(_ceil_to(self.window, self.align), self.min_size) if self.tile else 0
        return side * side * bytes_per_lr_pixel / _MIB


def _ceil_to(value: int, align: int) -> int:
    return math.ceil(value / align) * align


def estimate_bytes_per_lr_pixel(model: "nn.Module", method: str = "acts", *, size: int = 64,
                                bytes_per_element: int = 4) -> float:
    """Memory one LR input pixel costs `model` at inference, in bytes.

    method:
      ``"acts"``: (input + every conv output (NTIRE #Acts, `edgesr.analysis.complexity.profile_complexity`)
          + the upscaled output) x `bytes_per_element` / pixels, at a `size` x `size` input. This is what
          the activations would take if nothing were freed: an upper bound for runtimes that free or reuse
          buffers (eager PyTorch, ONNX Runtime, TensorRT all do; it ignores non-conv intermediates, which
          those runtimes fuse or free), so tiles chosen from it are safe, not tight. RLFN x4: ~7.9 kB (a
          200 MiB budget then gives 96 px cores with a 32 px halo).
      ``"measured"``: the peak resident memory inference adds in a fresh child process running the model
          in eager PyTorch on the CPU at `size` x `size` (`edgesr.analysis.memory.measure_model_memory`), per
          pixel. Includes allocator and library workspace overheads at that size; slow (a child process).
    """
    if method not in ("acts", "measured"):
        raise UserInputError(f"unknown estimate {method!r}; choose 'acts' or 'measured'.")
    if size < 1:
        raise UserInputError(f"size must be >= 1, got {size}.")
    size = max(size, int(getattr(model, "min_input_size", 1) or 1))
    pixels = float(size * size)
    if method == "acts":
        from edgesr.analysis.complexity import profile_complexity

        scale = int(getattr(model, "scale", 1) or 1)
        cx = profile_complexity(model, (size, size))
        elements = cx.acts + 3 * pixels * (1 + scale * scale)
        return elements * bytes_per_element / pixels
    from edgesr.analysis.memory import measure_model_memory

    stats = measure_model_memory(model, (1, 3, size, size), threads=1)
    added = max(stats.peak_rss_mb - stats.baseline_rss_mb, 0.0) * _MIB
    return added / pixels


# ---------------------------------------------------------------------------------------- tiles


def _spans(length: int, tile: int) -> Iterator[tuple[int, int]]:
    n = max(1, math.ceil(length / tile))
    # Equal-sized cores avoid a sliver at the end that would run at a poor efficiency.
    step = math.ceil(length / n)
    for i in range(n):
        start = i * step
        yield start, min(length, start + step)


def pad_to(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Mirror-pad NCHW `x` at the bottom/right to at least height x width."""
    ph, pw = max(0, height - x.shape[-2]), max(0, width - x.shape[-1])
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "symmetric"
    while ph > 0 or pw > 0:  # reflect needs pad < size; repeat for tiny inputs
        sh, sw = min(ph, x.shape[-2] - (mode == "reflect")), min(pw, x.shape[-1] - (mode == "reflect"))
        x = np.pad(x, ((0, 0), (0, 0), (0, sh), (0, sw)), mode=mode)
        ph, pw = ph - sh, pw - sw
    return x


def mirror_pad(x: np.ndarray, pad: int) -> np.ndarray:
    """Mirror-pad NCHW `x` by `pad` pixels on every side (reflection without repeating the edge pixel,
    repeated for images smaller than the pad; a 1-pixel side is replicated)."""
    if pad <= 0:
        return x
    out = x
    for axis in (-2, -1):
        left = right = pad
        while left > 0 or right > 0:
            n = out.shape[axis]
            if n == 1:
                widths = [(0, 0)] * out.ndim
                widths[axis] = (left, right)
                out = np.pad(out, widths, mode="edge")
                break
            a, b = min(left, n - 1), min(right, n - 1)
            widths = [(0, 0)] * out.ndim
            widths[axis] = (a, b)
            out = np.pad(out, widths, mode="reflect")
            left, right = left - a, right - b
    return out


def run_padded(fn, x: np.ndarray, scale: int, align: int = 1, min_size: int = 1) -> np.ndarray:
    """Run `fn` on `x` mirror-padded to the model's alignment/minimum size, crop the result back."""
    h, w = x.shape[-2:]
    th = max(min_size, math.ceil(h / align) * align)
    tw = max(min_size, math.ceil(w / align) * align)
    padded = pad_to(x, th, tw)
    y = fn(padded)
    if y.ndim != 4 or y.shape[-2] != th * scale or y.shape[-1] != tw * scale:
        got = f"{y.shape[-2]}x{y.shape[-1]}" if y.ndim >= 2 else str(tuple(y.shape))
        ratio = y.shape[-1] / tw if y.ndim >= 2 and tw else 0
        hint = f" (x{ratio:g})" if ratio else ""
        raise UserInputError(f"the model returned {got}{hint} for a {th}x{tw} input, not x{scale}: the scale given "
                             f"(--scale or the artifact's sidecar) does not match the model; pass its real scale.")
    check_finite(fn, padded, y)
    return y[..., : h * scale, : w * scale]


def check_finite(fn, x: np.ndarray, y: np.ndarray) -> None:
    """Raise NonFiniteError when `fn`'s output `y` (for input `x`) holds NaN/Inf, naming the first layer
    that produced one when `fn` can tell (`fn.locate_nonfinite(x)`, e.g. `torch_sr_function`).

    Every tile of every runtime and precision passes here, so NaN/Inf never becomes an image or a PSNR.
    The test is one float64 sum (non-finite iff some element is; float64 cannot overflow on float32/16
    values), and the slower search runs only after a failure.
    """
    if np.isfinite(np.sum(y, dtype=np.float64)):
        return
    bad = int(y.size - np.count_nonzero(np.isfinite(y)))
    where = ""
    locate = getattr(fn, "locate_nonfinite", None)
    if callable(locate):
        layer = locate(x)
        where = f"; the first non-finite values come from {layer}" if layer else ""
    raise NonFiniteError(f"the model produced {bad:,} NaN/Inf value(s) out of {y.size:,} on a "
                         f"{x.shape[-2]}x{x.shape[-1]} input{where}. Its weights or the artifact are broken (or an "
                         "FP16 overflow); no output was written.")


@dataclass(frozen=True)
class Tile:
    """One tile: the core [y0:y1, x0:x1] of the image and the input window [iy0:iy1, ix0:ix1] it is run
    on, in the coordinates of the (for border="mirror": padded) array the windows are cut from."""

    y0: int
    y1: int
    x0: int
    x1: int
    iy0: int
    iy1: int
    ix0: int
    ix1: int


def plan_tiles(height: int, width: int, config: TilingConfig) -> list[Tile]:
    """The tiles `tiled_forward` runs for an image of `height` x `width` (one tile when it fits)."""
    config.validate()
    tile = config.tile or max(height, width)
    halo = config.halo if config.tile else 0
    offset = halo if config.border == "mirror" else 0
    out = []
    ys, xs = list(_spans(height, tile)), list(_spans(width, tile))
    wy, wx = ys[0][1] - ys[0][0] + 2 * offset, xs[0][1] - xs[0][0] + 2 * offset  # the first core is the largest
    for y0, y1 in ys:
        for x0, x1 in xs:
            if config.border == "mirror":
                # windows in the padded array, all of one size: a full halo everywhere, and a short last
                # core takes its window from further back (it overlaps the previous one)
                iy0, ix0 = min(y0, height + 2 * offset - wy), min(x0, width + 2 * offset - wx)
                out.append(Tile(y0, y1, x0, x1, iy0, iy0 + wy, ix0, ix0 + wx))
            else:
                out.append(Tile(y0, y1, x0, x1, max(0, y0 - halo), min(height, y1 + halo),
                                max(0, x0 - halo), min(width, x1 + halo)))
    return out


def tiled_forward(fn, x: np.ndarray, scale: int, config: TilingConfig, progress: bool = False) -> np.ndarray:
    """Upscale NCHW float32 `x` with `fn`, tile by tile; equals `fn(x)` up to the halo's effect."""
    config.validate()
    n, c, h, w = x.shape
    if not config.tile or (config.border == "clip" and h <= config.tile and w <= config.tile):
        return run_padded(fn, x, scale, config.align, config.min_size)
    tiles = plan_tiles(h, w, config)
    src = mirror_pad(x, config.halo) if config.border == "mirror" else x
    offset = config.halo if config.border == "mirror" else 0
    out: np.ndarray | None = None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tiles), desc="tiles", unit="tile", leave=False)
    try:  # the bar is cleared on failure too, so an Error: line starts its own line
        for t in tiles:
            y = run_padded(fn, np.ascontiguousarray(src[..., t.iy0:t.iy1, t.ix0:t.ix1]), scale, config.align,
                           config.min_size)
            if out is None:
                out = np.empty((n, y.shape[1], h * scale, w * scale), dtype=y.dtype)
            oy, ox = (t.y0 + offset - t.iy0) * scale, (t.x0 + offset - t.ix0) * scale
            out[..., t.y0 * scale: t.y1 * scale, t.x0 * scale: t.x1 * scale] = \
                y[..., oy: oy + (t.y1 - t.y0) * scale, ox: ox + (t.x1 - t.x0) * scale]
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    assert out is not None
    return out


def with_budget(config: TilingConfig, budget_mb: float | None, bytes_per_lr_pixel: float) -> TilingConfig:
    """`config` with its tile size replaced by the one `budget_mb` allows (unchanged when None)."""
    if budget_mb is None:
        return config
    fitted = TilingConfig.from_budget(budget_mb, bytes_per_lr_pixel, config.halo, config.align,
                                      min_size=config.min_size, border=config.border)
    return replace(config, tile=fitted.tile)
