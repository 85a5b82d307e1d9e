"""Calibration data and activation ranges for static INT8 quantization (`edgesr.export.quantize`).

Calibration runs the FP32 ONNX graph in ONNX Runtime on crops of real LR images and records, for every
float activation tensor, its min/max and a histogram (one pass: bins of a fixed width aligned to 0 that
double in width, merging exactly, when the observed range outgrows 4096 bins). A *range method* turns those statistics into the [low, high] each
tensor is quantized over:

``minmax``      the observed min and max (no clipping; outliers cost resolution everywhere else).
``percentile``  two-sided percentile (default 99.999 %: 0.0005 % clipped on each side).
``entropy``     TensorRT's KL-divergence threshold (2048-bin histogram merged into 128 quantized bins),
                per side for asymmetric ranges.
``mse``         the clipping range that minimises the expected squared error of rounding plus clipping
                over the histogram (a grid search over shrink factors of [min, max]).

Every range contains 0 (ONNX Runtime requires it). The ranges are handed to ONNX Runtime's QDQ
quantizer through its calibration-cache file, so ONNX Runtime's own quantizer does the graph rewrite.

Crops: `load_crops` picks image files in sorted order and cuts one deterministic random crop per image
(cycling through the files when more crops than files are asked for). Calibration and held-out crops
come from disjoint files (`split_files`), so the PSNR a quantization reports is not measured on its own
calibration data (nor on the images its layer selection was tuned on).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from edgesr.errors import UserInputError

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

RANGE_METHODS = ("minmax", "percentile", "entropy", "mse")
DEFAULT_PERCENTILE = 99.999
HIST_BINS = 2048


# ------------------------------------------------------------------------------------------ images


def calibration_files(folder: str | Path) -> list[Path]:
    """The image files of `folder`, sorted; a clear UserInputError when it is missing or empty."""
    from edgesr.data import find_images

    folder = Path(folder)
    if not folder.exists():
        raise UserInputError(f"calibration image folder not found: {folder}. Pass a folder of LR images "
                             "(e.g. shared/datasets/DIV2K_test_LR_x4) with --calib-images DIR.")
    if not folder.is_dir():
        raise UserInputError(f"--calib-images must be a folder of images, got the file {folder}.")
    files = sorted(find_images(folder))
    if not files:
        raise UserInputError(f"no images in the calibration folder {folder} (png/jpg/bmp/tif/webp expected).")
    return files


def split_files(files: Sequence[Path], holdout: int, select: int = 0) -> tuple[list[Path], list[Path], list[Path]]:
    """(calibration, selection, held-out) files, disjoint when there are enough: the last `holdout` files
    are held out and the `select` before them are for selection, each at most a quarter of the files
    (at least one each); calibration keeps the rest. With fewer than 3 files every set uses all files."""
    files = list(files)
    if len(files) < 3:
        return files, files, files
    n_hold = max(1, min(holdout, len(files) // 4))
    n_sel = max(1, min(select, len(files) // 4)) if select > 0 else 0
    rest = len(files) - n_hold - n_sel
    return files[:rest], files[rest:rest + n_sel], files[rest + n_sel:]


def load_crops(files: Sequence[Path], count: int, size: int | tuple[int, int], seed: int = 0,
               min_size: int = 1) -> list[tuple[str, np.ndarray]]:
    """`count` crops (name, float32 1x3xHxW in 0..1) from `files`, one per file in turn.

    Crops are at deterministic random positions (numpy seed `seed`); images smaller than the crop are
    mirror-padded. `size` is clamped up to `min_size`.
    """
    from edgesr.data import read_image
    from edgesr.inference.tiling import pad_to

    if count < 1:
        raise UserInputError(f"the calibration crop count must be >= 1, got {count}.")
    h, w = (size, size) if isinstance(size, int) else size
    h, w = max(h, min_size), max(w, min_size)
    if not files:
        raise UserInputError("no calibration images.")
    rng = np.random.default_rng(seed)
    cache: dict[Path, np.ndarray] = {}
    out = []
    for k in range(count):
        path = Path(files[k % len(files)])
        if path not in cache:
            cache[path] = read_image(path)
        img = cache[path]
        x = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        x = pad_to(x, h, w)
        y0 = int(rng.integers(0, x.shape[2] - h + 1))
        x0 = int(rng.integers(0, x.shape[3] - w + 1))
        out.append((f"{path.name}[{y0}:{y0 + h},{x0}:{x0 + w}]",
                    np.ascontiguousarray(x[..., y0:y0 + h, x0:x0 + w])))
    return out


# ------------------------------------------------------------------------------------------ stats


@dataclass
class TensorStats:
    """Observed statistics of one activation tensor over the calibration crops."""

    name: str
    min: float
    max: float
    hist: np.ndarray | None = None   # counts over `edges` (HIST_BINS bins)
    edges: np.ndarray | None = None


def float_activations(model: "onnx.ModelProto", op_types: Iterable[str] | None = None) -> list[str]:
    """Names of the float32 tensors computed from the image that nodes of `op_types` (all when None)
    read or write, plus the float graph input(s): the tensors a QDQ quantizer may need ranges for."""
    from onnx import TensorProto

    from edgesr.export.fp16 import _data_path, _tensor_types

    types = _tensor_types(model)
    _, data = _data_path(model, types)
    wanted = set(op_types) if op_types is not None else None
    inits = {i.name for i in model.graph.initializer}
    names: list[str] = []
    seen = set()
    for value in model.graph.input:
        if value.name not in inits and types.get(value.name) == TensorProto.FLOAT and value.name not in seen:
            names.append(value.name)
            seen.add(value.name)
    for node in model.graph.node:
        if wanted is not None and node.op_type not in wanted:
            continue
        for name in list(node.input) + list(node.output):
            if name and name in data and name not in seen and types.get(name) == TensorProto.FLOAT:
                names.append(name)
                seen.add(name)
    return names


def _probe_model(model: "onnx.ModelProto", tensors: Sequence[str]) -> "onnx.ModelProto":
    """A copy of `model` that also outputs `tensors`."""
    import onnx
    from onnx import TensorProto, helper

    probe = onnx.ModelProto.FromString(model.SerializeToString())
    have = {o.name for o in probe.graph.output}
    for name in tensors:
        if name not in have:
            probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return probe


class _GrowingHistogram:
    """A histogram with bins of width w aligned to multiples of w (bin k covers [k w, (k+1) w)).

    The bin array grows when values fall outside it and the width doubles (merging pairs of bins,
    exactly) when it would exceed `max_bins`, so one pass over the data suffices.
    """

    def __init__(self, max_bins: int = 2 * HIST_BINS) -> None:
        self.max_bins = max_bins
        self.width = 0.0
        self.k0 = 0
        self.counts = np.zeros(0, np.int64)

    def add(self, values: np.ndarray) -> None:
        lo, hi = float(values.min()), float(values.max())
        if self.width == 0.0:
            span = max(hi - lo, abs(hi), abs(lo), 1e-12)
            self.width = span / (self.max_bins // 2)
            self.k0 = math.floor(lo / self.width)
        while True:
            k_lo = min(self.k0, math.floor(lo / self.width))
            k_hi = max(self.k0 + len(self.counts) - 1, math.floor(hi / self.width))
            if k_hi - k_lo + 1 <= self.max_bins:
                break
            self._coarsen()
        if k_lo < self.k0 or k_hi >= self.k0 + len(self.counts):
            grown = np.zeros(k_hi - k_lo + 1, np.int64)
            grown[self.k0 - k_lo: self.k0 - k_lo + len(self.counts)] = self.counts
            self.counts, self.k0 = grown, k_lo
        idx = np.floor(values.ravel() / self.width).astype(np.int64) - self.k0
        np.clip(idx, 0, len(self.counts) - 1, out=idx)
        self.counts += np.bincount(idx, minlength=len(self.counts))

    def _coarsen(self) -> None:
        """Double the bin width: bin k merges into bin floor(k / 2)."""
        k_new0 = math.floor(self.k0 / 2)
        k_last = math.floor((self.k0 + len(self.counts) - 1) / 2)
        merged = np.zeros(k_last - k_new0 + 1, np.int64)
        ks = np.arange(self.k0, self.k0 + len(self.counts)) // 2 - k_new0
        np.add.at(merged, ks, self.counts)
        self.counts, self.k0, self.width = merged, k_new0, self.width * 2

    def edges(self) -> np.ndarray:
        return (np.arange(len(self.counts) + 1) + self.k0) * self.width


def collect_stats(model: "onnx.ModelProto", feeds: Sequence[dict[str, np.ndarray]], tensors: Sequence[str],
                  *, histograms: bool = True, threads: int = 2, group: int = 160) -> dict[str, TensorStats]:
    """Min/max (and, with `histograms`, a histogram of up to 2 x HIST_BINS bins) of each tensor over `feeds`.

    One pass over the feeds per `group` tensors (the graph runs with them as extra outputs; the group
    bounds memory: every tensor of a group is held at once for one crop).
    """
    from edgesr.export.verify import create_session

    stats: dict[str, TensorStats] = {}
    groups = [list(tensors[i:i + group]) for i in range(0, len(tensors), group)]
    for names in groups:
        session = create_session(_probe_model(model, names), threads=threads)
        lo = {n: math.inf for n in names}
        hi = {n: -math.inf for n in names}
        hists = {n: _GrowingHistogram() for n in names} if histograms else {}
        for feed in feeds:
            for name, value in zip(names, session.run(names, feed)):
                lo[name] = min(lo[name], float(np.min(value)))
                hi[name] = max(hi[name], float(np.max(value)))
                if histograms:
                    hists[name].add(value)
        for name in names:
            stats[name] = TensorStats(name, lo[name], hi[name])
            if histograms:
                stats[name].hist = hists[name].counts
                stats[name].edges = hists[name].edges()
    return stats


# ------------------------------------------------------------------------------------------ ranges


def _centres(s: TensorStats) -> np.ndarray:
    assert s.edges is not None
    return 0.5 * (s.edges[:-1] + s.edges[1:])


def _percentile_range(s: TensorStats, percentile: float) -> tuple[float, float]:
    assert s.hist is not None and s.edges is not None
    total = s.hist.sum()
    if total == 0:
        return s.min, s.max
    cut = (100.0 - percentile) / 200.0
    cdf = np.cumsum(s.hist) / total
    lo = float(s.edges[int(np.searchsorted(cdf, cut))])
    hi = float(s.edges[min(int(np.searchsorted(cdf, 1.0 - cut)) + 1, len(s.edges) - 1)])
    return max(lo, s.min), min(hi, s.max)


def _quant_mse(values: np.ndarray, weights: np.ndarray, lo: float, hi: float, levels: int) -> float:
    """Expected squared error of quantizing a histogram onto `levels` uniform steps over [lo, hi]."""
    step = (hi - lo) / (levels - 1)
    if step <= 0:
        return float(np.sum(weights * values ** 2))
    clipped = np.clip(values, lo, hi)
    err = (values - clipped) ** 2  # clipping error
    inside = values == clipped
    # rounding error of a value spread uniformly over its bin: step^2/12 (exact enough for 2048 bins)
    return float(np.sum(weights * (err + np.where(inside, step * step / 12.0, 0.0))))


def _mse_range(s: TensorStats, symmetric: bool, levels: int = 256) -> tuple[float, float]:
    assert s.hist is not None
    values, weights = _centres(s), s.hist.astype(np.float64)
    lo0, hi0 = min(s.min, 0.0), max(s.max, 0.0)
    if symmetric:
        m = max(-lo0, hi0)
        lo0, hi0 = -m, m
    best, best_err = (lo0, hi0), math.inf
    for f in np.linspace(0.2, 1.0, 81):
        lo, hi = lo0 * f, hi0 * f
        err = _quant_mse(values, weights, lo, hi, levels)
        if err < best_err:
            best, best_err = (lo, hi), err
    if symmetric:
        return best
    # refine each side on its own around the joint optimum
    lo, hi = best
    for _ in range(2):
        cands = [lo0 * f for f in np.linspace(0.2, 1.0, 81)] if lo0 < 0 else [0.0]
        lo = min(cands, key=lambda c: _quant_mse(values, weights, c, hi, levels))
        cands = [hi0 * f for f in np.linspace(0.2, 1.0, 81)] if hi0 > 0 else [0.0]
        hi = min(cands, key=lambda c: _quant_mse(values, weights, lo, c, levels))
    return lo, hi


def _kl_threshold(hist: np.ndarray, edges: np.ndarray, quant_bins: int = 128) -> float:
    """TensorRT's entropy calibration on a one-sided histogram (|x| from 0): the threshold whose
    `quant_bins`-level quantization keeps the distribution closest in KL divergence."""
    n = len(hist)
    if hist.sum() == 0 or n <= quant_bins:
        return float(edges[-1])
    best_i, best_kl = n, math.inf
    hist = hist.astype(np.float64)
    for i in range(quant_bins, n + 1, max(1, n // 256)):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()
        nz = p > 0
        # merge into quant_bins bins, spread back over the non-empty source bins
        idx = (np.arange(i) * quant_bins) // i
        merged = np.bincount(idx, weights=hist[:i], minlength=quant_bins)
        counts = np.bincount(idx, weights=nz.astype(np.float64), minlength=quant_bins)
        q = np.where(nz, merged[idx] / np.maximum(counts[idx], 1), 0.0)
        ps, qs = p / p.sum(), q / max(q.sum(), 1e-30)
        mask = ps > 0
        if np.any(mask & (qs == 0)):
            continue
        kl = float(np.sum(ps[mask] * np.log(ps[mask] / qs[mask])))
        if kl < best_kl:
            best_i, best_kl = i, kl
    return float(edges[best_i])


def _entropy_range(s: TensorStats, symmetric: bool) -> tuple[float, float]:
    assert s.hist is not None and s.edges is not None
    centres = _centres(s)
    hi = lo = 0.0
    sides = [("hi", centres >= 0), ("lo", centres < 0)]
    if symmetric:
        sides = [("abs", np.ones_like(centres, bool))]
    for side, mask in sides:
        mags = np.abs(centres[mask])
        if mags.size == 0 or mags.max() <= 0:
            continue
        one_edges = np.linspace(0.0, mags.max(), HIST_BINS + 1)
        one_hist, _ = np.histogram(mags, bins=one_edges, weights=s.hist[mask])
        t = _kl_threshold(one_hist, one_edges)
        if side == "hi":
            hi = t
        elif side == "lo":
            lo = -t
        else:
            lo, hi = -t, t
    return max(lo, min(s.min, 0.0)), min(hi, max(s.max, 0.0))


def compute_ranges(stats: dict[str, TensorStats], method: str, *, symmetric: bool = False,
                   percentile: float = DEFAULT_PERCENTILE,
                   exact: dict[str, tuple[float, float]] | None = None) -> dict[str, tuple[float, float]]:
    """[low, high] per tensor by `method` (see the module docstring); every range includes 0.

    `symmetric` makes each range [-m, m] (signed int8 with zero point 0, as TensorRT needs). `exact`
    tensors keep the given range whatever the method (e.g. the image input, whose 0..1 range is known).
    """
    if method not in RANGE_METHODS:
        raise UserInputError(f"unknown calibration method {method!r}; choose one of {', '.join(RANGE_METHODS)}.")
    out = {}
    for name, s in stats.items():
        if exact and name in exact:
            lo, hi = exact[name]
        elif method == "minmax" or s.hist is None:
            lo, hi = s.min, s.max
        elif method == "percentile":
            lo, hi = _percentile_range(s, percentile)
        elif method == "entropy":
            lo, hi = _entropy_range(s, symmetric)
        else:
            lo, hi = _mse_range(s, symmetric)
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        if symmetric:
            m = max(-lo, hi)
            lo, hi = -m, m
        if hi - lo < 1e-8:
            hi = lo + 1e-8
        out[name] = (lo, hi)
    return out


def write_ort_cache(ranges: dict[str, tuple[float, float]], path: str | Path) -> Path:
    """Write `ranges` as an ONNX Runtime calibration cache (``quantize_static(calibration_cache_path=...)``,
    method MinMax: ONNX Runtime then uses the ranges as they are)."""
    from onnxruntime.quantization import CalibrationMethod, TensorData, TensorsData, save_tensors_data

    data = {name: TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
            for name, (lo, hi) in ranges.items()}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), Path(path))
    return Path(path)


def summarize_ranges(stats: dict[str, TensorStats], ranges: dict[str, tuple[float, float]],
                     limit: int | None = None) -> list[dict[str, Any]]:
    """Per tensor: observed min/max, chosen range and the fraction of values clipped (for reports)."""
    rows = []
    for name, (lo, hi) in ranges.items():
        s = stats.get(name)
        clipped = None
        if s is not None and s.hist is not None:
            c = _centres(s)
            total = max(int(s.hist.sum()), 1)
            clipped = float(s.hist[(c < lo) | (c > hi)].sum()) / total
        rows.append({"tensor": name, "min": None if s is None else s.min, "max": None if s is None else s.max,
                     "low": lo, "high": hi, "clipped": clipped})
    return rows[:limit] if limit else rows
