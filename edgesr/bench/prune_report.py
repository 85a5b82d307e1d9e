"""Before/after measurements of a pruned model (what ``edgesr prune`` prints and the pruning benchmark tabulates).

    from edgesr.bench.prune_report import measure_model, measure_latencies, format_table

    before = measure_model(original, "rlfn_x4", datasets=["Set5"])          # complexity + PSNR/SSIM
    after = measure_model(pruned, "pruned", datasets=["Set5"])
    measure_latencies([before, after], [original, pruned], threads=2)       # ONNX Runtime CPU, interleaved
    print(format_table([before, after], markdown=True))

* Complexity uses the NTIRE definitions at a 1x3x256x256 LR input (`edgesr.analysis.complexity`): params,
  conv MACs (the "flops" pruning target), NTIRE FLOPs (MACs + activation/BN elements, what the NTIRE
  reports call "FLOPs"), #Acts (conv output elements) and #Conv.
* Quality is Y-channel PSNR/SSIM (border = scale) of PyTorch eager via `edgesr.evaluate`.
* Latency is the median of ONNX Runtime CPU calls on one real 256x256 LR crop, with the same thread
  count for every model. Each model goes through edgesr's verified ONNX export; calls alternate between
  the models in rounds, so load from other processes on a shared machine hits them alike.

Library code: nothing here prints (progress goes through an optional callback).
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from torch import nn

from edgesr.errors import UserInputError

__all__ = ["ModelMeasurement", "default_eval_datasets", "format_table", "measure_complexity",
           "measure_latencies", "measure_model", "measure_quality", "ratios"]

Progress = Callable[[str], None]


@dataclass
class ModelMeasurement:
    """One model's figures. `quality` maps a dataset name to ``{"psnr", "ssim", "images"}``."""

    label: str
    params: int
    macs: int
    ntire_flops: int
    acts: int
    convs: int
    input_size: tuple[int, int] = (256, 256)
    quality: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: float | None = None
    latency: dict[str, Any] = field(default_factory=dict)  # median/min/mean/p90 ms, iterations, threads, runtime
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Fields plus ``flops`` (= conv MACs, the pruning target's definition) and ``psnr`` / ``ssim`` of the
        first dataset, so that reports read alike for every command."""
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["flops"] = self.macs
        first = next(iter(self.quality.values()), None)
        d["psnr"] = first["psnr"] if first else None
        d["ssim"] = first["ssim"] if first else None
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelMeasurement":
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in data.items() if k in names}
        d["input_size"] = tuple(d.get("input_size", (256, 256)))
        return cls(**d)


def measure_complexity(model: nn.Module, input_size: Sequence[int] | int = (256, 256)) -> dict[str, int]:
    """params / macs (conv MACs) / ntire_flops / acts / convs of `model` for a 1x3xHxW input."""
    from edgesr.analysis.complexity import profile_complexity

    c = profile_complexity(model, input_size)
    return {"params": int(c.params), "macs": int(c.macs), "ntire_flops": int(c.ntire_flops), "acts": int(c.acts),
            "convs": int(c.convs)}


def default_eval_datasets() -> list[Path]:
    """Set5 from the shared data when it is there, else nothing."""
    from edgesr.paths import shared_dir

    set5 = shared_dir() / "datasets" / "Set5"
    return [set5] if set5.is_dir() else []


def measure_quality(model: nn.Module, datasets: Sequence[str | Path], *, scale: int | None = None,
                    limit: int | None = None, progress: bool = False) -> dict[str, dict[str, float]]:
    """Y-channel PSNR/SSIM (border = scale) of `model` in PyTorch eager on each dataset."""
    from edgesr.evaluate import evaluate_datasets
    from edgesr.inference import torch_sr_function

    scale = int(scale or getattr(model, "scale", 0) or 0)
    if scale < 1:
        raise UserInputError("the model has no .scale: pass scale= to measure its quality.")
    was = model.training
    out: dict[str, dict[str, float]] = {}
    try:
        results = evaluate_datasets(torch_sr_function(model), datasets, scale, limit=limit, progress=progress,
                                    min_size=int(getattr(model, "min_input_size", 1) or 1))
        out = {name: {"psnr": float(r.psnr), "ssim": float(r.ssim), "images": len(r.images)}
               for name, r in results.items()}
    finally:
        model.train(was)
    return out


def measure_model(model: nn.Module, label: str, *, datasets: Sequence[str | Path] = (),
                  input_size: Sequence[int] | int = (256, 256), limit: int | None = None,
                  progress: bool = False) -> ModelMeasurement:
    """Complexity and (optionally) PSNR/SSIM of `model`; latency comes from `measure_latencies`."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(int(v) for v in input_size)
    cx = measure_complexity(model, size)
    m = ModelMeasurement(label=label, input_size=size, **cx)  # type: ignore[arg-type]
    if datasets:
        m.quality = measure_quality(model, datasets, limit=limit, progress=progress)
    return m


def measure_latencies(measurements: Sequence[ModelMeasurement], models: Sequence[nn.Module | str | Path], *,
                      threads: int = 2,
                      input_size: Sequence[int] | int = (256, 256), min_runs: int = 20, min_seconds: float = 0.0,
                      round_size: int = 5, warmup: int = 1, work_dir: str | Path | None = None,
                      progress: Progress | None = None) -> None:
    """ONNX Runtime CPU latency of each model (median ms), written into its measurement.

    Every module is exported with `edgesr.export.export_onnx` (parity-checked against PyTorch at 64x64)
    into `work_dir` (default: a temporary folder); a path is taken as an exported ``.onnx`` file (float
    RGB 0..1 I/O). Then the runners are called in alternating rounds of `round_size` calls until each
    has at least `min_runs` timed calls and `min_seconds` of timing.
    """
    if len(measurements) != len(models):
        raise ValueError("one measurement per model")
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    h, w = (int(v) for v in input_size)
    if threads < 1 or min_runs < 1 or round_size < 1:
        raise UserInputError("threads, min_runs and round_size must be positive.")
    import numpy as np

    from edgesr.bench.harness import latency_input
    from edgesr.export import ExportOptions, export_onnx
    from edgesr.runtimes import create_runner

    with tempfile.TemporaryDirectory(prefix="edgesr-prune-lat-") as tmp:
        folder = Path(work_dir) if work_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        runners = []
        try:
            for i, (m, model) in enumerate(zip(measurements, models)):
                if isinstance(model, (str, Path)):
                    path = Path(model)
                else:
                    if progress:
                        progress(f"exporting {m.label} to ONNX")
                    path = folder / f"model_{i}.onnx"
                    export_onnx(model, path, ExportOptions(parity_sizes=((64, 64),), threads=threads, force=True))
                runner = create_runner(path, "onnxruntime", threads=threads)
                runner.activate()
                runners.append(runner)
            x = latency_input(h, w)
            round_size = min(round_size, min_runs)
            for runner in runners:
                for _ in range(warmup):
                    runner.infer(x)
            if progress:
                progress(f"timing {len(runners)} model(s) in ONNX Runtime ({threads} threads, {h}x{w}, "
                         f">= {min_runs} runs each)")
            samples: list[list[float]] = [[] for _ in runners]
            start = time.perf_counter()
            while min(len(s) for s in samples) < min_runs or time.perf_counter() - start < min_seconds:
                for runner, s in zip(runners, samples):
                    for _ in range(round_size):
                        t0 = time.perf_counter()
                        runner.infer(x)
                        s.append(time.perf_counter() - t0)
        finally:
            for runner in runners:
                runner.deactivate()
    for m, s in zip(measurements, samples):
        a = np.asarray(s) * 1000.0
        m.latency_ms = float(np.median(a))
        m.latency = {"median_ms": float(np.median(a)), "min_ms": float(a.min()), "mean_ms": float(a.mean()),
                     "p90_ms": float(np.percentile(a, 90)), "iterations": int(a.size), "threads": int(threads),
                     "input": f"1x3x{h}x{w}", "runtime": "onnxruntime CPUExecutionProvider (edgesr export, fp32)"}


def ratios(before: ModelMeasurement, after: ModelMeasurement) -> dict[str, float | None]:
    """after / before for every size figure and the latency; PSNR/SSIM differences per dataset."""
    out: dict[str, Any] = {}
    for k in ("params", "macs", "ntire_flops", "acts"):
        b, a = getattr(before, k), getattr(after, k)
        out[k] = a / b if b else None
    out["latency"] = (after.latency_ms / before.latency_ms) if before.latency_ms and after.latency_ms else None
    for name, q in after.quality.items():
        if name in before.quality:
            out[f"{name}_psnr_delta_db"] = q["psnr"] - before.quality[name]["psnr"]
            out[f"{name}_ssim_delta"] = q["ssim"] - before.quality[name]["ssim"]
    return out


def _fmt_lat(m: ModelMeasurement) -> str:
    return f"{m.latency_ms:.1f}" if m.latency_ms is not None and math.isfinite(m.latency_ms) else "-"


def format_table(measurements: Sequence[ModelMeasurement], *, markdown: bool = False,
                 datasets: Sequence[str] | None = None) -> str:
    """A table with one row per model: params, conv MACs, NTIRE FLOPs, #Acts, latency, PSNR/SSIM per dataset."""
    if not measurements:
        return ""
    if datasets is None:
        datasets = []
        for m in measurements:
            datasets += [d for d in m.quality if d not in datasets]
    threads = {m.latency.get("threads") for m in measurements if m.latency}
    lat_head = f"ORT CPU ms ({threads.pop()}t)" if len(threads) == 1 else "ORT CPU ms"
    head = ["model", "params", "conv MACs (G)", "NTIRE FLOPs (G)", "#Acts (M)", "#Conv", lat_head]
    head += [f"{d} PSNR / SSIM" for d in datasets]
    rows = []
    for m in measurements:
        row = [m.label, f"{m.params:,}", f"{m.macs / 1e9:.3f}", f"{m.ntire_flops / 1e9:.3f}", f"{m.acts / 1e6:.3f}",
               str(m.convs), _fmt_lat(m)]
        for d in datasets:
            q = m.quality.get(d)
            row.append(f"{q['psnr']:.4f} / {q['ssim']:.5f}" if q else "-")
        rows.append(row)
    if markdown:
        align = ["---"] + ["---:"] * (len(head) - 1)
        return "\n".join("| " + " | ".join(r) + " |" for r in [head, align, *rows])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
