"""Optimisation profiles (min/opt/max input shapes) and the tile sizes an engine can run.

A TensorRT engine built from a dynamic-shape ONNX accepts only inputs inside its profile, per dimension
``min <= shape <= max``; it is fastest at ``opt``. `make_profile` builds and validates one from (H, W) sizes
and the model's constraints (minimum input size, e.g. 15 for ESA models; alignment), `fit_tile` picks the
tile size and padding that keep every tile of a tiled upscale inside the profile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from edgesr.errors import UserInputError
from edgesr.utils.shapes import parse_hw



@dataclass(frozen=True)
class ProfileShapes:
    """One optimisation profile for the image input: [N, C, H, W] each."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    @property
    def is_static(self) -> bool:
        return self.min == self.opt == self.max

    @property
    def min_hw(self) -> tuple[int, int]:
        return self.min[2], self.min[3]

    @property
    def max_hw(self) -> tuple[int, int]:
        return self.max[2], self.max[3]

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def describe(self) -> str:
        def hw(d: Sequence[int]) -> str:
            return f"{d[0]}x{d[1]}x{d[2]}x{d[3]}"

        return f"min {hw(self.min)}, opt {hw(self.opt)}, max {hw(self.max)} (NCHW)"


def _round_up(v: int, a: int) -> int:
    return -(-v // a) * a


def make_profile(min_hw: Sequence[int] | str | None, opt_hw: Sequence[int] | str, max_hw: Sequence[int] | str, *,
                 batch: Sequence[int] = (1, 1, 1), channels: int = 3, min_size: int = 1,
                 alignment: int = 1) -> ProfileShapes:
    """A validated profile. `min_hw` None: the model's smallest input (`min_size` rounded up to `alignment`).

    Raises UserInputError naming the violated rule: min <= opt <= max per dimension, min >= the model's minimum
    input size, H and W multiples of the model's alignment, 1 <= batch min <= opt <= max.
    """
    if min_size < 1 or alignment < 1:
        raise UserInputError(f"min_size and alignment must be >= 1, got {min_size} and {alignment}.")
    smallest = _round_up(min_size, alignment)
    lo = parse_hw(min_hw, "min shape") if min_hw is not None else (smallest, smallest)
    opt = parse_hw(opt_hw, "opt shape")
    hi = parse_hw(max_hw, "max shape")
    for name, (h, w) in (("min", lo), ("opt", opt), ("max", hi)):
        if h % alignment or w % alignment:
            raise UserInputError(
                f"{name} shape {h}x{w} is not a multiple of the model's alignment {alignment}; use "
                f"{_round_up(h, alignment)}x{_round_up(w, alignment)}.")
    if lo[0] < min_size or lo[1] < min_size:
        raise UserInputError(f"min shape {lo[0]}x{lo[1]} is below the model's minimum input size {min_size} (smaller "
                             f"inputs must be padded to it); use at least {smallest}x{smallest}.")
    for axis, name in ((0, "height"), (1, "width")):
        if not lo[axis] <= opt[axis] <= hi[axis]:
            raise UserInputError(
                f"profile {name}s must satisfy min <= opt <= max, got min {lo[0]}x{lo[1]}, opt {opt[0]}x{opt[1]}, "
                f"max {hi[0]}x{hi[1]}.")
    b = tuple(int(v) for v in batch)
    if len(b) != 3 or not 1 <= b[0] <= b[1] <= b[2]:
        raise UserInputError(f"batch must be (min, opt, max) with 1 <= min <= opt <= max, got {tuple(batch)}.")
    if channels < 1:
        raise UserInputError(f"channels must be >= 1, got {channels}.")
    return ProfileShapes((b[0], channels, *lo), (b[1], channels, *opt), (b[2], channels, *hi))


def profile_from_dict(data: Mapping[str, Any], where: str = "sidecar") -> ProfileShapes:
    """{"min": [N,C,H,W], "opt": ..., "max": ...} -> ProfileShapes."""
    try:
        dims = [tuple(int(v) for v in data[k]) for k in ("min", "opt", "max")]
    except (KeyError, TypeError, ValueError):
        raise UserInputError(f"{where}: a shape profile needs min/opt/max lists of 4 integers, got {data!r}.") from None
    if any(len(d) != 4 for d in dims):
        raise UserInputError(f"{where}: profile shapes must be [N, C, H, W], got {data!r}.")
    return ProfileShapes(*dims)  # type: ignore[arg-type]


def profile_from_sidecar(meta: Mapping[str, Any]) -> ProfileShapes | None:
    """The profile an engine was built with (``tensorrt.profiles[0]``), else the recommended one
    (``shape_profile``); None when the sidecar has neither."""
    trt = meta.get("tensorrt") if isinstance(meta.get("tensorrt"), Mapping) else {}
    profiles = trt.get("profiles") if isinstance(trt, Mapping) else None
    if isinstance(profiles, list) and profiles and isinstance(profiles[0], Mapping):
        first = profiles[0]
        return profile_from_dict(first.get("input", first) if isinstance(first.get("input"), Mapping) else first)
    if isinstance(meta.get("shape_profile"), Mapping):
        return profile_from_dict(meta["shape_profile"])
    return None


@dataclass(frozen=True)
class TilePlan:
    """Tiling settings that keep every tile input inside an engine profile."""

    tile: int
    halo: int
    min_size: int
    align: int
    note: str = ""

    def wrap(self, fn: Any, scale: int) -> Any:
        """`fn` with inputs mirror-padded to a multiple of `align` (the tiler pads only to `min_size`)."""
        if self.align <= 1:
            return fn
        from edgesr.inference.tiling import run_padded

        return lambda x: run_padded(fn, x, scale, self.align, self.min_size)


def fit_tile(tile: int, halo: int, *, min_hw: Sequence[int] = (1, 1), max_hw: Sequence[int] | None = None,
             align: int = 1, min_size: int = 1) -> TilePlan:
    """Tile size (LR pixels of each tile's core) and pad size for an engine accepting min_hw..max_hw.

    A tile's input is its core plus up to `halo` pixels on each side, mirror-padded up to `min_size` and to a
    multiple of `align`: so the core is at most ``floor(min(max_hw) / align) * align - 2 * halo``, and small
    tiles are padded to the profile's minimum. `tile` 0 (no tiling) becomes that largest core when the engine
    has a maximum. Raises UserInputError when no tile fits (halo too large for the engine's max shape).
    """
    if tile < 0 or halo < 0:
        raise UserInputError(f"tile and halo must be >= 0, got {tile} and {halo}.")
    pad_min = max(int(min_size), *(int(v) for v in min_hw))
    note = ""
    if max_hw is None:
        return TilePlan(tile, halo, pad_min, align)
    top = min(int(v) for v in max_hw)
    if pad_min > top:
        raise UserInputError(f"the engine's profile cannot run any tile: its minimum {pad_min} exceeds its maximum "
                             f"{top} in one dimension; rebuild it with a larger --max-shape.")
    largest = (top // align) * align - 2 * halo
    if largest < 1:
        raise UserInputError(
            f"halo {halo} is too large for the engine's maximum input {max_hw[0]}x{max_hw[1]}: a tile would be all "
            f"context. Use --halo below {max(0, ((top // align) * align - 1) // 2)} or rebuild with a larger "
            "--max-shape.")
    if tile == 0 or tile > largest:
        note = (f"tile {tile or 'none'} -> {largest}: the engine accepts inputs up to {max_hw[0]}x{max_hw[1]} "
                f"(tile + 2 x halo {halo})")
        tile = largest
    if tile < halo:
        raise UserInputError(f"with halo {halo} the engine's maximum input {max_hw[0]}x{max_hw[1]} leaves tiles of at "
                             f"most {largest} pixels, smaller than the halo; use a smaller --halo.")
    return TilePlan(tile, halo, pad_min, align, note)


def plan_runner_tiling(runner: Any, tile: int, halo: int, scale: int | None = None) -> tuple[TilePlan, int]:
    """(TilePlan, scale) for tiled upscaling through any edgesr runner: an engine's profile limits (`max_hw` /
    `min_hw`, TensorRT) bound the tiles; alignment and minimum size come from the runner's input spec."""
    runner.activate()
    spec = runner.input_spec
    known = getattr(runner, "scale", None)
    if known and scale and known != scale:
        raise UserInputError(f"--scale {scale} contradicts the artifact's scale {known} (from its sidecar).")
    out_scale = known or scale
    if not out_scale:
        raise UserInputError(f"the scale of {getattr(runner, 'name', 'the artifact')} is unknown (no sidecar): "
                             "pass --scale.")
    max_hw = getattr(runner, "max_hw", None)
    min_hw = getattr(runner, "min_hw", (1, 1)) if max_hw is not None else (1, 1)
    plan = fit_tile(tile, halo, min_hw=min_hw, max_hw=max_hw, align=spec.align, min_size=spec.min_size)
    return plan, int(out_scale)


def tile_count(height: int, width: int, tile: int) -> int:
    if not tile:
        return 1
    return math.ceil(height / tile) * math.ceil(width / tile)
