"""The benchmark harness: time every target at every size and thread count, with quality and cost.

One record per (target, threads, size): latency statistics (warm-up, then >= `min_iters` calls and
>= `min_seconds`), throughput, optional peak memory (CPU RSS in a child process, or CUDA
`max_memory_allocated`), params/MACs/#acts/#conv at the NTIRE 256x256 input, and PSNR/SSIM on a
dataset through the same runtime. With `images` set (the NTIRE protocol), latency is the
per-image time over real LR images instead of repeated calls on one input.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgesr.bench.targets import BenchTarget
from edgesr.errors import UserInputError

log = logging.getLogger(__name__)


@dataclass
class BenchConfig:
    sizes: list[tuple[int, int]] = field(default_factory=lambda: [(256, 256)])
    threads: list[int] = field(default_factory=lambda: [2])
    warmup_s: float = 0.5
    min_iters: int = 10
    min_seconds: float = 3.0
    max_seconds: float | None = 60.0
    images: Path | None = None
    limit: int | None = None
    psnr_dataset: Path | None = None
    psnr_limit: int | None = None
    memory: bool = False
    complexity_size: tuple[int, int] = (256, 256)
    protocol: str = ""

    def validate(self) -> None:
        if not self.sizes and self.images is None:
            raise UserInputError("nothing to time: give at least one --size or --images.")
        for h, w in self.sizes:
            if h < 1 or w < 1:
                raise UserInputError(f"invalid size {h}x{w}.")
        if any(t < 1 for t in self.threads):
            raise UserInputError(f"thread counts must be >= 1, got {self.threads}.")
        for name in ("limit", "psnr_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserInputError(f"{name.replace('_', '-')} must be a positive number of images, got {value}.")
        if self.min_iters < 1 or self.min_seconds < 0:
            raise UserInputError(f"min-iters must be >= 1 and min-seconds >= 0, got {self.min_iters} and "
                                 f"{self.min_seconds}.")
        if self.images is not None and not Path(self.images).is_dir():
            raise UserInputError(f"image folder not found: {self.images}")
        if self.psnr_dataset is not None and not Path(self.psnr_dataset).exists():
            raise UserInputError(f"PSNR dataset not found: {self.psnr_dataset}")


@dataclass
class BenchRecord:
    label: str
    backend: str
    stage: str
    precision: str
    device: str
    threads: int | None
    input: str
    scale: int
    latency: dict[str, Any]
    params: int | None = None
    macs_g: float | None = None
    flops_g: float | None = None
    fvcore_flops_g: float | None = None
    acts_m: float | None = None
    convs: int | None = None
    psnr: float | None = None
    ssim: float | None = None
    psnr_dataset: str | None = None
    memory: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return float(self.latency["median_ms"])

    def row(self) -> dict[str, Any]:
        """Flat fields for CSV and tables."""
        lat = self.latency
        mem = self.memory or {}
        return {
            "model": self.label, "stage": self.stage, "backend": self.backend, "precision": self.precision,
            "device": self.device, "threads": self.threads, "input": self.input, "scale": self.scale,
            "median_ms": lat["median_ms"], "mean_ms": lat["mean_ms"], "min_ms": lat["min_ms"],
            "p90_ms": lat["p90_ms"], "p95_ms": lat["p95_ms"], "p99_ms": lat["p99_ms"],
            "iterations": lat["iterations"], "images_per_s": lat.get("images_per_s"),
            "mp_per_s": lat.get("output_megapixels_per_s"),
            "params": self.params, "macs_g": self.macs_g, "flops_g": self.flops_g,
            "fvcore_flops_g": self.fvcore_flops_g, "acts_m": self.acts_m, "convs": self.convs,
            "psnr": self.psnr, "ssim": self.ssim, "psnr_dataset": self.psnr_dataset,
            "peak_mb": mem.get("peak_rss_mb", mem.get("peak_mb")),
            "inference_mb": mem.get("inference_mb"),
        }


@dataclass
class BenchReport:
    records: list[BenchRecord]
    env: dict[str, Any]
    config: dict[str, Any]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"env": self.env, "config": self.config, "seconds": self.seconds,
                "records": [asdict(r) for r in self.records]}


def latency_input(h: int, w: int) -> np.ndarray:
    """A real LR crop (DIV2K) of the requested size when the shared data exists, else noise."""
    from edgesr.paths import shared_dir

    folder = shared_dir() / "datasets" / "DIV2K_test_LR_x4"
    try:
        from edgesr.data import find_images, read_image

        img = read_image(find_images(folder)[0]) if folder.is_dir() else None
    except Exception:  # noqa: BLE001 - any failure falls back to noise; timing does not depend on content
        img = None
    if img is not None and img.shape[0] >= h and img.shape[1] >= w:
        crop = img[:h, :w]
    elif img is not None:
        reps = (-(-h // img.shape[0]), -(-w // img.shape[1]), 1)
        crop = np.tile(img, reps)[:h, :w]
    else:
        crop = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
    return np.ascontiguousarray((crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])


def _complexity(target: BenchTarget, size: tuple[int, int], cache: dict[int, Any]) -> Any:
    model = target.reference_model
    if model is None:
        return None
    key = id(model)
    if key not in cache:
        from edgesr.analysis.complexity import profile_complexity

        cache[key] = profile_complexity(model, size)
    return cache[key]


def _quality(runner: Any, target: BenchTarget, config: BenchConfig) -> tuple[float | None, float | None, str | None]:
    if config.psnr_dataset is None:
        return None, None, None
    from edgesr.data import open_eval_dataset
    from edgesr.evaluate import evaluate

    ds = Path(config.psnr_dataset)
    pairs = open_eval_dataset(ds, target.scale, limit=config.psnr_limit)
    res = evaluate(runner.as_sr_function(), pairs, target.scale, dataset=ds.name, min_size=target.min_size)
    return res.psnr, res.ssim, ds.name


def _time_over_images(runner: Any, config: BenchConfig, target: BenchTarget) -> tuple[Any, str, tuple[int, ...]]:
    """NTIRE protocol: one timed call per real LR image after a warm-up; stats over images."""
    from edgesr.bench.latency import LatencyStats
    from edgesr.data import find_images, read_image
    from edgesr.inference.tiling import pad_to

    paths = find_images(config.images)[: config.limit]
    if not paths:
        raise UserInputError(f"no images in {config.images}")
    arrays = []
    for p in paths:
        img = read_image(p)
        x = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        arrays.append(np.ascontiguousarray(pad_to(x, target.min_size, target.min_size)))
    start = time.perf_counter()
    while time.perf_counter() - start < config.warmup_s:
        runner.infer(arrays[0])
    samples = []
    pixels = 0
    for x in arrays:
        t0 = time.perf_counter()
        y = runner.infer(x)
        samples.append(time.perf_counter() - t0)
        pixels += y.shape[-2] * y.shape[-1]
    stats = LatencyStats.from_samples(samples, batch_size=1)
    d = stats.to_dict()
    d["output_megapixels_per_s"] = pixels / 1e6 / max(sum(samples), 1e-12)
    largest = max((a.shape for a in arrays), key=lambda sh: sh[-2] * sh[-1])
    return d, f"{len(arrays)} images ({Path(config.images).name})", tuple(largest)


def _memory(target: BenchTarget, spec_options: dict[str, Any], shape: Sequence[int], runner: Any) -> dict | None:
    from edgesr.bench import memory

    try:
        if target.spec.device == "cuda" and target.spec.backend == "torch":
            x = np.zeros(tuple(shape), np.float32)
            return memory.measure_runner_cuda_memory(runner, x).to_dict()
        opts = {k: v for k, v in spec_options.items() if v is not None}
        return memory.measure_runner_memory(target.artifact, tuple(shape), target.spec.backend, **opts).to_dict()
    except Exception as exc:  # noqa: BLE001 - memory is a best-effort column; say why it is empty
        log.warning("peak memory of %s not measured: %s", target.label, exc)
        return {"error": str(exc)[:200]}


def run_benchmark(targets: Sequence[BenchTarget], config: BenchConfig,
                  progress: Callable[[str], None] | None = None) -> BenchReport:
    """Measure every target; `progress(msg)` is called before each measurement."""
    from edgesr.bench.env import collect_env
    from edgesr.runtimes import create_runner

    config.validate()
    if not targets:
        raise UserInputError("no benchmark targets.")
    from edgesr.utils.memory import check_fits_in_memory, image_bytes

    top = max(t.scale for t in targets)
    for h, w in config.sizes:  # refused before any input is allocated
        check_fits_in_memory(image_bytes(h, w, top), f"a {h}x{w} input at x{top}", "Use a smaller --size.")
    records: list[BenchRecord] = []
    complexity_cache: dict[int, Any] = {}
    started = time.perf_counter()
    for target in targets:
        cx = _complexity(target, config.complexity_size, complexity_cache)
        quality: tuple[float | None, float | None, str | None] | None = None
        threads_list: list[int | None] = list(config.threads) if target.spec.device == "cpu" else [None]
        for threads in threads_list:
            options = target.spec.runner_options(threads)
            options = {k: v for k, v in options.items() if v is not None}
            runner = create_runner(target.artifact, target.spec.backend, **options)
            with runner:
                if quality is None:
                    if progress:
                        progress(f"{target.label} {target.spec.label}: quality")
                    quality = _quality(runner, target, config)
                inputs: list[tuple[str, Any]] = []
                if config.images is not None:
                    inputs.append(("images", None))
                inputs += [(f"{h}x{w}", (h, w)) for h, w in config.sizes]
                for input_label, size in inputs:
                    if progress:
                        progress(f"{target.label} {target.spec.label} threads={threads} {input_label}")
                    if size is None:
                        # Peak memory is measured on the largest image of the set.
                        latency, input_label, shape = _time_over_images(runner, config, target)
                    else:
                        from edgesr.bench.latency import measure_runner

                        x = latency_input(*size)
                        shape = x.shape
                        stats = measure_runner(runner, x, warmup_s=config.warmup_s, min_iters=config.min_iters,
                                               min_seconds=config.min_seconds, max_seconds=config.max_seconds)
                        latency = stats.to_dict()
                    mem = _memory(target, options, shape, runner) if config.memory else None
                    records.append(BenchRecord(
                        label=target.label, backend=target.spec.label, stage=target.stage,
                        precision=target.precision, device=target.spec.device, threads=threads,
                        input=input_label, scale=target.scale, latency=latency,
                        params=getattr(cx, "params", None), macs_g=(cx.macs / 1e9) if cx else None,
                        flops_g=(cx.ntire_flops / 1e9) if cx else None,
                        fvcore_flops_g=(cx.fvcore_flops / 1e9) if cx else None,
                        acts_m=(cx.acts / 1e6) if cx else None, convs=getattr(cx, "convs", None),
                        psnr=quality[0], ssim=quality[1], psnr_dataset=quality[2], memory=mem))
    env = collect_env(threads=config.threads[0] if config.threads else None,
                      gpu=any(t.spec.device == "cuda" for t in targets))
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    return BenchReport(records, env, cfg, time.perf_counter() - started)
