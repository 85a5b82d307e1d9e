"""INT8 (QDQ, ONNX Runtime static quantization) of RLFN x4: quality vs FP32 and CPU latency vs FP32.

For each configuration (range method, all nodes INT8 or sensitive nodes kept in float by the measured
search of `edgesr.export.quantize.quantize_onnx(exclude="auto")`, target ort-cpu or tensorrt):

* PSNR of the INT8 output vs the FP32 output on held-out DIV2K LR crops (from the quantizer's report);
* Set5 x4 PSNR/SSIM (Y, shave 4) through ONNX Runtime and the drop vs the FP32 ONNX graph;
* ONNX Runtime CPU latency at 256x256, `--threads` threads, interleaved rounds (every model once per
  round, so machine load hits all alike), and the speed-up vs FP32.

    python benchmarks/int8_quality.py                      # ~15-25 min on the shared 2-core machine
    python benchmarks/int8_quality.py --configs naive-minmax auto-percentile --rounds 5

Writes benchmarks/results/int8_quality_<env>.{md,csv} and keeps the artifacts in out/int8_quality/.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = {  # name: quantize_onnx keyword arguments
    "naive-minmax": dict(method="minmax", exclude=None),
    "percentile": dict(method="percentile", exclude=None),
    "mse": dict(method="mse", exclude=None),
    "entropy": dict(method="entropy", exclude=None),
    "auto-percentile": dict(method="percentile", exclude="auto"),
    "auto-mse": dict(method="mse", exclude="auto"),
    "trt-auto-percentile": dict(method="percentile", exclude="auto", target="tensorrt"),
}


def latency(paths: dict[str, Path], size: int, threads: int, rounds: int) -> dict[str, tuple[float, float]]:
    """(median ms, min ms) per model, one call per model per round after a warm-up call."""
    import onnxruntime as ort

    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    sessions = {}
    for name, p in paths.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = threads, 1, 3
        sessions[name] = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
        sessions[name].run(None, {"input": x})
    times: dict[str, list[float]] = {n: [] for n in sessions}
    for _ in range(rounds):
        for name, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, {"input": x})
            times[name].append((time.perf_counter() - t0) * 1000)
    return {n: (float(np.median(v)), float(np.min(v))) for n, v in times.items()}


def fp32_setup(model_name: str, work: Path, threads: int):
    """(model, its FP32 ONNX export in `work` (made once), the calibration folder, Set5 at the model's scale),
    with torch on `threads` threads and weights from ../shared only."""
    os.environ.setdefault("EDGESR_OFFLINE", "1")
    import torch

    from edgesr.data import open_eval_dataset
    from edgesr.export import ExportOptions, export_onnx
    from edgesr.models import create_model
    from edgesr.paths import shared_dir

    torch.set_num_threads(threads)
    work.mkdir(parents=True, exist_ok=True)
    model = create_model(model_name)
    fp32 = work / f"{model_name}.onnx"
    if not fp32.exists():
        export_onnx(model, fp32, ExportOptions(force=True, parity_sizes=((64, 64),), threads=threads))
    calib = shared_dir() / "datasets" / "DIV2K_test_LR_x4"
    return model, fp32, calib, open_eval_dataset(shared_dir() / "datasets" / "Set5", model.scale)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="rlfn_x4")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calib-count", type=int, default=32)
    ap.add_argument("--work", type=Path, default=Path("out/int8_quality"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from edgesr.bench.env import collect_env, env_slug
    from edgesr.evaluate import evaluate
    from edgesr.export import onnxruntime_sr_function
    from edgesr.export.quantize import quantize_onnx
    from edgesr.utils.atomic import write_text_atomic

    started = time.perf_counter()
    load_before = os.getloadavg()
    model, fp32, calib, set5 = fp32_setup(args.model, args.work, args.threads)

    def set5_scores(path: Path) -> tuple[float, float]:
        r = evaluate(onnxruntime_sr_function(path, threads=args.threads), set5, model.scale,
                     min_size=model.min_input_size)
        return r.psnr, r.ssim

    rows = []
    base_psnr, base_ssim = set5_scores(fp32)
    rows.append({"config": "fp32", "target": "-", "method": "-", "excluded": 0, "excluded_nodes": "",
                 "psnr_vs_fp32_db": None, "all_int8_psnr_vs_fp32_db": None, "set5_psnr": base_psnr,
                 "set5_ssim": base_ssim, "set5_drop_db": 0.0, "quantize_s": None, "path": fp32})
    for name in args.configs:
        kw = dict(CONFIGS[name])
        path = args.work / f"{args.model}_int8_{name}.onnx"
        print(f"... {name}", flush=True)
        res = quantize_onnx(fp32, path, calib, calib_count=args.calib_count, threads=args.threads, force=True,
                            progress=lambda m: print("   ", m, flush=True), **kw)
        psnr, ssim = set5_scores(path)
        rows.append({"config": name, "target": res.target, "method": res.method, "excluded": len(res.excluded),
                     "excluded_nodes": " ".join(res.excluded), "psnr_vs_fp32_db": res.psnr_db,
                     "all_int8_psnr_vs_fp32_db": res.full_int8_psnr_db, "set5_psnr": psnr, "set5_ssim": ssim,
                     "set5_drop_db": base_psnr - psnr, "quantize_s": res.seconds, "path": path})
        print(f"    PSNR vs FP32 {res.psnr_db:.2f} dB (held-out), Set5 {psnr:.4f} (drop {base_psnr - psnr:.3f} dB), "
              f"excluded {len(res.excluded)}", flush=True)
    print("... latency", flush=True)
    lat = latency({r["config"]: r["path"] for r in rows}, args.size, args.threads, args.rounds)
    for r in rows:
        r["median_ms"], r["min_ms"] = lat[r["config"]]
        r["speedup_vs_fp32"] = lat["fp32"][0] / r["median_ms"]
    load_after = os.getloadavg()

    env = collect_env(threads=args.threads, gpu=False)
    slug = env_slug(env, threads=args.threads)
    v = env["versions"]

    def f(value, spec):
        return "-" if value is None else format(value, spec)

    head = ["config", "target", "ranges", "float nodes", "PSNR vs FP32, held-out DIV2K crops (dB)",
            "all-INT8 PSNR vs FP32 (dB)", "Set5 PSNR / SSIM", "Set5 drop (dB)",
            f"ORT {args.size}x{args.size} median ms", "speed-up vs FP32"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["config"], r["target"], r["method"], str(r["excluded"]), f(r["psnr_vs_fp32_db"], ".2f"),
            f(r["all_int8_psnr_vs_fp32_db"], ".2f"), f"{r['set5_psnr']:.4f} / {r['set5_ssim']:.5f}",
            f(r["set5_drop_db"], ".3f"), f"{r['median_ms']:.1f}", f"{r['speedup_vs_fp32']:.2f}x"]) + " |")
    excluded = [f"- {r['config']}: {r['excluded_nodes']}" for r in rows if r["excluded_nodes"]]
    md = "\n".join([
        f"# INT8 quality and latency: {args.model} ({slug})", "",
        f"ONNX Runtime {v.get('onnxruntime')} CPU, {args.threads} threads, torch {v.get('torch')}, "
        f"{env['cpu'].get('model')}; QDQ static quantization (onnxruntime.quantization) with edgesr's "
        f"calibration on {args.calib_count} crops of 96 px from DIV2K_test_LR_x4 (held-out and selection "
        "crops from other DIV2K images). Set5: Y channel, shave 4, as `edgesr eval`.",
        f"Machine shared and loaded: load average {load_before[0]:.2f} / {load_before[1]:.2f} / "
        f"{load_before[2]:.2f} at the start, {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} "
        f"at the end ({os.cpu_count()} CPUs). Latency: {args.rounds} interleaved rounds (each model once per "
        "round); compare within this table only.", "",
        *lines, "", "Nodes kept in float:", *(excluded or ["- none"]), "",
        "`all-INT8 PSNR` is the same calibration with every node quantized (held-out crops). The tensorrt "
        "row is the TensorRT Q/DQ graph (symmetric int8, Q/DQ on Conv inputs) run in ONNX Runtime CPU: its "
        "quality emulates the engine, its latency is not TensorRT's.", "",
        f"Reproduce: `python benchmarks/int8_quality.py` (ran {time.perf_counter() - started:.0f} s).", ""])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"int8_quality_{args.model}_{slug}"
    write_text_atomic(stem.with_suffix(".md"), md, force=True)
    buf = io.StringIO()
    keys = [k for k in rows[0] if k != "path"]
    writer = csv.DictWriter(buf, fieldnames=keys + ["load_avg_start", "load_avg_end"])
    writer.writeheader()
    for r in rows:
        writer.writerow({**{k: r[k] for k in keys}, "load_avg_start": f"{load_before[0]:.2f}",
                         "load_avg_end": f"{load_after[0]:.2f}"})
    write_text_atomic(stem.with_suffix(".csv"), buf.getvalue(), force=True)
    print(md)
    print(f"wrote {stem}.md and .csv")


if __name__ == "__main__":
    main()
