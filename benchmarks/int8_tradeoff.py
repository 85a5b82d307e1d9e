"""INT8 quality vs speed of RLFN x4 as more layers stay in float: ONNX Runtime QDQ and OpenVINO/NNCF.

Rows (all in one run; latency interleaved, each model once per round, so machine load hits all alike):

* ``ort fp32`` and ``ov fp32`` (f32 inference precision hint): the references of their runtime;
* ``ort auto-drop``: `quantize_onnx(exclude="auto", max_drop_db=...)`, what ``edgesr export --int8
  --int8-max-drop DB`` does: nodes kept in float by measured sensitivity until the Y-PSNR drop on the
  validation images is within the budget;
* ``ort float N`` for N in ``--float-nodes``: the N most sensitive nodes of that search's ranking (PSNR vs FP32
  with only that node quantized, selection crops) kept in float, the rest INT8: the trade-off curve;
* ``ort boundary``: only the first conv and the conv before the pixel shuffle kept in float;
* ``ov int8``: NNCF ``quantize`` (every layer INT8) and ``ov int8 ac``: NNCF ``quantize_with_accuracy_control``
  with the same Y-PSNR budget (what ``edgesr export --format openvino --int8 --int8-max-drop DB`` does).

Set5 x4: Y channel, shave 4, through each runtime, as ``edgesr eval``. Speed-up: FP32 median of the same
runtime / the row's median, 256x256, ``--threads`` threads.

    python benchmarks/int8_tradeoff.py                     # ~30-40 min on the shared 2-core machine

Writes benchmarks/results/int8_tradeoff_<model>_<env>.{md,csv,png}; artifacts in out/int8_tradeoff/.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def interleaved_ms(runs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, tuple[float, float]]:
    """(median ms, p90 ms) per callable, after one warm-up call each, one call per callable per round."""
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {n: [] for n in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1000)
    return {n: (float(np.median(v)), float(np.percentile(v, 90))) for n, v in times.items()}


def boundary_convs(onnx_path: Path) -> list[str]:
    """The first Conv and the Conv that feeds the pixel shuffle (DepthToSpace) of the FP32 graph."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    producer = {o: n for n in graph.node for o in n.output}
    out = [convs[0].name]
    for node in graph.node:
        if node.op_type == "DepthToSpace":
            src = producer.get(node.input[0])
            while src is not None and src.op_type != "Conv":
                src = producer.get(src.input[0]) if src.input else None
            if src is not None and src.name not in out:
                out.append(src.name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="rlfn_x4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--max-drop", type=float, default=0.10)
    ap.add_argument("--method", default="mse")
    ap.add_argument("--float-nodes", type=int, nargs="+", default=[0, 2, 5, 10, 15, 20, 30])
    ap.add_argument("--calib-count", type=int, default=32)
    ap.add_argument("--skip-openvino", action="store_true")
    ap.add_argument("--work", type=Path, default=Path("out/int8_tradeoff"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from int8_quality import fp32_setup  # benchmarks/ is the script's folder

    from edgesr.bench.env import collect_env, env_slug
    from edgesr.bench.plots import latency_quality_plot
    from edgesr.evaluate import evaluate
    from edgesr.export import ExportOptions
    from edgesr.export.formats import export_artifact
    from edgesr.export.openvino import OpenVINOConfig
    from edgesr.export.quantize import quantize_onnx
    from edgesr.runtimes import create_runner
    from edgesr.utils.atomic import write_text_atomic

    started = time.perf_counter()
    load_before = os.getloadavg()
    model, fp32, calib, set5 = fp32_setup(args.model, args.work, args.threads)
    say = lambda m: print("   ", m, flush=True)  # noqa: E731

    rows: list[dict[str, Any]] = []

    def add(name: str, runtime: str, path: Path, float_nodes: int | None, **extra: Any) -> None:
        rows.append({"config": name, "runtime": runtime, "float_nodes": float_nodes, "path": path, **extra})

    add("ort fp32", "onnxruntime", fp32, None)
    print("... ort auto-drop", flush=True)
    auto = quantize_onnx(fp32, args.work / f"{args.model}_int8_autodrop.onnx", calib, method=args.method,
                         exclude="auto", max_drop_db=args.max_drop, calib_count=args.calib_count,
                         threads=args.threads, force=True, progress=say)
    add("ort auto-drop", "onnxruntime", auto.path, len(auto.excluded), excluded=" ".join(auto.excluded),
        val_drop_db=auto.drops["holdout_drop_db"] if auto.drops else None)
    ranking = [e.node for e in auto.sensitivity if np.isfinite(e.psnr_db)]
    for n in args.float_nodes:
        print(f"... ort float {n}", flush=True)
        res = quantize_onnx(fp32, args.work / f"{args.model}_int8_float{n}.onnx", calib, method=args.method,
                            exclude=ranking[:n] or None, calib_count=args.calib_count, threads=args.threads,
                            force=True)
        add(f"ort float {n}", "onnxruntime", res.path, len(res.excluded), excluded=" ".join(res.excluded))
    edges = boundary_convs(fp32)
    print("... ort boundary", flush=True)
    res = quantize_onnx(fp32, args.work / f"{args.model}_int8_boundary.onnx", calib, method=args.method,
                        exclude=edges, calib_count=args.calib_count, threads=args.threads, force=True)
    add("ort boundary", "onnxruntime", res.path, len(edges), excluded=" ".join(edges))

    if not args.skip_openvino:
        opts = ExportOptions(force=True, threads=args.threads, parity_sizes=((64, 64),))
        print("... ov fp32", flush=True)
        ov32 = export_artifact(model, args.work, f"{args.model}_ov", "openvino", opts)
        add("ov fp32", "openvino", ov32.path, None)
        for name, control in (("ov int8", False), ("ov int8 ac", True)):
            print(f"... {name}", flush=True)
            res = export_artifact(model, args.work, f"{args.model}_{name.replace(' ', '_')}", "openvino", opts,
                                  config=OpenVINOConfig(int8=True, calib_count=args.calib_count,
                                                        int8_max_drop=args.max_drop),
                                  accuracy_control=control)
            q = res.quantize
            add(name, "openvino", res.path, len(q.reverted_ops) if control else 0,
                excluded=" ".join(q.reverted_ops), val_drop_db=q.drop_db)

    print("... Set5", flush=True)
    runners = {r["config"]: create_runner(r["path"], threads=args.threads).activate() for r in rows}
    for r in rows:
        res = evaluate(runners[r["config"]].as_sr_function(), set5, model.scale, min_size=model.min_input_size)
        r["set5_psnr"], r["set5_ssim"] = res.psnr, res.ssim
        r["precision"] = runners[r["config"]].describe().get("precision", "-")
    print("... latency", flush=True)
    x = np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)
    load_mid = os.getloadavg()
    lat = interleaved_ms({n: (lambda rn=rn: rn.infer(x)) for n, rn in runners.items()}, args.rounds)
    load_after = os.getloadavg()
    base = {"onnxruntime": "ort fp32", "openvino": "ov fp32"}
    for r in rows:
        ref = next(q for q in rows if q["config"] == base[r["runtime"]])
        r["median_ms"], r["p90_ms"] = lat[r["config"]]
        r["speedup_vs_fp32"] = lat[ref["config"]][0] / r["median_ms"]
        r["set5_drop_db"] = ref["set5_psnr"] - r["set5_psnr"]
        r["meets_goal"] = r["set5_drop_db"] <= 0.10 and r["speedup_vs_fp32"] >= 1.5

    env = collect_env(threads=args.threads, gpu=False)
    slug = env_slug(env, threads=args.threads)
    v = env["versions"]

    def f(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    head = ["config", "runtime", "float nodes", "Set5 PSNR / SSIM", "Set5 drop (dB)", "val. drop (dB)",
            f"{args.size}x{args.size} median / p90 ms", "speed-up vs FP32 (same runtime)", "goal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["config"], f"{r['runtime']} ({r['precision']})", f(r["float_nodes"], "d"),
            f"{r['set5_psnr']:.4f} / {r['set5_ssim']:.5f}", f"{r['set5_drop_db']:.3f}", f(r.get("val_drop_db"), ".3f"),
            f"{r['median_ms']:.1f} / {r['p90_ms']:.1f}", f"{r['speedup_vs_fp32']:.2f}x",
            "yes" if r["meets_goal"] and "fp32" not in r["config"] else "-"]) + " |")
    int8 = [r for r in rows if "fp32" not in r["config"]]
    ok = [r for r in int8 if r["meets_goal"]]
    best = max(ok, key=lambda r: r["speedup_vs_fp32"]) if ok else min(int8, key=lambda r: r["set5_drop_db"])
    verdict = (f"Goal (<= 0.10 dB Set5 drop at >= 1.5x the FP32 speed of the same runtime) met by "
               f"{', '.join(r['config'] for r in ok)}; fastest: {best['config']} ({best['set5_drop_db']:.3f} dB, "
               f"{best['speedup_vs_fp32']:.2f}x)." if ok else
               f"Goal (<= 0.10 dB Set5 drop at >= 1.5x) not met; smallest drop: {best['config']} "
               f"({best['set5_drop_db']:.3f} dB at {best['speedup_vs_fp32']:.2f}x).")
    stem = args.out / f"int8_tradeoff_{args.model}_{slug}"
    args.out.mkdir(parents=True, exist_ok=True)
    points = [(r["median_ms"], r["set5_psnr"], f"{r['config']}") for r in rows]
    fp32_psnr = rows[0]["set5_psnr"]
    latency_quality_plot(points, stem.with_suffix(".png"), xlabel=f"median latency (ms), {args.size}x{args.size}, "
                         f"{args.threads} threads", ylabel="Set5 x4 Y-PSNR (dB)", floor=fp32_psnr - 0.10,
                         floor_label="ORT FP32 - 0.10 dB", title=f"{args.model}: INT8 as layers stay in float "
                         f"({slug}, load {load_mid[0]:.1f})", force=True)
    excluded = [f"- {r['config']}: {r['excluded']}" for r in rows if r.get("excluded")]
    md = "\n".join([
        f"# INT8 trade-off: {args.model} ({slug})", "",
        f"ONNX Runtime {v.get('onnxruntime')} and OpenVINO {v.get('openvino')} CPU, {args.threads} threads, "
        f"{env['cpu'].get('model')}. ONNX Runtime QDQ: {args.method} ranges, per-channel int8 weights, calibrated on "
        f"{args.calib_count} crops of 96 px from DIV2K_test_LR_x4; the float-node ranking is the sensitivity search's "
        "(PSNR vs FP32 with only that node quantized). OpenVINO: NNCF post-training quantization on the same "
        f"crops; `ac` = accuracy control with a {args.max_drop:g} dB Y-PSNR budget. `val. drop`: Y-PSNR drop on "
        "held-out DIV2K images used as ground truth (bicubic x4 LR), what `--int8-max-drop` is checked on. "
        "Set5: Y, shave 4, as `edgesr eval`, through each runtime (OpenVINO with the f32 precision hint).",
        f"Machine shared and loaded (`uptime` load average): {load_before[0]:.2f} / {load_before[1]:.2f} / "
        f"{load_before[2]:.2f} at the start, {load_mid[0]:.2f} when timing began, {load_after[0]:.2f} at the end "
        f"({os.cpu_count()} CPUs). Latency: {args.rounds} interleaved rounds; compare ratios within this table only.",
        "", *lines, "", verdict, "", f"Plot: `{stem.with_suffix('.png').name}`.", "", "Nodes kept in float:",
        *(excluded or ["- none"]), "",
        f"Reproduce: `python benchmarks/int8_tradeoff.py` (ran {time.perf_counter() - started:.0f} s).", ""])
    write_text_atomic(stem.with_suffix(".md"), md, force=True)
    buf = io.StringIO()
    keys = ["config", "runtime", "precision", "float_nodes", "set5_psnr", "set5_ssim", "set5_drop_db", "val_drop_db",
            "median_ms", "p90_ms", "speedup_vs_fp32", "meets_goal", "excluded"]
    writer = csv.DictWriter(buf, fieldnames=keys + ["load_avg_start", "load_avg_timing", "load_avg_end"])
    writer.writeheader()
    for r in rows:
        writer.writerow({**{k: r.get(k) for k in keys}, "load_avg_start": f"{load_before[0]:.2f}",
                         "load_avg_timing": f"{load_mid[0]:.2f}", "load_avg_end": f"{load_after[0]:.2f}"})
    write_text_atomic(stem.with_suffix(".csv"), buf.getvalue(), force=True)
    print(md)
    print(f"wrote {stem}.md, .csv and .png")


if __name__ == "__main__":
    main()
