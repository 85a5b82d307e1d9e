"""Benchmark results as a terminal table, JSON, CSV and Markdown (files name their setup)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from edgesr.bench.harness import BenchRecord, BenchReport
from edgesr.utils.atomic import write_text_atomic

BASELINE_BACKEND = "torch"


def speedups(records: list[BenchRecord], baseline: str = BASELINE_BACKEND) -> list[float | None]:
    """median(baseline) / median(record) for records sharing model, stage, threads and input."""
    base = {(r.label, r.stage, r.threads, r.input): r.median_ms for r in records if r.backend == baseline}
    return [(base[k] / r.median_ms) if (k := (r.label, r.stage, r.threads, r.input)) in base and r.median_ms > 0
            else None for r in records]


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec or ".2f")
    if isinstance(value, int) and spec == ",":
        return f"{value:,}"
    return str(value)


COLUMNS = [
    ("model", "model", ""), ("stage", "stage", ""), ("backend", "backend", ""), ("threads", "thr", ""),
    ("input", "input", ""), ("median_ms", "median ms", ".1f"), ("p90_ms", "p90 ms", ".1f"),
    ("mean_ms", "mean ms", ".1f"), ("speedup", "vs torch", ".2f"), ("mp_per_s", "MP/s", ".3f"),
    ("psnr", "PSNR", ".4f"), ("params", "params", ","), ("macs_g", "GMACs", ".3f"), ("flops_g", "NTIRE GFLOPs", ".3f"),
    ("fvcore_flops_g", "fvcore GFLOPs", ".3f"), ("acts_m", "Acts (M)", ".3f"),
    ("convs", "#conv", ""), ("peak_mb", "peak MB", ".0f"),
]


def rows(report: BenchReport) -> list[dict[str, Any]]:
    out = []
    for rec, sp in zip(report.records, speedups(report.records)):
        row = rec.row()
        row["speedup"] = sp
        out.append(row)
    return out


def _present_columns(table: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [c for c in COLUMNS if any(r.get(c[0]) is not None for r in table)]


def markdown_table(report: BenchReport) -> str:
    table = rows(report)
    cols = _present_columns(table)
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in table:
        lines.append("| " + " | ".join(_fmt(r.get(key), spec) for key, _, spec in cols) + " |")
    return "\n".join(lines)


def text_table(report: BenchReport) -> str:
    table = rows(report)
    cols = _present_columns(table)
    cells = [[c[1] for c in cols]] + [[_fmt(r.get(key), spec) for key, _, spec in cols] for r in table]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    out = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def env_header(report: BenchReport) -> str:
    env = report.env
    cpu = env.get("cpu", {})
    pk = env.get("versions", {})
    gpus = ", ".join(g.get("name", "?") for g in env.get("gpus", []) or []) or "none"
    versions = ", ".join(f"{k} {v}" for k, v in pk.items() if v)
    return (f"- CPU: {cpu.get('model', '?')} ({cpu.get('logical_cpus', '?')} logical CPUs); GPU: {gpus}\n"
            f"- {versions}\n- protocol: {report.config.get('protocol') or 'custom'}; "
            f"warm-up {report.config.get('warmup_s')} s, >= {report.config.get('min_iters')} iterations and "
            f">= {report.config.get('min_seconds')} s per measurement; total {report.seconds:.0f} s")


def markdown_report(report: BenchReport, title: str = "edgesr benchmark") -> str:
    return f"# {title}\n\n{env_header(report)}\n\n{markdown_table(report)}\n"


def csv_text(report: BenchReport) -> str:
    return rows_csv(rows(report))


def rows_csv(table: list[dict[str, Any]]) -> str:
    """CSV of flat rows (the first row's keys are the header); empty for no rows."""
    buf = io.StringIO()
    if table:
        writer = csv.DictWriter(buf, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return buf.getvalue()


def write_report(report: BenchReport, *, json_path: Path | None = None, csv_path: Path | None = None,
                 md_path: Path | None = None, title: str = "edgesr benchmark", force: bool = False) -> list[Path]:
    """Write the requested files atomically; return their paths."""
    written = []
    if json_path:
        data = report.to_dict()
        # Top-level summary of the first record, so scripts need not dig into `records`.
        if report.records:
            first = report.records[0]
            data.update({"params": first.params, "macs": first.macs_g * 1e9 if first.macs_g else None,
                         "flops": first.flops_g * 1e9 if first.flops_g else None,
                         "fvcore_flops": first.fvcore_flops_g * 1e9 if first.fvcore_flops_g else None,
                         "acts": first.acts_m * 1e6 if first.acts_m else None, "convs": first.convs,
                         "latency_ms": first.latency.get("median_ms"), "latency_mean_ms": first.latency.get("mean_ms"),
                         "psnr": first.psnr, "ssim": first.ssim})
        written.append(write_text_atomic(json_path, json.dumps(data, indent=2, default=str) + "\n", force=force))
    if csv_path:
        written.append(write_text_atomic(csv_path, csv_text(report), force=force))
    if md_path:
        written.append(write_text_atomic(md_path, markdown_report(report, title), force=force))
    return written
