"""PNG plots of benchmark results (matplotlib, imported only here: `pip install edgesr[plot]`)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from edgesr.bench.harness import BenchReport
from edgesr.errors import MissingDependencyError
from edgesr.utils.atomic import atomic_path


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("plots need matplotlib: pip install edgesr[plot]") from exc
    return plt


def _pixels(label: str) -> int | None:
    try:
        h, w = (int(v) for v in label.split("x"))
    except ValueError:
        return None
    return h * w


def pareto_plot(report: BenchReport, path: Path, force: bool = False) -> Path | None:
    """Latency (x) vs PSNR (y) per model/backend at the first input size; the Pareto front joined."""
    points = [(r.median_ms, r.psnr, f"{r.label} {r.backend}") for r in report.records
              if r.psnr is not None and r.input == report.records[0].input and r.threads == report.records[0].threads]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for x, y, name in points:
        ax.scatter(x, y)
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front, best = [], float("-inf")
    for x, y, _ in sorted(points):
        if y > best:
            front.append((x, y))
            best = y
    ax.plot(*zip(*front), "--", color="gray", linewidth=1, label="Pareto front")
    ax.set_xlabel(f"median latency (ms), input {report.records[0].input}")
    ax.set_ylabel(f"PSNR (dB, {report.records[0].psnr_dataset})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, force) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def resolution_plot(report: BenchReport, path: Path, force: bool = False) -> Path | None:
    """Latency and peak memory vs input pixels, one line per model/backend/threads."""
    series: dict[str, list[tuple[int, float, float | None]]] = defaultdict(list)
    for r in report.records:
        px = _pixels(r.input)
        if px is None:
            continue
        peak = (r.memory or {}).get("peak_mb")
        series[f"{r.label} {r.backend} t{r.threads}"].append((px, r.median_ms, peak))
    series = {k: sorted(v) for k, v in series.items() if len(v) >= 2}
    if not series:
        return None
    plt = _pyplot()
    has_mem = any(p[2] is not None for v in series.values() for p in v)
    fig, axes = plt.subplots(1, 2 if has_mem else 1, figsize=(11 if has_mem else 6, 4.5), squeeze=False)
    for name, pts in series.items():
        axes[0][0].plot([p[0] / 1e6 for p in pts], [p[1] for p in pts], marker="o", label=name)
        if has_mem:
            axes[0][1].plot([p[0] / 1e6 for p in pts], [p[2] or float("nan") for p in pts], marker="o", label=name)
    axes[0][0].set_xlabel("input megapixels")
    axes[0][0].set_ylabel("median latency (ms)")
    axes[0][0].set_xscale("log")
    axes[0][0].set_yscale("log")
    axes[0][0].grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if has_mem:
        axes[0][1].set_xlabel("input megapixels")
        axes[0][1].set_ylabel("peak memory (MB)")
        axes[0][1].set_xscale("log")
        axes[0][1].grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, force) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
