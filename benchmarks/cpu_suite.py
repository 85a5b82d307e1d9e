"""CPU suite: official efficient-SR models through PyTorch (eager, channels_last, torch.compile) and
edgesr's fused ONNX in ONNX Runtime and OpenVINO (f32, bf16), each with its Set5 PSNR through that
runtime, all in one run on this machine.

    python benchmarks/cpu_suite.py                    # full suite (~15 min on 2 cores)
    python benchmarks/cpu_suite.py --models rlfn_ntire_x4 --backends torch onnxruntime --min-seconds 1

Writes benchmarks/results/cpu_suite_<env>.{md,csv,json}: a per-model summary (PSNR, params, FLOPs,
#acts, eager vs ONNX Runtime latency and their ratio) and the full table.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

DEFAULT_MODELS = ["rlfn_x4", "rlfn_s_x4", "rlfn_ntire_x4", "rfdn_x4", "imdn_x4"]
DEFAULT_BACKENDS = ["torch", "torch:channels_last", "torch:compile", "onnxruntime", "openvino", "openvino:bf16"]
RESULTS = Path(__file__).resolve().parent / "results"


def summary_table(report) -> str:
    """One row per model: quality/cost, eager and ORT latency and the ratio."""
    by_model: dict[str, dict[str, object]] = {}
    for r in report.records:
        row = by_model.setdefault(r.label, {"params": r.params, "macs": r.flops_g, "acts": r.acts_m, "psnr": {}})
        row[r.backend] = r.median_ms
        row["psnr"][r.backend] = r.psnr
    backends = [b for b in DEFAULT_BACKENDS if any(b in row for row in by_model.values())]
    head = ["model", "Set5 PSNR (torch)", "params", "FLOPs (G, NTIRE)", "#Acts (M)"] + [f"{b} ms" for b in backends]
    head += ["eager / ORT", "max PSNR diff vs torch (dB)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in by_model.items():
        eager, ort = row.get("torch"), row.get("onnxruntime")
        ratio = f"{eager / ort:.2f}x" if eager and ort else "-"
        psnr_t = row["psnr"].get("torch")
        diffs = [abs(p - psnr_t) for p in row["psnr"].values() if p is not None and psnr_t is not None]
        cells = [name, f"{psnr_t:.4f}" if psnr_t else "-", f"{row['params']:,}", f"{row['macs']:.3f}",
                 f"{row['acts']:.3f}"] + [f"{row[b]:.1f}" if b in row else "-" for b in backends]
        cells += [ratio, f"{max(diffs):.4f}" if diffs else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--backends", nargs="+", default=DEFAULT_BACKENDS)
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--min-iters", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    os.environ.setdefault("EDGESR_OFFLINE", "1")

    from edgesr.bench.env import env_slug
    from edgesr.bench.harness import BenchConfig, run_benchmark
    from edgesr.bench.report import markdown_report, write_report
    from edgesr.bench.suite import parse_size, prepare_model
    from edgesr.data import resolve_dataset
    from edgesr.bench.targets import BackendSpec, targets_for_model
    from edgesr.runtimes import get_backend

    specs = []
    for b in args.backends:
        spec = BackendSpec.parse(b)
        if not get_backend(spec.backend).is_available():
            print(f"skipping {b}: {get_backend(spec.backend).missing_message()}")
            continue
        specs.append(spec)
    work = Path("out/bench")
    targets = []
    for name in args.models:
        model = prepare_model(name)
        targets += targets_for_model(model, specs, work)
    config = BenchConfig(sizes=[parse_size(args.size)], threads=[args.threads], min_seconds=args.min_seconds,
                         min_iters=args.min_iters, psnr_dataset=resolve_dataset("Set5"), protocol="cpu-suite")
    t0 = time.perf_counter()
    report = run_benchmark(targets, config, progress=lambda m: print("...", m, flush=True))
    slug = env_slug(report.env, threads=args.threads)
    stem = args.out / f"cpu_suite_{slug}"
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(report, json_path=stem.with_suffix(".json"), csv_path=stem.with_suffix(".csv"), force=True)
    text = markdown_report(report, title=f"CPU suite ({slug}, {args.size}, {args.threads} threads)")
    title_end = text.index("\n\n", text.index("\n\n") + 2)
    md = (text[:title_end] + "\n\n## Per model\n\n" + summary_table(report) + "\n\n## All measurements\n"
          + text[title_end:] + f"\nReproduce: `python benchmarks/cpu_suite.py` (ran {time.perf_counter() - t0:.0f} s).\n")
    from edgesr.utils.atomic import write_text_atomic

    write_text_atomic(stem.with_suffix(".md"), md, force=True)
    print(md)
    print(f"wrote {stem}.md/.csv/.json")


if __name__ == "__main__":
    main()
