"""The search's evidence: Pareto table (Markdown / CSV / JSON), latency-vs-PSNR plot, the chosen artifact with
a sidecar that records the decision, and the one-line summary.

File names carry the model, the target and the environment (``optimize_rlfn_x4_cpu-xeon-2t.md``, with the
plot ``...png`` beside it, so the Markdown can be committed together with its image).
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgesr.utils.atomic import write_text_atomic

if TYPE_CHECKING:
    from edgesr.optimize.decide import Row
    from edgesr.optimize.search import OptimizeResult

SIDECAR_BLOCK = "optimize"
_SAME_PRECISION = {"f32": "fp32", "float32": "fp32", "fp32": "fp32", "bf16": "bf16", "bfloat16": "bf16",
                   "f16": "fp16", "float16": "fp16", "fp16": "fp16", "int8": "int8", "i8": "int8", "u8": "int8"}


def report_stem(result: "OptimizeResult", primary: str) -> str:
    from edgesr.bench.env import env_slug

    slug = env_slug(result.env, device=result.target.device, threads=result.threads)
    tag = "" if result.target.name in ("cpu", "cuda") else f"_{result.target.name}"
    return f"optimize_{primary}{tag}_{slug}"


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _peak_mb(memory: dict[str, Any] | None) -> float | None:
    if not memory:
        return None
    value = memory.get("peak_rss_mb", memory.get("peak_mb"))
    return float(value) if isinstance(value, (int, float)) else None


def table_rows(result: "OptimizeResult") -> list[dict[str, Any]]:
    """One flat row per measured candidate, fastest first at the deciding size."""
    d = result.decision
    out = []
    for rank, row in enumerate(d.rows, 1):
        r = row.result
        entry: dict[str, Any] = {"rank": rank, "candidate": r.key, "variant": r.variant, "runtime": r.runtime,
                                 "precision": r.precision, "ran_as": r.actual_precision,
                                 "artifact": Path(r.artifact).name if r.artifact else None}
        for size in result.target.size_labels:
            entry[f"median_ms_{size}"] = r.median_ms(size)
            entry[f"p90_ms_{size}"] = r.p90_ms(size)
        entry["alone_ms"] = r.call_ms.get(d.size)  # one warm call while built, nothing interleaved
        entry.update({"speedup_vs_eager": row.speedup, "psnr": r.psnr, "ssim": r.ssim, "drop_db": row.drop_db,
                      "peak_mb": _peak_mb(r.memory), "within_budget": row.within_budget, "pareto": row.on_front,
                      "chosen": d.chosen is row, "deployable": r.fmt is not None})
        out.append(entry)
    return out


def summary_line(result: "OptimizeResult", chosen_path: Path | None) -> str:
    """``best: openvino bf16 — 6.8x eager, -0.004 dB Set5 — out/rlfn_x4.onnx`` (or why there is none)."""
    d = result.decision

    def name(row: "Row") -> str:
        variant = "" if row.result.variant == d.baseline.variant else f"{row.result.variant} "
        return f"{variant}{row.result.label}"

    if d.chosen is None:
        closest = d.closest
        if closest is None:
            return f"no deployable candidate was measured; nothing meets --max-drop {d.max_drop:g} dB"
        return (f"no candidate within --max-drop {d.max_drop:g} dB {result.dataset}: the closest is "
                f"{name(closest)} at {-(closest.drop_db or 0.0):+.3f} dB ({closest.speedup or 0.0:.1f}x eager)")
    return (f"best: {name(d.chosen)} — {d.chosen.speedup:.1f}x eager, {-(d.chosen.drop_db or 0.0):+.3f} dB "
            f"{result.dataset} — {chosen_path}")


def _load_line(result: "OptimizeResult") -> str:
    load = result.config.get("load_average") or {}
    if not load.get("start"):
        return "- machine load: unknown"
    fmt = " / ".join
    return (f"- machine load average (1/5/15 min): {fmt(map(str, load['start']))} at the start, "
            f"{fmt(map(str, load.get('end') or []))} at the end, on {result.machine.cpus} CPUs: absolute times "
            "are inflated on a shared machine; compare rows within this table (they were timed interleaved)")


def markdown(result: "OptimizeResult", primary: str, plot_name: str | None, line: str) -> str:
    from edgesr.bench.harness import BenchReport
    from edgesr.bench.report import env_header

    d = result.decision
    sizes = result.target.size_labels
    shell = BenchReport([], result.env, {}, result.seconds)
    machine_lines = env_header(shell).splitlines()[:2]  # CPU/GPU and versions, as every benchmark states them
    lines = [f"# edgesr optimize: {primary}, target {result.target.name}", "", *machine_lines,
             f"- protocol: every candidate built and scored first, then timed in one interleaved run per size "
             f"({result.config['warmup_iters']} warm-up calls each, {result.config['min_iters']} rounds, each "
             f"candidate once per round, order rotated); {result.threads} thread(s); search {result.seconds:.0f} s",
             f"- target: {result.target.description}; threads {result.threads}; decided at {d.size}",
             _load_line(result),
             f"- budget: Y-PSNR drop <= {d.max_drop:g} dB on {result.dataset} ({result.config['images']} images) "
             f"against eager PyTorch FP32 ({d.reference_psnr:.4f} dB), each candidate scored through its own "
             "runtime", "", f"**{line}**", ""]
    lines += [f"- note: {n}" for n in d.notes]
    if plot_name:
        lines += [f"![latency vs PSNR]({plot_name})", ""]
    head = ["#", "candidate", "precision", "artifact"]
    for s in sizes:
        head += [f"{s} median ms", f"{s} p90 ms"]
    head += [f"{d.size} alone ms", "vs eager", f"{result.dataset} PSNR", "drop dB", "SSIM", "peak MB", "budget", "Pareto"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table_rows(result):
        mark = " **(chosen)**" if row["chosen"] else ("" if row["deployable"] else " (reference)")
        ran_as = _SAME_PRECISION.get(str(row["ran_as"]).lower(), row["ran_as"])
        shown = row["precision"] + (f" (ran {row['ran_as']})" if row["ran_as"] and ran_as != row["precision"] else "")
        cells = [str(row["rank"]), f"{row['variant']} {row['runtime']}{mark}", shown, row["artifact"] or "-"]
        for s in sizes:
            cells += [_fmt(row[f"median_ms_{s}"], ".1f"), _fmt(row[f"p90_ms_{s}"], ".1f")]
        cells += [_fmt(row["alone_ms"], ".1f"), _fmt(row["speedup_vs_eager"], ".2f") + "x", _fmt(row["psnr"], ".4f"),
                  _fmt(row["drop_db"], "+.4f"), _fmt(row["ssim"], ".5f"), _fmt(row["peak_mb"], ".0f"),
                  "yes" if row["within_budget"] else "no", "yes" if row["pareto"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in result.results if not r.ok]
    if failed:
        lines += ["", "Failed candidates:", ""] + [f"- {r.key}: {r.error}" for r in failed]
    if result.skipped:
        lines += ["", "Skipped candidates:", "", "| candidate | reason |", "|---|---|"]
        lines += [f"| {s.variant} {s.runtime} {s.precision} | {s.reason} |" for s in result.skipped]
    lines += ["", f"Search time {result.seconds / 60:.1f} min. `alone ms`: one warm call right after the candidate "
              "was built (not interleaved; a cross-check of the timing run). Peak memory: RSS of a process that loads the "
              "artifact and runs one input of the deciding size (torch.compile rows: not measured).", ""]
    return "\n".join(lines)


def csv_text(result: "OptimizeResult") -> str:
    from edgesr.bench.report import rows_csv

    return rows_csv(table_rows(result))


def json_data(result: "OptimizeResult", line: str, chosen_path: Path | None) -> dict[str, Any]:
    from dataclasses import asdict

    return {"summary": line, "decision": result.decision.to_dict(),
            "chosen_artifact": str(chosen_path) if chosen_path else None, "config": result.config,
            "machine": result.machine.to_dict(), "env": result.env, "seconds": result.seconds,
            "rows": table_rows(result), "results": [asdict(r) for r in result.results],
            "skipped": [asdict(s) | {"key": s.key} for s in result.skipped]}


def plot(result: "OptimizeResult", path: Path, force: bool) -> Path | None:
    from edgesr.bench.plots import latency_quality_plot
    from edgesr.errors import MissingDependencyError

    d = result.decision
    points = [(row.result.median_ms(d.size) or 0.0, row.result.psnr or 0.0,
               f"{row.result.runtime} {row.result.precision}" +
               ("" if row.result.variant == d.baseline.variant else f" ({row.result.variant})"))
              for row in d.rows]
    if not points:
        return None
    chosen = d.rows.index(d.chosen) if d.chosen is not None else None
    try:
        return latency_quality_plot(points, path, xlabel=f"median latency (ms, log), input {d.size}, "
                                    f"{result.threads} thread(s)", ylabel=f"Y-PSNR (dB, {result.dataset})",
                                    highlight=chosen, floor=d.reference_psnr - d.max_drop,
                                    floor_label=f"budget: -{d.max_drop:g} dB", force=force,
                                    title=f"edgesr optimize, target {result.target.name}")
    except MissingDependencyError:
        return None


def decision_block(result: "OptimizeResult", row: "Row", report_name: str) -> dict[str, Any]:
    """The sidecar block recording why this artifact was chosen and the measurements that show it."""
    d = result.decision
    r = row.result
    options = {k: v for k, v in r.runner.items() if k != "threads"}
    runner_up = next((x for x in d.rows if x is not row and x.within_budget and x.result.fmt is not None), None)
    return {
        "decision": f"fastest deployable candidate within {d.max_drop:g} dB {result.dataset} drop on target "
                    f"{result.target.name} at {d.size}",
        "chosen": r.key,
        "runtime": {"backend": r.backend, "options": options, "threads": result.threads},
        "target": result.target.name,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "evidence": {
            "dataset": result.dataset, "images": result.config["images"], "psnr": r.psnr, "ssim": r.ssim,
            "reference": d.baseline.key, "reference_psnr": d.reference_psnr, "drop_db": row.drop_db,
            "max_drop_db": d.max_drop, "size": d.size, "median_ms": r.median_ms(d.size), "p90_ms": r.p90_ms(d.size),
            "eager_median_ms": d.baseline.median_ms(d.size), "speedup_vs_eager": row.speedup,
            "peak_rss_mb": _peak_mb(r.memory), "iterations": result.config["min_iters"],
            "candidates_measured": len(d.rows), "runner_up": runner_up.result.key if runner_up else None,
            "cpu": result.machine.cpu, "report": report_name,
        },
    }


def write_chosen(result: "OptimizeResult", out_dir: Path, report_name: str, force: bool) -> Path | None:
    """Copy the chosen artifact's files into `out_dir` with its sidecar plus the decision block."""
    from edgesr.artifacts.sidecar import Sidecar

    row = result.decision.chosen
    if row is None or not row.result.artifact:
        return None
    src = Path(row.result.artifact)
    sidecar = Sidecar.for_artifact(src, required=True)
    assert sidecar is not None
    payloads = {Path(out_dir) / f.file: (src.parent / f.file).read_bytes() for f in sidecar.files}
    roles = {f.file: f.role for f in sidecar.files}
    sidecar.blocks[SIDECAR_BLOCK] = decision_block(result, row, report_name)
    sidecar.write(payloads, force=force, roles=roles)
    return Path(out_dir) / src.name


def write_outputs(result: "OptimizeResult", out_dir: Path, primary: str, force: bool = True) -> list[Path]:
    """Every output of a search; fills `result.files` and `result.chosen_path`."""
    out_dir = Path(out_dir)
    stem = report_stem(result, primary)
    png = plot(result, out_dir / f"{stem}.png", force)
    chosen = write_chosen(result, out_dir, f"{stem}.md", force)
    line = summary_line(result, chosen)
    files = [write_text_atomic(out_dir / f"{stem}.md", markdown(result, primary, png.name if png else None, line),
                               force=force),
             write_text_atomic(out_dir / f"{stem}.csv", csv_text(result), force=force),
             write_text_atomic(out_dir / f"{stem}.json",
                               json.dumps(json_data(result, line, chosen), indent=1, default=str) + "\n", force=force)]
    result.files = files + ([png] if png else []) + ([chosen] if chosen else [])
    result.chosen_path = chosen
    result.config["summary"] = line
    return result.files
