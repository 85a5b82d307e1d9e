"""PNG plots of benchmark results (matplotlib, imported only here: `pip install edgesr[plot]`)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

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
    first = report.records[0] if report.records else None
    points = [(r.median_ms, r.psnr, f"{r.label} {r.backend}") for r in report.records
              if first is not None and r.psnr is not None and r.input == first.input and r.threads == first.threads]
    if not points or first is None:
        return None
    return latency_quality_plot(points, path, xlabel=f"median latency (ms), input {first.input}",
                                ylabel=f"PSNR (dB, {first.psnr_dataset})", force=force)


def latency_quality_plot(points: Sequence[tuple[float, float, str]], path: Path, *, xlabel: str, ylabel: str,
                         highlight: int | None = None, floor: float | None = None, floor_label: str = "",
                         title: str = "", force: bool = False) -> Path:
    """Scatter of (latency, quality, label) points with the Pareto front (`edgesr.bench.pareto`) joined and
    marked; `highlight`: index of a point drawn as a star (e.g. the chosen one); `floor`: a horizontal line
    (e.g. the lowest quality a budget accepts)."""
    from edgesr.bench.pareto import pareto_front

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    front = pareto_front([(x, y) for x, y, _ in points])
    on_front = set(front)
    for i, (x, y, name) in enumerate(points):
        ax.scatter(x, y, color="tab:blue" if i in on_front else "tab:gray", s=28, zorder=3)
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--o", color="tab:blue", linewidth=1,
            markersize=6, markerfacecolor="none", label="Pareto front", zorder=2)
    if highlight is not None:
        ax.scatter([points[highlight][0]], [points[highlight][1]], marker="*", s=260, color="tab:red", zorder=4,
                   label=f"chosen: {points[highlight][2]}")
    if floor is not None:
        ax.axhline(floor, color="tab:red", linewidth=0.8, linestyle=":", label=floor_label or None)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
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
