"""Ablation: which pruning rule gives the best RLFN x4 at RLFN-NTIRE's size, at an equal data and step budget?

    EDGESR_OFFLINE=1 python benchmarks/prune_ablation.py [--steps N] [--quick] [--device cpu|cuda]
        [--rows fisher_memory,fisher_flops,l1,uniform,uniform_drop2] [--output DIR] [--results FILE.md]

Every row starts from the official RLFN x4 (6 blocks, 52 channels), reaches conv MACs <= RLFN-NTIRE's (the
hand-pruned NTIRE 2022 entry: 4 blocks, 46/48/16 channels, 19.70 G NTIRE FLOPs at 256x256) and gets exactly
`--steps` optimizer steps on the same training pairs:

* ``fisher_memory`` (edgesr's default): Group Fisher on coupled channels and on residual-block gates,
  normalised by the memory (conv output elements) a removal saves; whole blocks go when that is cheaper.
* ``fisher_flops``: the same, normalised by MACs saved.
* ``l1``: L1-norm magnitude of each channel's producer weights (data-free), same iterative schedule.
* ``uniform``: every prunable group thinned by the same factor (widths multiples of 4, L1-chosen channels)
  in one shot, then trained for the whole budget.
* ``uniform_drop2``: the hand rule: keep the first 4 blocks, then uniform width.
* reference rows (not trained): RLFN x4 and RLFN-NTIRE x4 (official weights).

Training pairs: BSD68 HR (68 images) and the 100 DIV2K test LR x4 images used as HR, LR made by edgesr's
MATLAB bicubic (computed once into the output folder), random crops with the 8 flips/rotations. Iterative
rows prune during the first `--prune-fraction` of the steps (Adam, low lr, L1 to HR + L1 to the teacher's
output) and stop pruning at the target; the rest of the steps (and all of them for the one-shot rows) are
`edgesr train --init PRUNED_DIR`: L1 to HR + output distillation to RLFN x4, cosine lr decay, EMA, with
Set5 PSNR every `--eval-every` steps for the PSNR-vs-step plot.

Table: Set5 / Set14 / BSD68 PSNR (Y, border 4), params / conv MACs / NTIRE FLOPs / #Acts, ONNX Runtime CPU
latency (one timed run per model: a coarse figure), written to benchmarks/results/prune_ablation_<env>.md
with the PNG next to it. ``--device cuda`` multiplies batch and steps (``--gpu-scale``).
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

import edgesr  # noqa: E402
import edgesr.errors  # noqa: E402
from edgesr.bench.env import env_slug  # noqa: E402
from edgesr.bench.prune_report import format_table, measure_latencies, measure_model  # noqa: E402
from edgesr.models import create_model  # noqa: E402
from edgesr.paths import shared_dir  # noqa: E402
from edgesr.prune import MagnitudeImportance, Pruner, Target, fisher_prune, save_pruned  # noqa: E402
from edgesr.prune.depth import drop_blocks  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SOURCE, REFERENCE = "rlfn_x4", "rlfn_ntire_x4"
ROWS = {
    "fisher_memory": ("Fisher + memory (edgesr default, depth + width)", "memory", "fisher", True),
    "fisher_flops": ("Fisher + FLOPs (depth + width)", "flops", "fisher", True),
    "l1": ("L1-norm magnitude (width)", "none", "l1", False),
    "uniform": ("uniform width", None, "uniform", False),
    "uniform_drop2": ("uniform width + drop 2 blocks (hand rule)", None, "uniform", False),
}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------ data
def prepare_pairs(folder: Path, quick: bool) -> tuple[Path, Path]:
    """HR folder (links to BSD68 HR and the DIV2K LR images) and its MATLAB-bicubic x4 LR, made once."""
    from edgesr.data.image_io import modcrop, read_image, write_image
    from edgesr.data.imresize import imresize

    data = shared_dir() / "datasets"
    sources = sorted((data / "BSD68" / "HR").glob("*.png")) + sorted((data / "DIV2K_test_LR_x4").glob("*.png"))
    if quick:
        sources = sources[:3] + sources[-3:]
    hr_dir, lr_dir = folder / "HR", folder / "LR_x4"
    hr_dir.mkdir(parents=True, exist_ok=True)
    lr_dir.mkdir(parents=True, exist_ok=True)
    for src in sources:
        link = hr_dir / src.name
        if not link.exists():
            link.symlink_to(src.resolve())
        lr_path = lr_dir / src.name
        if not lr_path.exists():
            hr = modcrop(read_image(src), 4)
            write_image(lr_path, imresize(hr, output_shape=(hr.shape[0] // 4, hr.shape[1] // 4)))
    return hr_dir, lr_dir


def pair_batches(hr_dir: Path, lr_dir: Path, crop: int, batch: int, seed: int):
    """Endless (LR, HR) float batches in 0..1; the same stream for every row (a pure function of seed)."""
    from edgesr.train.data import TrainPatchDataset

    ds = TrainPatchDataset(hr_dir, 4, crop, lr_dir=lr_dir, seed=seed, cache="ram")
    rng = np.random.default_rng(seed)
    while True:
        items = [ds[int(k)] for k in rng.integers(0, len(ds), size=batch)]
        yield (torch.stack([it["lr"] for it in items]).float().div_(255.0),
               torch.stack([it["hr"] for it in items]).float().div_(255.0))


# ------------------------------------------------------------------------------------------------ rules
def uniform_keep(pruner: Pruner, goal_macs: float, round_to: int = 4) -> float:
    """Thin every prunable group by one factor r (L1-chosen channels, widths multiples of `round_to`),
    the largest r whose conv MACs are <= goal; sets the pruner's keep state and returns r."""
    scores = {g.index: MagnitudeImportance(p=1)(pruner.model, g).numpy() for g in pruner.groups if not g.is_frozen}

    def keep_at(r: float) -> np.ndarray:
        keep = np.ones(pruner.total, dtype=bool)
        for g in pruner.groups:
            if g.is_frozen:
                continue
            free = [c for c in range(g.width) if not g.frozen[c]]
            width = max(round_to, int(round(g.width * r / round_to)) * round_to)
            n_remove = min(max(g.width - width, 0), len(free), g.width - 1)
            if n_remove:
                order = sorted(free, key=lambda c: scores[g.index][c])[:n_remove]
                keep[pruner.offsets[g.index] + np.array(order)] = False
        return keep

    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if pruner.metric("flops", keep_at(mid)) <= goal_macs:
            lo = mid
        else:
            hi = mid
    keep = fill_to_goal(pruner, keep_at(lo), scores, goal_macs, round_to)
    pruner.load_keep_state([k.tolist() for k in np.split(keep, pruner.offsets[1:-1])])
    return lo


def fill_to_goal(pruner: Pruner, keep: np.ndarray, scores: dict, goal_macs: float, round_to: int) -> np.ndarray:
    """Give back `round_to` channels at a time (highest L1 first, widest group first) while conv MACs stay
    <= goal: one width factor with rounded widths lands well below the goal, and an ablation compares rows at
    equal FLOPs, so the uniform rows get the same budget as the iterative ones."""
    keep = keep.copy()
    changed = True
    while changed:
        changed = False
        for g in sorted((g for g in pruner.groups if not g.is_frozen), key=lambda g: -g.width):
            base = pruner.offsets[g.index]
            removed = [c for c in range(g.width) if not keep[base + c]]
            if not removed:
                continue
            back = sorted(removed, key=lambda c: -scores[g.index][c])[:round_to]
            trial = keep.copy()
            trial[base + np.array(back)] = True
            if pruner.metric("flops", trial) <= goal_macs:
                keep, changed = trial, True
    return keep


def finetune(pruned_dir: Path, out: Path, hr_dir: Path, lr_dir: Path, steps: int, args, device: str) -> dict:
    """`edgesr train --init PRUNED_DIR` for `steps` steps; returns its result (val history included)."""
    from edgesr.train import train
    from edgesr.train.config import TrainConfig

    ema = None if steps < 200 else min(0.999, 1.0 - 20.0 / steps)
    cfg = TrainConfig(model="rlfn", scale=4, init=str(pruned_dir), hr_dir=hr_dir, lr_dir=lr_dir, output_dir=out,
                      patch=args.crop, batch=args.batch, steps=steps, lr=args.finetune_lr, schedule="cosine",
                      min_lr=args.finetune_lr * 0.01, ema=ema, teacher=SOURCE, distill=1.0,
                      val_dir=shared_dir() / "datasets" / "Set5", val_every=args.eval_every, seed=args.seed,
                      device=device, progress=False, force=True, cache="ram", tensorboard=False, fold=False,
                      save_every=max(steps, 1), log_every=max(steps // 20, 1))
    return train(cfg)


def run_row(key: str, source: torch.nn.Module, goal: float, pairs: tuple[Path, Path], args, device: str,
            out: Path) -> dict:
    label, normalize, rule, depth = ROWS[key]
    t0 = time.perf_counter()
    model = copy.deepcopy(source).to(device)
    teacher = copy.deepcopy(source).to(device).eval().requires_grad_(False)
    curve: list[tuple[int, float]] = []
    prune_steps = 0
    row_dir = out / key
    if rule == "uniform":
        if key == "uniform_drop2":
            model = drop_blocks(model, ["block_5", "block_6"])
        pruner = Pruner(model, normalize="none")
        r = uniform_keep(pruner, goal)
        # no verify: one-shot L1 choices can make the masked network explode numerically (masking ==
        # slicing is covered by the tests); fine-tuning starts from the sliced weights
        small, config = pruner.export()
        note = f"one shot, width factor {r:.3f}"
        history: list = []
    else:
        importance = MagnitudeImportance(p=1) if rule == "l1" else None
        budget = max(1, int(args.steps * args.prune_fraction))
        est = estimate_prunes(source, goal, normalize, importance)
        prune_every = max(1, budget // max(est, 1))
        per_step = max(1, math.ceil(est * 1.2 / budget))  # several prunes per step when the budget is short
        batches = pair_batches(*pairs, args.crop, args.batch, args.seed)
        result = fisher_prune(model, teacher, batches, Target("flops", value=goal), normalize=normalize,
                              importance=importance, depth=depth, prune_every=prune_every, round_to=4,
                              prunes_per_step=per_step,
                              lr=args.prune_lr, finetune_steps=0, distill_weight=1.0, progress=False,
                              steps=args.steps)
        small, config, prune_steps, history = result.model, result.config, result.steps, result.history
        removed = [e.block for e in history if e.block]
        note = (f"{prune_steps} pruning steps (every {prune_every}: up to {per_step} prunes, ~{est} planned), "
                f"{len(history)} prunes, blocks removed: {', '.join(removed) or 'none'}, target "
                f"{'met' if result.target_met else 'NOT met'}")
    pruned_dir = row_dir / "pruned"
    save_pruned(pruned_dir, small.cpu(), config, force=True)
    from edgesr.bench.prune_report import measure_quality

    set5 = shared_dir() / "datasets" / "Set5"
    curve.append((prune_steps, measure_quality(small.cpu().eval(), [set5])["Set5"]["psnr"]))
    ft_steps = args.steps - prune_steps
    final = small.cpu().eval()
    if ft_steps > 0:
        res = finetune(pruned_dir, row_dir / "finetune", *pairs, ft_steps, args, device)
        curve += [(prune_steps + int(v["step"]), float(v["psnr"])) for v in res.val_history]
        final = res.model.cpu().eval()
    say(f"{key}: {note}; {ft_steps} fine-tuning steps; {(time.perf_counter() - t0) / 60:.1f} min")
    return {"key": key, "label": label, "model": final, "curve": curve, "note": note, "prune_steps": prune_steps,
            "finetune_steps": max(ft_steps, 0), "minutes": (time.perf_counter() - t0) / 60,
            "blocks": int(final.num_blocks)}


def export_for_latency(measurements: list, models: list, folder: Path, progress) -> list[tuple[object, Path]]:
    """Export every model to ONNX with dynamic H/W, verified against PyTorch on real crops of three sizes
    (64x64, 127x93, 339x510); the verified artifacts are the ones timed. A model that fails export or
    parity gets a note instead of a latency."""
    from edgesr.export import ExportOptions, export_onnx

    folder.mkdir(parents=True, exist_ok=True)
    timed = []
    for i, (m, module) in enumerate(zip(measurements, models)):
        path = folder / f"model_{i}.onnx"
        try:
            res = export_onnx(module, path, ExportOptions(threads=2, force=True))
        except edgesr.errors.EdgesrError as exc:
            m.notes.append(f"no latency: {exc}")
            progress(f"{m.label}: no latency ({exc})")
            continue
        parity = res.sidecar.parity
        sizes = ", ".join(f"{e.height}x{e.width}" for e in parity.entries) if parity.entries else "?"
        m.notes.append(f"ONNX (dynamic H/W) vs PyTorch max |diff| {parity.max_abs_diff:.2e} on 0..255 at {sizes}")
        timed.append((m, path))
    return timed


def estimate_prunes(model: torch.nn.Module, goal: float, normalize: str, importance) -> int:
    """Prunes of 4 channels needed to reach `goal` MACs when the selection follows the weight norms."""
    pruner = Pruner(model, importance=importance or MagnitudeImportance(), normalize=normalize, round_to=4)
    n = 0
    while pruner.metric("flops") > goal and pruner.step() is not None:
        n += 1
    return n


def plot(rows: list[dict], refs: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row in rows:
        xs, ys = zip(*row["curve"])
        ax.plot(xs, ys, marker="o", ms=3, label=row["label"])
    for name, psnr in refs.items():
        ax.axhline(psnr, ls="--", lw=0.8, color="grey")
        ax.text(0, psnr, f" {name}", va="bottom", fontsize=7, color="grey")
    ax.set_xlabel("optimizer step (pruning + fine-tuning)")
    ax.set_ylabel("Set5 PSNR (dB, Y)")
    ax.set_title("RLFN x4 -> RLFN-NTIRE size: PSNR vs step at an equal budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per row (default 2400; --quick 6)")
    ap.add_argument("--prune-fraction", type=float, default=0.4, help="share of the steps planned for pruning")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    ap.add_argument("--crop", type=int, default=None, help="LR crop (default 48; --quick 24)")
    ap.add_argument("--batch", type=int, default=None, help="batch (default 8; --quick 2)")
    ap.add_argument("--prune-lr", type=float, default=5e-5, help="Adam lr while pruning")
    ap.add_argument("--finetune-lr", type=float, default=2e-4, help="peak Adam lr of fine-tuning (cosine decay)")
    ap.add_argument("--eval-every", type=int, default=None, help="Set5 PSNR every N fine-tuning steps")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--gpu-scale", type=int, default=8, help="with --device cuda: batch and steps multiplied by this")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default 2 if idle, else 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--latency-runs", type=int, default=None, help="timed ORT runs per model (default 10; --quick 1)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 6 images, tiny crops/steps, 2 eval images")
    ap.add_argument("--output", type=Path, default=None, help="work folder (default out/prune_ablation)")
    ap.add_argument("--results", type=Path, default=None, help="Markdown file (default benchmarks/results/...)")
    args = ap.parse_args(argv)
    quick = args.quick
    args.steps = args.steps if args.steps is not None else (6 if quick else 2400)
    args.crop = args.crop or (24 if quick else 48)
    args.batch = args.batch or (2 if quick else 8)
    if args.device.startswith("cuda"):
        args.batch *= args.gpu_scale
        args.steps *= args.gpu_scale
    args.eval_every = args.eval_every or max(args.steps // 8, 1)
    args.latency_runs = args.latency_runs or (1 if quick else 10)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    load = os.getloadavg()[0]
    threads = args.threads or (2 if load < 1.0 else 1)
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    t_start = time.perf_counter()
    out = args.output or Path("out") / ("prune_ablation_quick" if quick else "prune_ablation")
    data = shared_dir() / "datasets"
    eval_sets = [data / "Set5"] if quick else [data / "Set5", data / "Set14", data / "BSD68"]
    eval_limit = 2 if quick else None
    say(f"edgesr {edgesr.__version__}, torch {torch.__version__}, {threads} thread(s) (load {load:.2f}), "
        f"{args.steps} steps/row, batch {args.batch}, crop {args.crop}, device {args.device}")
    pairs = prepare_pairs(out / "data", quick)
    source = create_model(SOURCE, pretrained=True).eval()
    reference = create_model(REFERENCE, pretrained=True).eval()
    m_src = measure_model(source, "RLFN x4 (official, unpruned)", datasets=eval_sets, limit=eval_limit)
    m_ref = measure_model(reference, "RLFN-NTIRE x4 (hand-pruned, official; reference)", datasets=eval_sets,
                          limit=eval_limit)
    goal = float(m_ref.macs)
    say(f"target conv MACs <= {goal / 1e9:.3f} G; references evaluated")
    done = []
    for key in rows:
        say(f"row {key}: {ROWS[key][0]}")
        done.append(run_row(key, source, goal, pairs, args, args.device, out))
    measurements = [m_src]
    for row in done:
        m = measure_model(row["model"], row["label"], datasets=eval_sets, limit=eval_limit)
        row["measurement"] = m
        measurements.append(m)
    measurements.append(m_ref)
    models = [source] + [row["model"] for row in done] + [reference]
    timed = export_for_latency(measurements, models, out / "onnx", say)
    if timed:  # one run: every exported model timed in the same interleaved rounds, medians compared
        measure_latencies([m for m, _ in timed], [path for _, path in timed], threads=2,
                          min_runs=args.latency_runs, round_size=2, progress=say)
    table = format_table(measurements, markdown=True)
    print(table, flush=True)
    slug = env_slug(threads=2)
    stem = f"prune_ablation_{slug}{'_quick' if quick else ''}"
    results_path = args.results or RESULTS / f"{stem}.md"
    png = results_path.with_suffix(".png")
    plot(done, {"RLFN-NTIRE": m_ref.quality["Set5"]["psnr"], "RLFN x4": m_src.quality["Set5"]["psnr"]}, png)
    wall = (time.perf_counter() - t_start) / 60
    cmd = "EDGESR_OFFLINE=1 python benchmarks/prune_ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# Pruning ablation: RLFN x4 to RLFN-NTIRE's size at an equal budget{' (quick smoke run)' if quick else ''}",
        "",
        f"Command: `{cmd.strip()}`; edgesr {edgesr.__version__}, torch {torch.__version__}, Python "
        f"{platform.python_version()}, {platform.machine()} ({slug}), {threads} torch thread(s), 1-min load "
        f"{load:.2f} at the start; total wall time {wall:.1f} min.",
        "",
        f"Budget per row: {args.steps} optimizer steps of batch {args.batch}, {args.crop}x{args.crop} LR crops from "
        f"the same pairs (BSD68 HR + 100 DIV2K LR x4 images as HR, LR by MATLAB bicubic; flips/rotations); "
        f"iterative rows prune in the first ~{args.prune_fraction:.0%} (Adam lr {args.prune_lr:g}, L1 to HR + L1 "
        f"to RLFN x4), then `edgesr train --init PRUNED_DIR` (L1 + distillation, cosine from {args.finetune_lr:g}, "
        "EMA when >= 200 steps) for the rest; one-shot rows train all steps. Target: conv MACs <= RLFN-NTIRE's "
        f"{goal / 1e9:.3f} G at 256x256.",
        "",
        "Quality: Y PSNR/SSIM, border 4, PyTorch eager (Set5/Set14 shipped LR, BSD68 MATLAB LR). Latency: ONNX "
        f"Runtime CPU, 2 threads, 256x256, median of {args.latency_runs} calls per model, all models interleaved in "
        "one run (ratios within the run are the comparable figures).",
        "",
        table,
        "",
        "| row | pruning | fine-tuning steps | blocks | minutes |",
        "| --- | --- | ---: | ---: | ---: |",
        *[f"| {r['label']} | {r['note']} | {r['finetune_steps']} | {r['blocks']} | {r['minutes']:.1f} |" for r in done],
        "",
        f"PSNR vs step (Set5): `{png.name}`.",
        "",
        *[f"- {m.label}: {'; '.join(m.notes)}" for m in measurements if m.notes],
    ]
    text = "\n".join(lines) + "\n"
    from edgesr.utils.atomic import write_text_atomic

    results_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(results_path, text, force=True)
    summary = {"rows": [{k: v for k, v in r.items() if k not in ("model", "measurement")}
                        | {"measurement": r["measurement"].to_dict()} for r in done],
               "source": m_src.to_dict(), "reference": m_ref.to_dict(), "steps": args.steps, "wall_min": wall,
               "results": str(results_path)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    say(f"wrote {results_path} and {png} ({wall:.1f} min)")
    return summary


if __name__ == "__main__":
    main()
