"""`run_optimize`: enumerate, build and measure candidates, then decide and write the evidence.

Phases: (1) build every candidate in turn (export, validation score through its runtime, one warm call per
size, peak memory), saving the state file after each, under a progress bar; (2) time all of them interleaved
in one run (same threads, warm-up, >= `min_iters` rounds) per size; (3) decide (`edgesr.optimize.decide`);
(4) write the Pareto table, plot and the chosen artifact with its sidecar (`edgesr.optimize.report`).
`max_minutes` bounds phases 1-2: a candidate is not started when the time left would not cover the
interleaved timing of those already built (it is listed as skipped, with that reason).
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from edgesr.errors import UserInputError
from edgesr.optimize.candidates import (BASELINE, PRECISIONS, Candidate, Skipped, enumerate_candidates,
                                        parse_backends)
from edgesr.optimize.decide import Decision, decide
from edgesr.optimize.measure import BuildContext, build_candidate, make_runner
from edgesr.optimize.state import CandidateResult, SearchState, open_state
from edgesr.optimize.targets import Machine, TargetProfile, check_target, detect_machine, get_target

log = logging.getLogger(__name__)

LATENCY_MARGIN = 1.25  # the interleaved run's time estimate from one warm call per candidate, with margin
# An INT8 export (calibration, then the per-node sensitivity search) took ~16x the FP32 ONNX export of RLFN x4
# on a 2-core CPU (417 s vs 26 s); it is started only when that much time is left.
INT8_BUILD_FACTOR = 16.0
# torch.compile compiles once per new input shape (the validation images, then the timed size): its build took
# ~9x the eager build of RLFN-NTIRE x4 there (348 s vs 40 s).
COMPILE_BUILD_FACTOR = 9.0
_NO_TIME = "not measured: time budget"


@dataclass
class OptimizeConfig:
    """What `edgesr optimize` asks for (see the command's help)."""

    out_dir: Path
    target: str = "cpu"
    max_drop: float = 0.05
    val: str | Path = "Set5"
    val_limit: int | None = None
    backends: Sequence[str] = ()
    precisions: Sequence[str] = PRECISIONS
    resume: bool = False
    force: bool = False
    max_minutes: float | None = None
    min_iters: int = 10
    warmup_iters: int = 1  # per candidate before the rounds (each was already run warm while it was built)
    memory: bool = True
    progress: bool = True
    sizes: Sequence[tuple[int, int]] = ()  # overrides the target's timed sizes (the first decides)

    def validate(self) -> None:
        if not (self.max_drop >= 0):
            raise UserInputError(f"--max-drop must be >= 0 dB, got {self.max_drop}.")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise UserInputError(f"--max-minutes must be > 0, got {self.max_minutes}.")
        if self.min_iters < 10:
            raise UserInputError(f"the interleaved timing needs >= 10 iterations, got {self.min_iters}.")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise UserInputError(f"unknown precision(s) {', '.join(bad) or '(none)'}; use {', '.join(PRECISIONS)}.")


@dataclass
class OptimizeResult:
    decision: Decision
    results: list[CandidateResult]
    skipped: list[Skipped]
    target: TargetProfile
    machine: Machine
    threads: int | None
    dataset: str
    seconds: float
    files: list[Path] = field(default_factory=list)
    chosen_path: Path | None = None
    env: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


def fold(model: nn.Module) -> nn.Module:
    """A folded (deploy-form) copy of `model`: what every candidate starts from."""
    from edgesr.transforms import reparameterize

    folded = copy.deepcopy(model).eval()
    reparameterize(folded)
    for attr in ("edgesr_name", "scale", "min_input_size", "weights_path", "edgesr_stage"):
        if hasattr(model, attr) and not hasattr(folded, attr):
            setattr(folded, attr, getattr(model, attr))
    return folded


def variant_name(model: nn.Module) -> str:
    return f"{getattr(model, 'edgesr_name', type(model).__name__.lower())}_x{getattr(model, 'scale', '?')}"


def _fingerprint(models: dict[str, nn.Module], target: TargetProfile, threads: int | None, dataset: str,
                 n_images: int, config: OptimizeConfig) -> dict[str, Any]:
    import hashlib

    import torch

    def digest(m: nn.Module) -> str:
        h = hashlib.sha256()
        for k, v in m.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().to(torch.float32).cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    return {"variants": {k: digest(m) for k, m in models.items()}, "target": target.name, "threads": threads,
            "sizes": target.size_labels, "dataset": dataset, "images": n_images, "max_drop": config.max_drop}


def _bar(total: int, initial: int, desc: str, enabled: bool, unit: str = "cand") -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True,
                leave=True)


def _latency_reserve_s(results: Sequence[CandidateResult], config: OptimizeConfig) -> float:
    """The interleaved timing run's expected length: per candidate and size its last interleaved median (a resumed
    search), else its one warm call."""
    def call_s(r: CandidateResult) -> float:
        return sum(r.median_ms(size) or ms for size, ms in r.call_ms.items()) / 1000.0

    per_round = sum(call_s(r) for r in results if r.ok)
    return per_round * (config.min_iters + config.warmup_iters) * LATENCY_MARGIN


def run_optimize(model: nn.Module, config: OptimizeConfig, pruned: dict[str, nn.Module] | None = None
                 ) -> OptimizeResult:
    """Search the fastest deployable form of `model` within `config.max_drop` dB on `config.val` (see the
    module docstring). `pruned`: {name: model} variants measured alongside (their drop is against `model`)."""
    from edgesr.data import dataset_name, open_eval_dataset, resolve_dataset
    from edgesr.utils.atomic import ensure_folder

    config.validate()
    started = time.monotonic()
    load_start = _load_average()
    target = get_target(config.target)
    if config.sizes:
        target = replace(target, sizes=tuple((int(h), int(w)) for h, w in config.sizes))
    val_dir = resolve_dataset(config.val)  # a missing dataset fails before any work
    scale = int(getattr(model, "scale", 4))
    pairs = list(open_eval_dataset(val_dir, scale, limit=config.val_limit))
    if not pairs:
        raise UserInputError(f"the validation set {val_dir} has no images.")
    dataset = dataset_name(val_dir)
    machine = detect_machine()
    check_target(target, machine)
    threads = target.thread_count(machine)
    primary = variant_name(model)
    models = {primary: fold(model)}
    for name, pm in (pruned or {}).items():
        models[f"{primary}_{name}"] = fold(pm)
    out_dir = Path(config.out_dir)
    ensure_folder(out_dir)
    state = open_state(out_dir, _fingerprint(models, target, threads, dataset, len(pairs), config),
                       resume=config.resume, force=config.force)
    runtimes = parse_backends(config.backends) if config.backends else None
    cands, skipped = enumerate_candidates(list(models), target, machine, runtimes, config.precisions)
    from edgesr.bench.harness import latency_input

    inputs = {f"{h}x{w}": latency_input(h, w) for h, w in target.sizes}
    min_size = int(getattr(model, "min_input_size", 1) or 1)
    ctx = BuildContext(models=models, scale=scale, min_size=min_size, pairs=pairs, dataset=dataset,
                       sizes=target.sizes, threads=threads, artifacts_dir=out_dir / "artifacts",
                       max_drop=config.max_drop, inputs=inputs, memory=config.memory)
    ensure_folder(ctx.artifacts_dir)
    deadline = started + config.max_minutes * 60.0 if config.max_minutes else None

    # ---- phases 1-2: build and score each, then time them all interleaved ----------------------------------
    todo = [c for c in cands if c.key not in state.results]
    bar = _bar(len(cands), len(cands) - len(todo), "candidates", config.progress)
    live: dict[str, Any] = {}  # key -> active runner, reused by the timing run
    try:
        try:
            _build_all(todo, ctx, config, state, skipped, live, bar, deadline, out_dir)
        finally:
            bar.close()
        wanted = {c.key for c in cands}
        measured = [r for k, r in state.results.items() if k in wanted and r.ok]
        if todo or not state.latency_done or any(not r.latency for r in measured):
            _time_interleaved(measured, cands, ctx, config, live)
            state.latency_done = True
            state.save(out_dir)
    finally:
        for runner in live.values():
            runner.deactivate()

    # ---- phase 3: decide; phase 4: peak memory, the chosen and the Pareto front first, while time allows ---- --------------------------------------------------------------------------
    results = [state.results[c.key] for c in cands if c.key in state.results]
    baseline = f"{primary}:{BASELINE[0]}:{BASELINE[1]}"
    decision = decide(results, baseline, target.size_labels[0], config.max_drop)
    if config.memory:
        _measure_memory(decision, cands, ctx, config, state, deadline, out_dir)
    from edgesr.bench.env import collect_env

    result = OptimizeResult(decision, results, skipped, target, machine, threads, dataset,
                            time.monotonic() - started,
                            env=collect_env(threads=threads, gpu=target.device == "cuda"),
                            config={"target": target.name, "max_drop_db": config.max_drop, "dataset": dataset,
                                    "images": len(pairs), "sizes": target.size_labels, "threads": threads,
                                    "min_iters": config.min_iters, "warmup_iters": config.warmup_iters,
                                    "max_minutes": config.max_minutes, "backends": list(config.backends),
                                    "load_average": {"start": load_start, "end": _load_average()}})
    from edgesr.optimize.report import write_outputs

    write_outputs(result, out_dir, primary, force=True)
    return result


def _load_average() -> list[float] | None:
    """The machine's 1/5/15-minute load averages (a shared machine inflates absolute times; say how much)."""
    import os

    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _measure_memory(decision: Decision, cands: Sequence[Candidate], ctx: BuildContext, config: OptimizeConfig,
                    state: SearchState, deadline: float | None, out_dir: Path) -> None:
    """Peak memory per measured candidate (a child process each): the chosen one, then the Pareto front, then
    the rest, each only while the time bound allows; kept in the state file."""
    from edgesr.optimize.measure import peak_memory

    by_key = {c.key: c for c in cands}
    rows = sorted(decision.rows, key=lambda row: (row is not decision.chosen, not row.on_front))
    todo = [row.result for row in rows if row.result.memory is None
            or str(row.result.memory.get("error", "")).startswith(_NO_TIME)]
    spent: list[float] = []
    bar = _bar(len(todo), 0, "peak memory", config.progress, unit="cand")
    try:
        for r in todo:
            if deadline is not None and deadline - time.monotonic() < (max(spent) if spent else 20.0):
                r.memory = {"error": f"{_NO_TIME} (--max-minutes {config.max_minutes:g})"}
            else:
                t0 = time.monotonic()
                r.memory = peak_memory(by_key[r.key], ctx, Path(r.artifact) if r.artifact else None)
                spent.append(time.monotonic() - t0)
                state.save(out_dir)
            bar.update(1)
    finally:
        bar.close()


def _build_estimate_s(cand: Candidate, state: SearchState) -> float:
    """What building `cand` will take, as far as the search can tell: INT8 from the FP32 ONNX export's time,
    torch.compile from the eager build's; others are short next to the timing run's reserve."""
    def built(runtime: str, fmt: str | None) -> float:
        times = [r.build_s for r in state.results.values()
                 if r.variant == cand.variant and r.ok and r.fmt == fmt and (fmt is not None or r.runtime == runtime)]
        return max(times) if times else 0.0

    if cand.precision == "int8":
        return INT8_BUILD_FACTOR * built("", "onnx")
    if cand.runner.get("compile"):
        return COMPILE_BUILD_FACTOR * built("torch", None)
    return 0.0


def _build_all(todo: Sequence[Candidate], ctx: BuildContext, config: OptimizeConfig, state: SearchState,
               skipped: list[Skipped], live: dict[str, Any], bar: Any, deadline: float | None, out_dir: Path) -> None:
    """Build each candidate in turn, saving the state after each; within `deadline`, a candidate is started
    only while the time left covers the timing run of those built so far."""
    for cand in todo:
        bar.set_postfix_str(f"{cand.variant} {cand.label}", refresh=True)
        if deadline is not None and not cand.is_baseline:
            need = _latency_reserve_s(list(state.results.values()), config) + 10.0 + _build_estimate_s(cand, state)
            if deadline - time.monotonic() < need:
                skipped.append(Skipped(cand.variant, cand.runtime, cand.precision,
                                       f"time budget: --max-minutes {config.max_minutes:g} reached before it was "
                                       "built"))
                bar.update(1)
                continue
        res, runner = build_candidate(cand, ctx, state.artifacts)
        if runner is not None:
            live[cand.key] = runner
        state.results[cand.key] = res
        state.latency_done = False
        state.elapsed_s += res.build_s
        state.save(out_dir)
        if not res.ok:
            bar.write(f"{cand.key}: failed: {res.error}")
        bar.update(1)


def _time_interleaved(results: Sequence[CandidateResult], cands: Sequence[Candidate], ctx: BuildContext,
                      config: OptimizeConfig, live: dict[str, Any]) -> None:
    """Every built candidate timed in one interleaved run per size (`measure_interleaved`); fills `.latency`.
    Runners of this run's builds are reused (`live`), those of a resumed run's are created."""
    from edgesr.bench.latency import measure_interleaved

    by_key = {c.key: c for c in cands}
    for r in results:
        if r.key not in live:
            live[r.key] = make_runner(by_key[r.key], ctx, Path(r.artifact) if r.artifact else None).activate()
    for label, x in ctx.inputs.items():
        bar = _bar(config.min_iters, 0, f"timing {label} (interleaved)", config.progress, unit="round")
        try:
            stats = measure_interleaved({r.key: (lambda run=live[r.key]: run.infer(x)) for r in results},
                                        warmup_iters=config.warmup_iters, min_iters=config.min_iters,
                                        on_round=lambda _n: bar.update(1))
        finally:
            bar.close()
        for r in results:
            r.latency[label] = stats[r.key].to_dict()
