"""A measured latency table for a real model, and how well memory / FLOPs normalisation predict it.

    EDGESR_OFFLINE=1 python benchmarks/latency_table.py [--model rlfn_x4] [--backend onnxruntime]
        [--threads 2] [--size 256] [--runs 10] [--round-to 4]

`edgesr prune --latency-table auto` measures such a table before pruning (`edgesr.bench.latency_table`):
every prunable channel group thinned by `--round-to` channels alone, exported to ONNX with dynamic H/W,
timed against the unpruned model in interleaved rounds. This script writes that table
(benchmarks/results/latency_table_<model>_<backend>_<env>.json) and a Markdown report: the groups sorted by
measured ms saved per channel next to what the memory (conv output elements) and FLOPs (MACs) normalisers
charge for one channel of the same group, and the Spearman rank correlation between the measured saving and
each proxy: the closer to 1, the better that normaliser stands in for the backend's real latency.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("EDGESR_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import edgesr  # noqa: E402
from edgesr.bench.env import env_slug  # noqa: E402
from edgesr.bench.latency_table import measure_latency_table  # noqa: E402
from edgesr.models import create_model  # noqa: E402
from edgesr.prune import Pruner  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def proxy_costs(model: torch.nn.Module, size: int) -> dict[str, tuple[float, float]]:
    """{group name: (conv output elements, MACs) saved per removed channel} at `size` x `size` input."""
    pruner = Pruner(model, normalize="none", deploy_size=(size, size))
    base = pruner.complexity()
    costs = {}
    for g in pruner.groups:
        if g.is_frozen:
            continue
        free = [c for c in range(g.width) if not g.frozen[c]]
        keep = pruner.keep.copy()
        keep[pruner.offsets[g.index] + free[0]] = False
        after = pruner.complexity(keep)
        costs[g.name] = (base["acts"] - after["acts"], base["flops"] - after["flops"])
    return costs


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="rlfn_x4", help="pretrained name")
    ap.add_argument("--backend", default="onnxruntime", help="onnxruntime or openvino")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=256, help="square LR input size")
    ap.add_argument("--runs", type=int, default=10, help="interleaved timed rounds per group")
    ap.add_argument("--round-to", type=int, default=4)
    ap.add_argument("--results", type=Path, default=None, help="Markdown file (default benchmarks/results/...)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    model = create_model(args.model, pretrained=True).eval()
    say(f"{args.model}: measuring on {args.backend}, {args.threads} thread(s), {args.size}x{args.size}, "
        f"{args.runs} rounds per group (1-min load {load:.2f})")
    table = measure_latency_table(model, backend=args.backend, input_size=args.size, threads=args.threads,
                                  round_to=args.round_to, runs=args.runs, progress=say)
    costs = proxy_costs(model, args.size)
    slug = env_slug(threads=args.threads)
    stem = f"latency_table_{args.model}_{args.backend}_{slug}"
    md_path = args.results or RESULTS / f"{stem}.md"
    json_path = md_path.with_suffix(".json")
    table.write(json_path, force=True)
    names = [n for n in table.details if n in costs]
    measured = [table.details[n].raw_ms_per_channel for n in names]
    rho_mem = spearman(measured, [costs[n][0] for n in names])
    rho_flops = spearman(measured, [costs[n][1] for n in names])
    wall = (time.perf_counter() - t0) / 60
    cmd = "EDGESR_OFFLINE=1 python benchmarks/latency_table.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = sorted(names, key=lambda n: -table.details[n].raw_ms_per_channel)
    lines = [
        f"# Measured latency table: {args.model} on {args.backend}",
        "",
        f"Command: `{cmd.strip()}`; edgesr {edgesr.__version__}, torch {torch.__version__}, Python "
        f"{platform.python_version()}, {platform.machine()} ({slug}), 1-min load {load:.2f} at the start; "
        f"{wall:.1f} min. Table: `{json_path.name}` (what `edgesr prune --latency-table FILE` reads).",
        "",
        f"{table.summary()}.",
        "",
        f"Spearman rank correlation of the measured ms saved per channel with the cost each normaliser charges "
        f"per channel ({len(names)} groups): **memory (conv output elements) {rho_mem:.2f}**, "
        f"**FLOPs (MACs) {rho_flops:.2f}**.",
        "",
        "| group | width | removed | unpruned ms | thinned ms | ms saved / channel | spread ms | "
        "acts saved / channel | MACs saved / channel (M) | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for n in rows:
        d = table.details[n]
        note = ", ".join(x for x, on in (("clipped", d.clipped), ("noisy", d.noisy)) if on)
        lines.append(f"| `{n}` | {d.width} | {d.removed} | {d.base_ms:.2f} | {d.thinned_ms:.2f} | "
                     f"{d.raw_ms_per_channel:.3f} | {d.spread_ms:.3f} | {costs[n][0]:,.0f} | "
                     f"{costs[n][1] / 1e6:.1f} | {note} |")
    for n, why in table.skipped.items():
        lines.append(f"| `{n}` | | | | | | | | | skipped: {why} |")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text("\n".join(lines) + "\n")
    say(f"wrote {md_path} and {json_path.name}: rho memory {rho_mem:.2f}, FLOPs {rho_flops:.2f} ({wall:.1f} min)")
    return {"rho_memory": rho_mem, "rho_flops": rho_flops, "groups": len(names), "table": str(json_path)}


if __name__ == "__main__":
    main()
