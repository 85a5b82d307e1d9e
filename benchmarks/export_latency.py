"""Exported, fused ONNX in ONNX Runtime vs PyTorch eager, and what each fold pass contributes.

    python benchmarks/export_latency.py [--models rlfn_x4 rfdn_x4] [--size 256] [--threads 2] [--runs 20]

All measurements of one model are taken in this one run on this machine (median of >= `--runs`
calls after a warm-up, `--threads` threads). Passes are applied cumulatively in pipeline order;
a pass that changes nothing on a model is listed with its node count so the table shows why.
Writes benchmarks/results/export_latency_<env>.md.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["rlfn_x4", "rfdn_x4"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    args = ap.parse_args()
    os.environ.setdefault("EDGESR_OFFLINE", "1")

    import onnx
    import torch

    from edgesr.bench.env import collect_env, env_slug
    from edgesr.bench.harness import latency_input
    from edgesr.bench.latency import measure_runner
    from edgesr.export import ExportOptions, export_onnx
    from edgesr.models import create_model
    from edgesr.runtimes import create_runner
    from edgesr.transforms import list_passes
    from edgesr.utils.atomic import write_text_atomic

    torch.set_num_threads(args.threads)
    x = latency_input(args.size, args.size)
    timing = dict(warmup_s=1.0, min_iters=args.runs, min_seconds=args.min_seconds, max_seconds=120.0)
    lines = []
    env = collect_env(threads=args.threads, gpu=False)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgesr-export-bench-") as tmp:
        for name in args.models:
            model = create_model(name).eval()
            rows: list[tuple[str, str, int | str, float]] = []

            def time_runner(target, backend, **opts) -> float:
                with create_runner(target, backend, threads=args.threads, **opts) as runner:
                    return measure_runner(runner, x, **timing).median_ms

            eager = time_runner(model, "torch")
            rows.append(("PyTorch eager", "-", "-", eager))
            passes = list_passes()
            steps = [("ONNX Runtime, no folding", False, None)]
            steps += [(f"ONNX Runtime, + {p}", True, passes[: i + 1]) for i, p in enumerate(passes)]
            for label, reparam, chosen in steps:
                path = Path(tmp) / f"{name}_{len(rows)}.onnx"
                res = export_onnx(model, path, ExportOptions(reparam=reparam, reparam_passes=chosen, force=True,
                                                             parity_sizes=((64, 64),), threads=args.threads))
                nodes = len(onnx.load(str(path)).graph.node)
                changed = "-"
                if chosen:
                    changed = ", ".join(res.sidecar.export.reparam.passes) or "none"
                rows.append((label, changed, nodes, time_runner(path, "onnxruntime")))
                print(f"{name}: {label}: {rows[-1][3]:.1f} ms ({nodes} nodes)", flush=True)
            lines.append(f"### {name} ({args.size}x{args.size}, {args.threads} threads)\n")
            lines.append("| runtime / passes | passes that changed the model | ONNX nodes | median ms | vs eager |")
            lines.append("|---|---|---|---|---|")
            for label, changed, nodes, ms in rows:
                lines.append(f"| {label} | {changed} | {nodes} | {ms:.1f} | {eager / ms:.2f}x |")
            lines.append("")
    cpu = env["cpu"]
    load = os.getloadavg()
    text = (f"# Exported ONNX vs PyTorch eager, and the fold passes\n\n- CPU: {cpu.get('model')} "
            f"({cpu.get('logical_cpus')} logical), load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}\n"
            f"- torch {env['versions'].get('torch')}, onnxruntime {env['versions'].get('onnxruntime')}; "
            f"median of >= {args.runs} runs after warm-up; total {time.perf_counter() - t_start:.0f} s\n"
            f"- Reproduce: `python benchmarks/export_latency.py`\n\n" + "\n".join(lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"export_latency_{env_slug(env, threads=args.threads)}.md"
    write_text_atomic(out, text, force=True)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
