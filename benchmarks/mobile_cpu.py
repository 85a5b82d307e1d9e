"""Mobile-class CPU comparison of runtimes: latency at 1/2/4 threads, 128x128 and 360p, and Set5 PSNR.

Runtimes (each skipped, with the reason in the results, when its package or exporter is missing):
PyTorch eager; ONNX Runtime FP32 (.onnx); ONNX Runtime INT8 (QDQ .onnx, `quantize_onnx(exclude="auto")`);
ONNX Runtime mobile format (.ort FP32 and the INT8 graph as .ort); ExecuTorch (XNNPACK .pte) and ncnn
(.param/.bin) through edgesr's exporters and runners. Sizes and threads come from the harness's
``mobile-cpu`` profile (`edgesr.bench.presets.get_preset("mobile-cpu", "profile")`); PSNR/SSIM on Set5 x4
(Y, shave 4) through each runtime.

    python benchmarks/mobile_cpu.py                          # RLFN x4, ~15 min on the shared 2-core machine
    python benchmarks/mobile_cpu.py --models rlfn_x4 rfdn_x4 --min-seconds 1

Writes benchmarks/results/mobile_cpu_<env>.{md,csv}; artifacts are kept in out/mobile_cpu/, one folder per
format (every exporter writes its sidecar as <name>.json, so formats of one name must not share a folder).
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
RUNTIMES = ["eager", "onnx-fp32", "onnx-int8", "ort-fp32", "ort-int8", "executorch", "ncnn"]


def _target_class():
    from edgesr.bench.targets import BenchTarget

    @dataclass
    class Target(BenchTarget):
        """A BenchTarget whose precision is stated (an INT8 .onnx runs on the plain onnxruntime spec)."""

        precision_label: str = "fp32"

        @property
        def precision(self) -> str:  # type: ignore[override]
            return self.precision_label

    return Target


def build_targets(name: str, runtimes: list[str], work: Path, threads: int, notes: list[str]):
    """(targets, the model) for one registered model; exports what each runtime needs (reused when present)."""
    import shutil

    from edgesr.bench.targets import BackendSpec
    from edgesr.export import ExportOptions, export_onnx
    from edgesr.models import create_model
    from edgesr.paths import shared_dir
    from edgesr.runtimes import get_backend

    Target = _target_class()
    model = create_model(name)
    scale, min_size = model.scale, model.min_input_size
    work.mkdir(parents=True, exist_ok=True)
    opts = ExportOptions(force=True, parity_sizes=((64, 64),), threads=threads)
    fp32 = work / f"{name}.onnx"
    targets = []

    def add(variant: str, backend: str, artifact, precision: str = "fp32") -> None:
        targets.append(Target(label=f"{name} {variant}", spec=BackendSpec(backend), artifact=artifact, scale=scale,
                              model_name=name, reference_model=model, min_size=min_size,
                              precision_label=precision))

    def step(variant: str, fn) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one runtime failing must not stop the table
            notes.append(f"{name} {variant}: skipped ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]})")
            print(f"!!! {notes[-1]}", flush=True)
            traceback.print_exc()

    if any(r.startswith(("onnx", "ort")) for r in runtimes) and not fp32.exists():
        export_onnx(model, fp32, opts)
    int8 = work / f"{name}_int8.onnx"

    def make_int8() -> None:
        import json

        if not int8.exists():
            from edgesr.export.quantize import quantize_onnx

            quantize_onnx(fp32, int8, shared_dir() / "datasets" / "DIV2K_test_LR_x4", exclude="auto",
                          threads=threads, force=True, progress=lambda m: print("   ", m, flush=True))
        q = json.loads(int8.with_suffix(".json").read_text())["quantization"]
        note = (f"{name} INT8 (quantize_onnx exclude='auto', {q['method']} ranges): PSNR vs FP32 "
                f"{q['psnr_vs_fp32_db']:.2f} dB on held-out DIV2K crops (all nodes INT8: "
                f"{q['all_quantized_psnr_vs_fp32_db']:.2f} dB); float nodes: {', '.join(q['excluded_nodes']) or 'none'}")
        if note not in notes:
            notes.append(note)

    for runtime in runtimes:
        if runtime == "eager":
            add("eager", "torch", model)
        elif runtime == "onnx-fp32":
            add("onnx fp32", "onnxruntime", fp32)
        elif runtime == "onnx-int8":
            step("onnx int8", lambda: (make_int8(), add("onnx int8", "onnxruntime", int8, "int8")))
        elif runtime == "ort-fp32":
            def ort_fp32() -> None:
                from edgesr.export.ort_mobile import export_ort

                path = work / "ort" / f"{name}.ort"  # its own folder: <name>.json would be the ONNX's sidecar
                if not path.exists():
                    export_ort(model, path, opts)
                add(".ort fp32", "onnxruntime", path)
            step(".ort fp32", ort_fp32)
        elif runtime == "ort-int8":
            def ort_int8() -> None:
                from edgesr.export.ort_mobile import convert_onnx_to_ort

                make_int8()
                path = work / "ort_int8" / f"{name}_int8.ort"
                if not path.exists():
                    convert_onnx_to_ort(int8, path, force=True)
                    shutil.copy(int8.with_suffix(".json"), path.with_suffix(".json"))  # I/O, scale, min size
                add(".ort int8", "onnxruntime", path, "int8")
            step(".ort int8", ort_int8)
        elif runtime in ("executorch", "ncnn"):
            def mobile(runtime: str = runtime) -> None:
                info = get_backend(runtime)
                if not info.is_available():
                    raise RuntimeError(info.missing_message())
                if runtime == "executorch":
                    from edgesr.export.executorch import export_executorch as export
                    path = work / "executorch" / f"{name}.pte"
                else:
                    from edgesr.export.ncnn import export_ncnn as export
                    path = work / "ncnn" / f"{name}.param"
                if not path.exists():
                    export(model, path, opts)
                add(runtime, runtime, path)
            step(runtime, mobile)
    return targets, model


def summary(report, sizes, threads) -> str:
    """One row per runtime: median ms per (threads, size), Set5 PSNR."""
    by: dict[str, dict] = {}
    for r in report.records:
        row = by.setdefault(r.label, {"precision": r.precision, "backend": r.backend, "psnr": r.psnr, "ssim": r.ssim})
        row[(r.threads, r.input)] = r.median_ms
    cols = [(t, f"{h}x{w}") for (h, w) in sizes for t in threads]
    head = ["model / runtime", "backend", "precision", "Set5 PSNR / SSIM"] + [f"{s} {t}t ms" for t, s in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in by.items():
        psnr = f"{row['psnr']:.4f} / {row['ssim']:.5f}" if row["psnr"] is not None else "-"
        cells = [label, row["backend"], row["precision"], psnr]
        cells += [f"{row[c]:.1f}" if c in row else "-" for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["rlfn_x4"])
    ap.add_argument("--runtimes", nargs="+", default=RUNTIMES, choices=RUNTIMES)
    ap.add_argument("--min-seconds", type=float, default=0.5)
    ap.add_argument("--min-iters", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=20.0)
    ap.add_argument("--work", type=Path, default=Path("out/mobile_cpu"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    os.environ.setdefault("EDGESR_OFFLINE", "1")

    from edgesr.bench.env import env_slug
    from edgesr.bench.harness import BenchConfig, run_benchmark
    from edgesr.bench.presets import apply_preset, get_preset
    from edgesr.bench.report import env_header, markdown_table, rows
    from edgesr.data import resolve_dataset
    from edgesr.utils.atomic import write_text_atomic

    started = time.perf_counter()
    load_start = os.getloadavg()
    preset = get_preset("mobile-cpu", "profile")
    config = apply_preset(BenchConfig(min_seconds=args.min_seconds, min_iters=args.min_iters,
                                      max_seconds=args.max_seconds, warmup_s=0.3,
                                      psnr_dataset=resolve_dataset("Set5")), preset)
    notes: list[str] = []
    targets = []
    for name in args.models:
        t, _ = build_targets(name, args.runtimes, args.work, threads=2, notes=notes)
        targets += t
    print(f"... timing {len(targets)} targets x {len(config.threads)} thread counts x {len(config.sizes)} sizes",
          flush=True)
    report = run_benchmark(targets, config, progress=lambda m: print("...", m, flush=True))
    load_end = os.getloadavg()
    base = env_slug(report.env, threads=1).rsplit("-", 1)[0]  # cpu-<model>
    slug = f"{base}-{'-'.join(str(t) for t in config.threads)}t"
    stem = args.out / f"mobile_cpu_{slug}"
    args.out.mkdir(parents=True, exist_ok=True)
    md = "\n".join([
        f"# Mobile-class CPU: {', '.join(args.models)} across runtimes ({slug})", "",
        env_header(report),
        f"- profile: {preset.description}",
        f"- machine shared with other jobs: load average {load_start[0]:.2f} / {load_start[1]:.2f} / "
        f"{load_start[2]:.2f} at the start, {load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f} at the end "
        f"({os.cpu_count()} CPUs): absolute times are inflated and 4 threads oversubscribe the 2 cores; "
        "compare rows within this table.",
        "- ONNX Runtime rows: CPU execution provider, sequential, graph optimization 'all'; .ort files made with "
        "optimization style 'fixed', target platform 'arm' (see edgesr/export/ort_mobile.py).", "",
        "## Median latency (ms) and Set5 quality per runtime", "", summary(report, config.sizes, config.threads), "",
        "## Notes", "", *(f"- {n}" for n in notes or ["all runtimes ran"]), "",
        "## All measurements", "", markdown_table(report), "",
        f"Reproduce: `python benchmarks/mobile_cpu.py` (ran {time.perf_counter() - started:.0f} s).", ""])
    write_text_atomic(stem.with_suffix(".md"), md, force=True)
    buf = io.StringIO()
    table = rows(report)
    writer = csv.DictWriter(buf, fieldnames=list(table[0]) + ["load_avg_start", "load_avg_end"])
    writer.writeheader()
    for row in table:
        writer.writerow({**row, "load_avg_start": f"{load_start[0]:.2f}", "load_avg_end": f"{load_end[0]:.2f}"})
    write_text_atomic(stem.with_suffix(".csv"), buf.getvalue(), force=True)
    print(md)
    print(f"wrote {stem}.md and .csv")


if __name__ == "__main__":
    main()
