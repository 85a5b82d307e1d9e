"""Build and measure one candidate: export its artifact (through the format registry), score it on the
validation set through its runtime, time one warm call per size, and measure its peak memory.

The pieces are the project's own: `export_artifact` (formats), `create_runner` (runtimes), `evaluate`
(PSNR/SSIM), `measure_runner_memory` (bench, a child process); this module only strings them together for a
candidate and turns a failure into a recorded reason instead of a stopped search.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import nn

from edgesr.optimize.candidates import Candidate
from edgesr.optimize.state import CandidateResult

log = logging.getLogger(__name__)

PARITY_SIZES = ((64, 64),)  # the export's own check; the search's evidence is the validation-set score


@dataclass
class BuildContext:
    """What every candidate of a search shares."""

    models: dict[str, nn.Module]  # variant -> folded model
    scale: int
    min_size: int
    pairs: list[dict]  # validation items {name, lr, hr}
    dataset: str
    sizes: Sequence[tuple[int, int]]
    threads: int | None
    artifacts_dir: Path
    max_drop: float
    inputs: dict[str, np.ndarray]  # size label -> latency input
    memory: bool = True


def format_config(cand: Candidate, ctx: BuildContext) -> Any:
    """The format's own options for this candidate (None for a format without any): its ``int8`` switch when
    INT8 is one of its options, and the search's budget as the INT8 exporter's quality budget when it takes one."""
    from edgesr.export.formats import get_format

    assert cand.fmt is not None
    info = get_format(cand.fmt)
    cls = info.config_class()
    if cls is None:
        return None
    fields = set(info.config_fields())
    values: dict[str, Any] = {}
    if "int8" in fields:
        values["int8"] = cand.int8
    if cand.int8 and "int8_max_drop" in fields:
        values["int8_max_drop"] = ctx.max_drop
    return cls(**values)


def export_candidate(cand: Candidate, ctx: BuildContext, cache: dict[str, str]) -> Path:
    """The candidate's artifact: exported once per `Candidate.artifact_key` and shared by the candidates that
    run it; `cache` maps those keys to paths (kept in the state file). Names follow `edgesr export`'s
    (``rlfn_x4.onnx``, ``rlfn_x4_int8.onnx``, ``rlfn_x4_ov.xml``...), so the formats share one folder."""
    from edgesr.export import ExportOptions
    from edgesr.export.formats import export_artifact

    assert cand.fmt is not None
    known = cache.get(cand.artifact_key)
    if known and Path(known).is_file():
        return Path(known)
    h, w = ctx.sizes[0]
    options = ExportOptions(fp16=cand.fp16, force=True, parity_sizes=PARITY_SIZES, threads=ctx.threads or 2,
                            opt_shape=(h, w), max_shape=(max(1024, max(s[0] for s in ctx.sizes)),
                                                         max(1024, max(s[1] for s in ctx.sizes))))
    config = format_config(cand, ctx)
    if config is not None and hasattr(config, "prepare"):  # the format's own checks, as `edgesr export` runs them
        options = config.prepare(options)
    name = f"{cand.variant}{'_fp16' if cand.fp16 else ''}{getattr(config, 'name_suffix', '')}"
    result = export_artifact(ctx.models[cand.variant], ctx.artifacts_dir, name, cand.fmt, options, config=config)
    path = Path(result.path)
    cache[cand.artifact_key] = str(path)
    return path


def runner_options(cand: Candidate, ctx: BuildContext) -> dict[str, Any]:
    opts = dict(cand.runner)
    if ctx.threads is not None:
        opts["threads"] = ctx.threads
    return opts


def make_runner(cand: Candidate, ctx: BuildContext, artifact: Path | None) -> Any:
    from edgesr.runtimes import create_runner

    target: Any = ctx.models[cand.variant] if artifact is None else artifact
    return create_runner(target, cand.backend, **runner_options(cand, ctx))


def peak_memory(cand: Candidate, ctx: BuildContext, artifact: Path | None) -> dict[str, Any]:
    """Peak RSS of a fresh process that loads the candidate and runs one input of the deciding size
    (`measure_runner_memory`); a failure is returned as ``{"error": why}``."""
    from edgesr.bench.memory import measure_runner_memory

    if cand.runner.get("compile"):
        return {"error": "not measured: torch.compile would compile again in the measuring process"}
    h, w = ctx.sizes[0]
    target: Any = ctx.models[cand.variant] if artifact is None else artifact
    try:
        stats = measure_runner_memory(target, (1, 3, h, w), cand.backend, timeout_s=300.0,
                                      **runner_options(cand, ctx))
        return stats.to_dict()
    except Exception as exc:  # noqa: BLE001 - a best-effort column: say why it is empty
        return {"error": " ".join(str(exc).split())[:200]}


def build_candidate(cand: Candidate, ctx: BuildContext, cache: dict[str, str]) -> tuple[CandidateResult, Any]:
    """Export, score and pre-time `cand` (its peak memory is measured later, `peak_memory`). Returns its result and its runner, still active (the timing run reuses
    it, so a torch.compile is not compiled twice), or None when it failed. A failure is recorded (status
    "failed", the reason) and never raised, except an interrupt, which stops the search."""
    from edgesr.errors import MissingDependencyError
    from edgesr.evaluate import evaluate

    res = CandidateResult(key=cand.key, variant=cand.variant, runtime=cand.runtime, backend=cand.backend,
                          precision=cand.precision, fmt=cand.fmt, runner=dict(cand.runner))
    start = time.perf_counter()
    runner = None
    try:
        artifact = export_candidate(cand, ctx, cache) if cand.deployable else None
        res.artifact = str(artifact) if artifact is not None else None
        runner = make_runner(cand, ctx, artifact).activate()
        scores = evaluate(runner.as_sr_function(), ctx.pairs, ctx.scale, dataset=ctx.dataset, min_size=ctx.min_size)
        res.psnr, res.ssim = float(scores.psnr), float(scores.ssim)
        for label, x in ctx.inputs.items():
            runner.infer(x)  # warm (a compile or first-call set-up lands here)
            t0 = time.perf_counter()
            runner.infer(x)
            res.call_ms[label] = (time.perf_counter() - t0) * 1000.0
        described = runner.describe()
        res.actual_precision = described.get("precision") if isinstance(described.get("precision"), str) else None
    except (KeyboardInterrupt, SystemExit):
        if runner is not None:
            runner.deactivate()
        raise
    except Exception as exc:  # noqa: BLE001 - one candidate failing must not end the search; its reason is kept
        log.info("candidate %s failed", cand.key, exc_info=True)
        if runner is not None:
            runner.deactivate()
            runner = None
        res.status = "failed"
        detail = " ".join(str(exc).split())[:300]
        res.error = f"missing extra: {detail}" if isinstance(exc, MissingDependencyError) else \
            f"{type(exc).__name__}: {detail}"
    res.build_s = time.perf_counter() - start
    return res, runner
