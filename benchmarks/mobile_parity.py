"""Mobile artifacts vs PyTorch with the official weights: ncnn (FP32, FP16 weights) and ExecuTorch (XNNPACK).

For each model: export the three artifacts (each export verifies itself at 64x64, 127x93 and 339x510 on real
DIV2K crops: max abs difference on 0..255 per size), then score Set5 x4 through each runtime's runner
(`edgesr.evaluate.evaluate` with `runner.as_sr_function()`) next to PyTorch eager. Too slow for the test
suite (about 1-2 min per model on 2 shared cores), hence a script.

    python benchmarks/mobile_parity.py                         # rlfn_x4 and rfdn_x4
    python benchmarks/mobile_parity.py --models rlfn_x4 --latency

Writes benchmarks/results/mobile_parity.{md,json}. Accepts: FP32 max abs diff <= 1e-2 (0..255), Set5 within
0.02 dB of PyTorch for FP32 and within 0.1 dB for FP16 (exit status 1 otherwise). `--latency` adds an
indicative median latency at 256x256 (2 threads; the machine is shared, compare within one run only).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_SET5 = {"rlfn_x4": 32.2130, "rfdn_x4": 32.1432}  # shared/docs/reference.md, official code


def _latency_ms(runner, size: int = 256, seconds: float = 3.0) -> float:
    import numpy as np

    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    runner.infer(x)  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < seconds:
        runner.infer(x)
        times.append(runner.last_timing.infer_s * 1000)
    return statistics.median(times)


def run_model(variant: str, work: Path, threads: int, latency: bool) -> dict:
    from edgesr.data import open_eval_dataset
    from edgesr.evaluate import evaluate
    from edgesr.export import ExportOptions
    from edgesr.export.executorch import export_executorch
    from edgesr.export.ncnn import export_ncnn
    from edgesr.models import create_model
    from edgesr.paths import shared_dir
    from edgesr.runtimes import create_runner

    model = create_model(variant)
    pairs = open_eval_dataset(shared_dir() / "datasets" / "Set5", model.scale)
    out: dict = {"model": variant, "reference_set5": REFERENCE_SET5.get(variant), "artifacts": {}}
    t0 = time.perf_counter()
    with create_runner(model, threads=threads) as torch_runner:
        out["torch_set5"] = evaluate(torch_runner.as_sr_function(), pairs, model.scale,
                                     min_size=model.min_input_size).psnr
        if latency:
            out["torch_ms_256"] = _latency_ms(torch_runner)
    print(f"{variant}: PyTorch Set5 {out['torch_set5']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)

    jobs = [
        ("ncnn fp32", lambda p: export_ncnn(model, p, ExportOptions(threads=threads, force=True)), ".param"),
        ("ncnn fp16", lambda p: export_ncnn(model, p, ExportOptions(threads=threads, fp16=True, force=True)), ".param"),
        ("executorch xnnpack fp32", lambda p: export_executorch(
            model, p, ExportOptions(threads=threads, max_shape=(512, 512), force=True)), ".pte"),
    ]
    for label, export, suffix in jobs:
        t0 = time.perf_counter()
        path = work / f"{variant}_{label.replace(' ', '_')}{suffix}"
        res = export(path)
        export_s = time.perf_counter() - t0
        side = res.sidecar
        rec = {
            "file": path.name, "bytes": sum(p.stat().st_size for p in res.files if p.suffix != ".json"),
            "export_s": round(export_s, 1),
            "parity": [{"size": f"{e.height}x{e.width}", "image": e.image, "max_abs_diff": e.max_abs_diff,
                        "psnr_db": e.psnr_db, "fp16_max_abs_diff": e.fp16_max_abs_diff,
                        "fp16_psnr_db": e.fp16_psnr_db} for e in side.parity.entries],
            "details": {k: v for k, v in res.details.items() if k not in ("kernels",)},
            "warnings": res.warnings,
        }
        t0 = time.perf_counter()
        with create_runner(path, threads=threads) as runner:
            rec["runner"] = {k: v for k, v in runner.describe().items() if k != "path"}
            rec["set5"] = evaluate(runner.as_sr_function(), pairs, model.scale, min_size=runner.min_size).psnr
            if latency:
                rec["ms_256"] = _latency_ms(runner)
        rec["set5_delta_vs_torch"] = rec["set5"] - out["torch_set5"]
        out["artifacts"][label] = rec
        worst = max(e["max_abs_diff"] for e in rec["parity"])
        print(f"{variant} {label}: export {export_s:.0f} s, parity max|d| {worst:.2e}, Set5 {rec['set5']:.4f} "
              f"(delta {rec['set5_delta_vs_torch']:+.4f} dB, eval {time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def markdown(results: list[dict], env: dict) -> str:
    lines = ["# Mobile artifacts vs PyTorch (official weights)", "",
             f"Machine: {env['machine']}, {env['cpus']} CPUs visible (load average {env['load_average_at_start']} "
             f"at start), threads {env['threads']}; "
             f"torch {env['torch']}, ncnn {env['ncnn']}, pnnx {env['pnnx']}, executorch {env['executorch']}.", "",
             "Max abs diff: artifact vs PyTorch eager on 0..255, on centre crops of DIV2K LR images "
             "(FP16 rows: the FP16-weight artifact vs the FP32 conversion). Set5: x4, Y-channel PSNR, shave 4.", ""]
    head = "| model | runtime | max abs diff 64x64 | 127x93 | 339x510 | Set5 PSNR | delta vs PyTorch (dB) | size |"
    lines += [head, "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | PyTorch eager | - | - | - | {r['torch_set5']:.4f} | "
                     f"(reference {r['reference_set5']}) | - |")
        for label, a in r["artifacts"].items():
            fp16 = "fp16" in label
            diffs = [p["fp16_max_abs_diff"] if fp16 else p["max_abs_diff"] for p in a["parity"]]
            cells = [f"{d:.2e}" for d in diffs] + ["-"] * (3 - len(diffs))
            lines.append(f"| {r['model']} | {label} | {' | '.join(cells)} | {a['set5']:.4f} | "
                         f"{a['set5_delta_vs_torch']:+.4f} | {a['bytes'] / 2**20:.2f} MiB |")
    if any("torch_ms_256" in r for r in results):
        lines += ["", "Indicative median latency, 1x3x256x256, shared machine (compare within this run only):", "",
                  "| model | PyTorch eager | " + " | ".join(results[0]["artifacts"]) + " |",
                  "|---|---|" + "---|" * len(results[0]["artifacts"])]
        for r in results:
            lines.append(f"| {r['model']} | {r['torch_ms_256']:.0f} ms | "
                         + " | ".join(f"{a['ms_256']:.0f} ms" for a in r["artifacts"].values()) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(REFERENCE_SET5))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latency", action="store_true", help="also time each runner at 256x256 (indicative)")
    ap.add_argument("--out", type=Path, default=RESULTS / "mobile_parity")
    args = ap.parse_args()
    os.environ.setdefault("EDGESR_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from importlib.metadata import version

    env = {"machine": platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
           "load_average_at_start": round(os.getloadavg()[0], 2), "torch": torch.__version__,
           "ncnn": version("ncnn"), "pnnx": version("pnnx"), "executorch": version("executorch"),
           "python": platform.python_version()}
    results = []
    with tempfile.TemporaryDirectory(prefix="edgesr-mobile-") as tmp:
        for variant in args.models:
            results.append(run_model(variant, Path(tmp), args.threads, args.latency))
    text = markdown(results, env)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"env": env, "results": results}, indent=2, default=str))
    print(text)
    ok = True
    for r in results:
        for label, a in r["artifacts"].items():
            fp16 = "fp16" in label
            if not fp16 and max(p["max_abs_diff"] for p in a["parity"]) > 1e-2:
                ok = False
            if abs(a["set5_delta_vs_torch"]) > (0.1 if fp16 else 0.02):
                ok = False
    print("PASS" if ok else "FAIL: a figure is outside the acceptance bounds")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
