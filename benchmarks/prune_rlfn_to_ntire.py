"""Prune the official RLFN x4 to the size of the NTIRE 2022 RLFN submission with LR-only data, on a CPU.

    EDGESR_OFFLINE=1 python benchmarks/prune_rlfn_to_ntire.py [--budget-minutes 55] [--steps N]
        [--finetune-steps N] [--prune-every D] [--quick] [--output DIR] [--results FILE.md]

Question: how close does edgesr's Group Fisher pruning get to the hand-pruned NTIRE entry
(`rlfn_ntire_x4`: 4 blocks, 46/48/16 channels, 0.317 M params, 19.70 G NTIRE FLOPs at 256x256) when it
starts from RLFN x4 (6 blocks, 52 channels), keeps all 6 blocks and removes channels until the conv MACs
equal RLFN-NTIRE's, using only the 100 DIV2K test LR images (no HR: Fisher on teacher + noise
pseudo-targets, then L1 distillation from the unpruned RLFN x4)?

Schedule within one wall-clock budget (everything included: tracing, pruning, fine-tuning, evaluation,
ONNX export and latency): the original and the reference are evaluated first (their time is measured),
the Fisher step time is calibrated on a copy, `prune_every` is chosen so that the estimated number of
prunes (a data-free simulation of the same selection rule, x1.3) fits `--prune-fraction` of the training
time, and fine-tuning runs until the budget minus the time reserved for the final evaluation is spent.
Reports params / conv MACs / NTIRE FLOPs / #Acts / #Conv, Set5 and Set14 PSNR/SSIM (Y, border 4) and ONNX
Runtime CPU latency (256x256, 2 threads, median of >= 20 interleaved runs) of RLFN x4, the pruned model and
RLFN-NTIRE, and writes benchmarks/results/prune_rlfn_to_ntire_<env>.md.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("EDGESR_OFFLINE", "1")

import torch  # noqa: E402

import edgesr  # noqa: E402
from edgesr.bench.env import env_slug  # noqa: E402
from edgesr.models import create_model  # noqa: E402
from edgesr.paths import shared_dir  # noqa: E402
from edgesr.prune import (  # noqa: E402
    MagnitudeImportance,
    Pruner,
    Target,
    crop_batches,
    fisher_prune,
    fisher_step,
    save_pruned,
)
from edgesr.bench.prune_report import format_table, measure_latencies, measure_model, ratios  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SOURCE, REFERENCE = "rlfn_x4", "rlfn_ntire_x4"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def estimate_prunes(model: torch.nn.Module, target: Target, normalize: str, round_to: int) -> int:
    """Prunes needed to reach `target` when the selection follows the weight norms (no data, seconds)."""
    pruner = Pruner(model, importance=MagnitudeImportance(), normalize=normalize, round_to=round_to)
    goal = target.resolve(pruner.metric(target.kind))
    n = 0
    while pruner.metric(target.kind) > goal:
        if pruner.step() is None:
            break
        n += 1
    return n


def calibrate_step(model: torch.nn.Module, batches, normalize: str, round_to: int, n: int = 3) -> float:
    """Seconds per Fisher step (median of `n`, after one warm-up) on a copy of the model."""
    work = copy.deepcopy(model).train()
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    pruner = Pruner(work, normalize=normalize, round_to=round_to)
    opt = torch.optim.Adam(work.parameters(), lr=1e-9)
    times = []
    with pruner.attached():
        for i in range(n + 1):
            t0 = time.perf_counter()
            fisher_step(pruner, next(batches), teacher, optimizer=opt)
            if i:
                times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


class BudgetedBatches:
    """Endless crops for the pruning phase; once the target is met, crops only until `deadline`
    (then the stream ends and `fisher_prune` stops fine-tuning)."""

    def __init__(self, batches, deadline: float, report_every: int = 100) -> None:
        self.batches = batches
        self.deadline = deadline
        self.finetuning = False
        self.drawn = 0
        self.ft_drawn = 0
        self.ft_started: float | None = None
        self.report_every = report_every

    def __iter__(self):
        while True:
            if self.finetuning:
                if self.ft_started is None:
                    self.ft_started = time.perf_counter()
                if time.perf_counter() >= self.deadline:
                    return
                self.ft_drawn += 1
                if self.ft_drawn % self.report_every == 0:
                    rate = (time.perf_counter() - self.ft_started) / self.ft_drawn
                    say(f"fine-tune: {self.ft_drawn} batches, {rate:.2f} s/step, "
                        f"{max(self.deadline - time.perf_counter(), 0) / 60:.1f} min left")
            self.drawn += 1
            yield next(self.batches)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-minutes", type=float, default=None,
                    help="total wall-clock budget, evaluation included (default 55; --quick: 2)")
    ap.add_argument("--steps", type=int, default=None, help="cap on pruning-phase steps (default: until the target)")
    ap.add_argument("--finetune-steps", type=int, default=None,
                    help="cap on fine-tuning steps (default: until the budget is spent)")
    ap.add_argument("--prune-every", type=int, default=None, help="steps between prunes (default: from the budget)")
    ap.add_argument("--prune-fraction", type=float, default=0.5,
                    help="share of the training time planned for the pruning phase (default 0.5)")
    ap.add_argument("--round-to", type=int, default=4)
    ap.add_argument("--normalize", default="memory", choices=["memory", "flops", "none"])
    ap.add_argument("--crop", type=int, default=None, help="LR crop (default 48; --quick: 24)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 8; --quick: 2)")
    ap.add_argument("--lr", type=float, default=2e-5, help="Adam lr while pruning")
    ap.add_argument("--finetune-lr", type=float, default=1e-4, help="Adam lr of the fine-tuning phase")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for training (default: 2 if the machine is idle, else 1)")
    ap.add_argument("--latency-threads", type=int, default=2)
    ap.add_argument("--latency-runs", type=int, default=None, help="timed ORT runs per model (default 20; --quick: 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny crops/batches, prune every step, "
                    "Set5 (2 images) only, 3 latency runs")
    ap.add_argument("--output", type=Path, default=None,
                    help="keep the pruned model here (config.json + weights.pth; default out/prune_rlfn_to_ntire, "
                         "--quick: not kept)")
    ap.add_argument("--results", type=Path, default=None,
                    help="Markdown result file (default benchmarks/results/prune_rlfn_to_ntire_<env>[_quick].md)")
    args = ap.parse_args(argv)
    quick = args.quick
    budget_min = args.budget_minutes if args.budget_minutes is not None else (2.0 if quick else 55.0)
    crop = args.crop or (24 if quick else 48)
    batch = args.batch or (2 if quick else 8)
    latency_runs = args.latency_runs or (3 if quick else 20)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    threads = args.threads or (2 if load < 1.0 and (os.cpu_count() or 1) >= 2 else 1)
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    t_start = time.perf_counter()
    budget_s = budget_min * 60.0

    data = shared_dir() / "datasets"
    div2k = data / "DIV2K_test_LR_x4"
    eval_sets = [data / "Set5"] if quick else [data / "Set5", data / "Set14"]
    eval_limit = 2 if quick else None
    for p in [div2k, *eval_sets]:
        if not p.is_dir():
            raise SystemExit(f"missing shared data: {p}")
    say(f"edgesr {edgesr.__version__}, torch {torch.__version__}, {threads} torch thread(s) (load {load:.2f}), "
        f"budget {budget_min:g} min{' (quick)' if quick else ''}")

    source = create_model(SOURCE, pretrained=True)
    reference = create_model(REFERENCE, pretrained=True)
    t0 = time.perf_counter()
    m_src = measure_model(source, "RLFN x4 (official)", datasets=eval_sets, limit=eval_limit)
    eval_src_s = time.perf_counter() - t0
    m_ref = measure_model(reference, "RLFN-NTIRE x4 (hand-pruned, official)", datasets=eval_sets, limit=eval_limit)
    say(f"evaluated the original ({eval_src_s:.0f} s) and the reference: "
        + "; ".join(f"{m.label} " + ", ".join(f"{d} {q['psnr']:.3f}" for d, q in m.quality.items())
                    for m in (m_src, m_ref)))
    # equal size = equal conv MACs (the pruner's "flops"); NTIRE FLOPs add the activation elements
    target = Target("flops", value=float(m_ref.macs))

    batches = crop_batches(div2k, crop_size=crop, batch_size=batch, seed=args.seed)
    est = estimate_prunes(source, target, args.normalize, args.round_to)
    step_s = calibrate_step(source, batches, args.normalize, args.round_to, n=2 if quick else 3)
    # reserved for the end: the pruned model's evaluation (<= the original's), 3 ONNX exports + latency
    lat_s = 3 * (10.0 + latency_runs * 0.5) if not quick else 30.0
    reserve = eval_src_s + lat_s + (15.0 if quick else 60.0)
    elapsed = time.perf_counter() - t_start
    train_s = budget_s - elapsed - reserve
    planned_prunes = math.ceil(est * 1.3)
    if args.prune_every is not None:
        prune_every = args.prune_every
    else:
        prune_every = max(1, min(25, int(train_s * args.prune_fraction / max(planned_prunes * step_s, 1e-9))))
        if quick:
            prune_every = 1
    deadline = t_start + budget_s - reserve
    say(f"target: conv MACs <= {target.value / 1e9:.3f} G (RLFN-NTIRE; RLFN x4 has {m_src.macs / 1e9:.3f} G); "
        f"~{est} prunes of {args.round_to} channels estimated (planning {planned_prunes}); Fisher step "
        f"{step_s:.2f} s at {crop}x{crop} x{batch}; training time {train_s / 60:.1f} min -> prune every "
        f"{prune_every} step(s); fine-tune until {max(deadline - time.perf_counter(), 0) / 60:.1f} min from now")
    if train_s <= 0:
        raise SystemExit(f"the budget of {budget_min:g} min is spent before training starts; raise --budget-minutes")

    stream = BudgetedBatches(batches, deadline, report_every=500 if quick else 100)
    goal = float(target.value)
    prune_log: list[str] = []

    def on_prune(event) -> None:
        now = (time.perf_counter() - t_start) / 60
        line = (f"step {event.step}: -{len(event.channels)} ch of {event.name} -> {event.width}, "
                f"MACs {event.metrics['flops'] / 1e9:.3f} G ({now:.1f} min)")
        prune_log.append(line)
        if len(prune_log) % (10 if not quick else 20) == 0 or event.metrics["flops"] <= goal:
            say(line)
        if event.metrics["flops"] <= goal:
            stream.finetuning = True

    model = copy.deepcopy(source)
    t_prune = time.perf_counter()
    result = fisher_prune(model, source, iter(stream), target, normalize=args.normalize, prune_every=prune_every,
                          round_to=args.round_to, lr=args.lr, steps=args.steps,
                          finetune_steps=args.finetune_steps if args.finetune_steps is not None else 10**9,
                          finetune_lr=args.finetune_lr, distill_weight=1.0, progress=sys.stderr.isatty(),
                          on_prune=on_prune)
    train_wall = time.perf_counter() - t_prune
    ft_s = (time.perf_counter() - stream.ft_started) if stream.ft_started else 0.0
    say(result.summary())
    pruned = result.model.eval()
    if not result.target_met:
        say("WARNING: the target was not met (step cap or budget); the table shows what was reached")

    out_dir = args.output or (None if quick else Path("out") / "prune_rlfn_to_ntire")
    if out_dir is not None:
        save_pruned(out_dir, pruned, result.config, force=True)
        say(f"wrote the pruned model to {out_dir} (edgesr.prune.load_pruned)")

    m_pruned = measure_model(pruned, "RLFN x4 pruned by edgesr (Group Fisher)", datasets=eval_sets, limit=eval_limit)
    models = [m_src, m_pruned, m_ref]
    measure_latencies(models, [source, pruned, reference], threads=args.latency_threads, min_runs=latency_runs,
                      progress=say)
    wall = time.perf_counter() - t_start
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0

    table = format_table(models, markdown=True)
    min_runs = min(m.latency.get("iterations", 0) for m in models) if all(m.latency for m in models) else 0
    print(table, flush=True)
    slug = env_slug(threads=args.latency_threads)
    results_path = args.results or RESULTS / f"prune_rlfn_to_ntire_{slug}{'_quick' if quick else ''}.md"
    widths = {n: f"{g['kept']}/{g['width']}" for n, g in result.config.groups.items()}
    stream_w = [widths[k] for k in widths if k == "conv_1" or k.endswith(".c5")]
    mid_w = [widths[k] for k in widths if k.endswith(".c1_r") or k.endswith(".c2_r")]
    esa_w = [widths[k] for k in widths if ".esa." in k]
    gap_lines = []
    for d in m_ref.quality:
        q_p, q_r, q_s = m_pruned.quality[d], m_ref.quality[d], m_src.quality[d]
        gap_lines.append(f"- {d}: pruned {q_p['psnr']:.3f} dB vs RLFN-NTIRE {q_r['psnr']:.3f} dB "
                         f"(**{q_p['psnr'] - q_r['psnr']:+.3f} dB** at equal conv MACs) and RLFN x4 "
                         f"{q_s['psnr']:.3f} dB "
                         f"({q_p['psnr'] - q_s['psnr']:+.3f} dB); SSIM {q_p['ssim']:.4f} / {q_r['ssim']:.4f} / "
                         f"{q_s['ssim']:.4f}.")
    r = ratios(m_src, m_pruned)
    n_prune_steps = result.steps
    lines = [
        f"# Pruning RLFN x4 to the size of RLFN-NTIRE with LR-only data{' (quick smoke run)' if quick else ''}",
        "",
        f"Setup: `benchmarks/prune_rlfn_to_ntire.py{' --quick' if quick else ''} --budget-minutes {budget_min:g}"
        f"{f' --steps {args.steps}' if args.steps is not None else ''}"
        f"{f' --finetune-steps {args.finetune_steps}' if args.finetune_steps is not None else ''}`; edgesr "
        f"{edgesr.__version__}, torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()} "
        f"CPU ({slug}), {threads} torch thread(s) for training (1-min load average {load:.2f} at start, "
        f"{load_end:.2f} at the end).",
        "",
        f"Data: the {len(list(div2k.iterdir()))} DIV2K test LR x4 images only (no HR), random {crop}x{crop} LR crops, "
        f"batch {batch}, flips/rotations. Teacher: the unpruned official RLFN x4.",
        f"Method: `edgesr.prune.fisher_prune` - Group Fisher importance on shared channel-group masks, "
        f"{args.normalize}-normalised, pseudo-targets = teacher output + N(0, 0.01^2) (LR only), Adam lr {args.lr:g}, "
        f"prune {args.round_to} channels of one group every {prune_every} steps until conv MACs <= RLFN-NTIRE's "
        f"{target.value / 1e9:.3f} G, slice, then fine-tune with L1 distillation to RLFN x4 (Adam lr "
        f"{args.finetune_lr:g}, constant) until the budget is spent.",
        f"Run: {n_prune_steps} pruning steps ({len(result.history)} prunes, {result.seconds_per_step:.2f} s/step), "
        f"{result.finetune_steps} fine-tuning steps ({ft_s / max(result.finetune_steps, 1):.2f} s/step), "
        f"target {'met' if result.target_met else 'NOT met'}; pruning + fine-tuning {train_wall / 60:.1f} min, "
        f"total wall time {wall / 60:.1f} min (budget {budget_min:g} min, evaluation and latency included).",
        f"Widths kept (of 52/52/16): long skip + block outputs {', '.join(stream_w)}; c1_r/c2_r {', '.join(mid_w)}; "
        f"ESA {', '.join(esa_w)}.",
        "",
        "Complexity: NTIRE definitions at a 1x3x256x256 LR input (conv MACs = what the pruner targets; NTIRE FLOPs = "
        "MACs + activation elements, the NTIRE report's \"FLOPs\"). Quality: Y-channel PSNR/SSIM, border 4, shipped "
        "MATLAB LR, PyTorch eager. Latency: edgesr's verified ONNX export (fp32, opset 18) in ONNX Runtime "
        f"CPUExecutionProvider, {args.latency_threads} threads, one real 256x256 DIV2K LR crop, median of "
        f"{min_runs}+ runs per model "
        "taken in alternating rounds of 5.",
        "",
        table,
        "",
        f"Pruned / original: params {r['params']:.3f}, conv MACs {r['macs']:.3f}, NTIRE FLOPs {r['ntire_flops']:.3f}, "
        f"#Acts {r['acts']:.3f}" + (f", latency {r['latency']:.3f}." if r.get("latency") else "."),
        "",
        "## How far from RLFN-NTIRE at equal size",
        "",
        *gap_lines,
        "- RLFN-NTIRE was made by hand (4 blocks, 46/48/16 channels) and trained by the RLFN authors on HR data with "
        "their full schedule. Ours keeps 6 blocks and 57 convs, so the same MACs mean thinner layers; it saw only "
        "100 LR images (no HR), distillation targets and a CPU-sized number of steps.",
        "",
        "## What a longer (GPU) run would need",
        "",
        "- HR data: the 800 DIV2K train images (+ Flickr2K), L1 to HR + distillation to RLFN x4 (`--hr`), so the "
        "Fisher scores come from the real loss rather than teacher + noise pseudo-targets.",
        "- More samples per pruning decision (prune_every 10-25 at batch 32-64) and larger crops (64-96 LR).",
        "- ~10^5 fine-tuning steps with a decaying learning rate (RLFN itself trains 10^6 iterations per warm-start "
        "stage) instead of a few thousand constant-lr steps. `fisher_prune` fine-tunes at a constant lr and "
        "`edgesr train` cannot start from a pruned folder yet: a long run needs one of the two to gain a schedule.",
        "- Measure the latency of candidate widths on the target device (`normalize=\"latency\"` with a latency "
        "table) and try `normalize=\"flops\"` / `\"acts\"` targets: this run tried one setting only.",
        "",
        "## Caveats",
        "",
        "- Shared 2-core machine: other jobs ran at the same time, so the step times, the total wall "
        "time and the latencies are noisy (the latencies are comparable within this table only: same threads, "
        "same input, interleaved rounds). The reference figures (`docs/reference.md`) put RLFN x4 at ~330 ms "
        "in ONNX Runtime fp32 with 2 threads on an idle machine.",
        "- One seed, one schedule; PSNR moves by ~1e-4 dB with the thread count.",
    ]
    if quick:
        lines.insert(2, "**Quick smoke run**: tiny crops and budget, 2 Set5 images; the numbers say nothing about "
                        "quality.")
        lines.insert(3, "")
    text = "\n".join(lines) + "\n"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    from edgesr.utils.atomic import write_text_atomic

    write_text_atomic(results_path, text, force=True)
    say(f"wrote {results_path} (total {wall / 60:.1f} min)")
    summary = {"models": [m.to_dict() for m in models], "ratios": r, "steps": result.steps,
               "finetune_steps": result.finetune_steps, "prunes": len(result.history), "target_met": result.target_met,
               "prune_every": prune_every, "wall_s": wall, "results": str(results_path),
               "widths": widths}
    if out_dir is not None:
        (Path(out_dir) / "benchmark.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    main()
