"""Measured latency tables for latency-normalised channel pruning (``Pruner(normalize="latency")``).

    from edgesr.bench.latency_table import measure_latency_table, read_latency_table

    table = measure_latency_table(model, backend="onnxruntime", threads=2, round_to=4, runs=20)
    table.write("rlfn_x4_ort_2t.json")
    pruner = Pruner(model, normalize="latency", **read_latency_table("rlfn_x4_ort_2t.json").pruner_options())

Why measured: what a channel costs in time depends on the backend's kernels (a conv whose width drops from
52 to 48 may be no faster in ONNX Runtime, or faster by much more than its MACs say), so memory or FLOPs are
only a proxy. For every prunable channel group the model is thinned by `round_to` channels in that group
alone (a `Pruner` keep-state, sliced physically by `Pruner.export`; the lowest-L1 channels go, which ones does
not matter for timing), exported to ONNX with dynamic H/W, and timed against the unpruned model in the same
interleaved rounds (`measure_interleaved`), so load from other processes hits both alike. The saving per
channel is ``(base median - thinned median) / removed channels``.

A thinned model that is not faster gets 0 ms ("clipped"): latency normalisation then never prunes that group
(it buys no time). A saving smaller than twice its standard error is "noisy": kept, but listed. A group that
cannot lose `round_to` channels (too narrow) is not measured and gets 0 ("skipped").

File format (`LatencyTable.to_dict`): ``{"format", "backend", "threads", "input", "base_ms", "groups": {name:
ms per channel}, "runs", "env", ...}``; `read_latency_table` also takes the plain ``{group name: ms}`` form.
"""
from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from torch import nn

from edgesr.bench.latency import LatencyStats, measure_interleaved
from edgesr.errors import UserInputError

__all__ = ["BACKENDS", "FORMAT", "GroupLatency", "LatencyTable", "check_backend", "measure_latency_table",
           "read_latency_table", "saving_per_channel", "thinned_models"]

FORMAT = "edgesr.prune.latency_table/1"
BACKENDS = ("onnxruntime", "openvino")  # runners that open the exported .onnx file
NOISE_SIGMAS = 2.0  # a saving below this many standard errors of the difference is "noisy"

Progress = Callable[[str], None]
RunnerFactory = Callable[[nn.Module, str], Any]  # (model, label) -> runner with activate / infer / deactivate


@dataclass
class GroupLatency:
    """One group's measurement: `removed` channels out of `width`, both models' medians from the same rounds,
    the saving per channel before (`raw_ms_per_channel`) and after clipping at 0 (`ms_per_channel`), and the
    standard error of the difference of the medians (`spread_ms`)."""

    width: int
    removed: int
    base_ms: float
    thinned_ms: float
    raw_ms_per_channel: float
    ms_per_channel: float
    spread_ms: float
    clipped: bool
    noisy: bool


@dataclass
class LatencyTable:
    """ms saved per removed channel, per channel group, for one backend / thread count / input size.

    `groups` is what `Pruner(latency_table=...)` takes; `base_ms` the unpruned model's median latency.
    A table read from the plain ``{name: ms}`` form has only `groups`."""

    groups: dict[str, float]
    base_ms: float | None = None
    backend: str | None = None
    threads: int | None = None
    input_size: tuple[int, int] | None = None
    runs: int | None = None
    round_to: int | None = None
    model: str | None = None
    scale: int | None = None
    widths: dict[str, int] = field(default_factory=dict)
    details: dict[str, GroupLatency] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)

    @property
    def clipped(self) -> list[str]:
        return [n for n, d in self.details.items() if d.clipped]

    @property
    def noisy(self) -> list[str]:
        return [n for n, d in self.details.items() if d.noisy]

    def constant_ms(self) -> float:
        """The part of `base_ms` no channel accounts for: ``base_ms - Σ width x ms/channel`` (the Pruner's
        `latency_base_ms`, so that its latency estimate of the unpruned model is the measured median)."""
        if self.base_ms is None or not self.widths:
            return 0.0
        return float(self.base_ms - sum(self.widths.get(n, 0) * ms for n, ms in self.groups.items()))

    def pruner_options(self) -> dict[str, Any]:
        """``latency_table`` and ``latency_base_ms`` for `Pruner` / `fisher_prune`."""
        return {"latency_table": dict(self.groups), "latency_base_ms": self.constant_ms()}

    def summary(self) -> str:
        where = f"{self.backend}, {self.threads} thread(s), {self.input_size[0]}x{self.input_size[1]}" \
            if self.backend and self.input_size else "given by hand"
        text = f"latency table ({where}): {len(self.groups)} group(s)"
        if self.base_ms is not None:
            text += f", unpruned {self.base_ms:.3f} ms"
        notes = [f"{len(v)} {k}" for k, v in (("clipped to 0 (not faster)", self.clipped),
                                               ("noisy (< 2 standard errors)", self.noisy),
                                               ("skipped (too narrow)", list(self.skipped))) if v]
        return text + (f"; {', '.join(notes)}" if notes else "")

    def to_dict(self) -> dict[str, Any]:
        h, w = self.input_size or (None, None)
        return {"format": FORMAT, "model": self.model, "scale": self.scale, "backend": self.backend,
                "threads": self.threads, "input": f"1x3x{h}x{w}" if self.input_size else None,
                "round_to": self.round_to, "runs": self.runs, "base_ms": self.base_ms,
                "constant_ms": self.constant_ms(), "groups": dict(self.groups), "widths": dict(self.widths),
                "clipped": self.clipped, "noisy": self.noisy, "skipped": dict(self.skipped),
                "measurements": {n: asdict(d) for n, d in self.details.items()}, "env": self.env}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "latency table") -> "LatencyTable":
        """The measured form (a ``groups`` object) or the plain ``{group name: ms per channel}`` form."""
        if not isinstance(data, Mapping):
            raise UserInputError(f"{source} must hold a JSON object.")
        measured = isinstance(data.get("groups"), Mapping)
        groups = _ms_values(data["groups"] if measured else data, source)
        if not measured:
            return cls(groups=groups)
        try:
            size = data.get("input")
            input_size = tuple(int(v) for v in str(size).split("x")[-2:]) if size else None
            details = {str(n): GroupLatency(**d) for n, d in (data.get("measurements") or {}).items()}
            return cls(groups=groups, base_ms=_opt_float(data.get("base_ms")), backend=data.get("backend"),
                       threads=data.get("threads"), input_size=input_size,  # type: ignore[arg-type]
                       runs=data.get("runs"), round_to=data.get("round_to"), model=data.get("model"),
                       scale=data.get("scale"), widths={str(k): int(v) for k, v in (data.get("widths") or {}).items()},
                       details=details, skipped=dict(data.get("skipped") or {}), env=dict(data.get("env") or {}))
        except (TypeError, ValueError) as exc:
            raise UserInputError(f"{source} is not a latency table written by edgesr ({exc}).") from None

    def write(self, path: str | Path, *, force: bool = False) -> Path:
        from edgesr.utils.atomic import write_text_atomic
        from edgesr.utils.jsonable import to_jsonable

        text = json.dumps(to_jsonable(self.to_dict()), indent=1, allow_nan=False) + "\n"
        return write_text_atomic(path, text, force=force)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _ms_values(mapping: Mapping[str, Any], source: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, ms in mapping.items():
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms):
            raise UserInputError(f"{source}: group {name!r} needs a finite number of ms per channel, got {ms!r}.")
        out[str(name)] = float(ms)
    return out


def read_latency_table(path: str | Path) -> LatencyTable:
    """A table from a JSON file: `LatencyTable.to_dict`'s form or the plain ``{group name: ms}`` form."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(f"cannot read latency table {path}: {exc}") from None
    return LatencyTable.from_dict(data, source=f"latency table {path}")


def check_backend(backend: str) -> str:
    """The canonical name of a backend that can time an exported ONNX file; UserInputError for an unknown
    or unsuitable one, MissingDependencyError when its package is not installed."""
    from edgesr.errors import MissingDependencyError
    from edgesr.runtimes import get_backend

    info = get_backend(backend)
    if info.name not in BACKENDS:
        raise UserInputError(f"latency tables are measured on {' or '.join(BACKENDS)}, not {info.name}.")
    if not info.is_available():
        raise MissingDependencyError(info.missing_message())
    return info.name


def saving_per_channel(base: LatencyStats, thinned: LatencyStats, width: int, removed: int) -> GroupLatency:
    """ms saved per removed channel from two models' statistics taken in the same rounds, clipped at 0;
    its spread is the standard error of the difference of the medians (1.2533 σ / √n each)."""
    if removed < 1:
        raise ValueError("removed must be >= 1")
    raw = (base.median_ms - thinned.median_ms) / removed
    spread = 1.2533 * math.hypot(base.std_ms / math.sqrt(base.iterations),
                                 thinned.std_ms / math.sqrt(thinned.iterations))
    return GroupLatency(width=width, removed=removed, base_ms=base.median_ms, thinned_ms=thinned.median_ms,
                        raw_ms_per_channel=raw, ms_per_channel=max(raw, 0.0), spread_ms=spread, clipped=raw < 0,
                        noisy=abs(raw * removed) < NOISE_SIGMAS * spread)


@dataclass
class _Thinning:
    group: Any  # ChannelGroup
    channels: list[int]


def _plan(model: nn.Module, round_to: int) -> tuple[Any, list[_Thinning], dict[str, str]]:
    """(pruner, thinnings of every prunable group, skipped groups with the reason)."""
    from edgesr.prune import MagnitudeImportance, Pruner

    pruner = Pruner(model, importance=MagnitudeImportance(p=1.0), normalize="none", round_to=round_to)
    plan: list[_Thinning] = []
    skipped: dict[str, str] = {}
    everyone = {g.index for g in pruner.groups}
    for g in pruner.groups:
        if g.is_frozen:
            continue
        choice = pruner.select(exclude=everyone - {g.index})
        if choice is None:
            skipped[g.name] = f"{g.width} channels ({g.prunable} prunable): too narrow to lose {round_to}"
        else:
            plan.append(_Thinning(g, choice[1]))
    return pruner, plan, skipped


def _thin(pruner: Any, step: _Thinning) -> nn.Module:
    """The model with only `step`'s channels removed, physically sliced."""
    unpruned = [[True] * g.width for g in pruner.groups]
    pruner.load_keep_state(unpruned)
    pruner.prune(step.group.index, step.channels)
    try:
        small, _ = pruner.export()
    finally:
        pruner.load_keep_state(unpruned)
    return small.eval()


def thinned_models(model: nn.Module, round_to: int = 4) -> Iterator[tuple[str, int, nn.Module]]:
    """(group name, removed channels, sliced model) for every channel group that can lose `round_to` channels
    (a narrower first cut when its width is not a multiple of `round_to`), one group at a time."""
    pruner, plan, _ = _plan(model, round_to)
    for step in plan:
        yield step.group.name, len(step.channels), _thin(pruner, step)


TIMING_ONLY_MAX_DIFF = 255.0  # 8-bit levels: any finite output of the right shape


class OnnxRunners:
    """Exports each model to ONNX (dynamic H/W, parity-checked) in `folder` and opens it with `backend`."""

    def __init__(self, backend: str, threads: int, folder: Path, input_size: tuple[int, int]) -> None:
        self.backend, self.threads, self.folder, self.input_size = backend, threads, folder, input_size

    def __call__(self, model: nn.Module, label: str) -> Any:
        from edgesr.export import ExportOptions, export_onnx
        from edgesr.runtimes import create_runner

        h, w = self.input_size
        parity = max(64, int(getattr(model, "min_input_size", 1) or 1))
        path = self.folder / f"{label}.onnx"
        # the thinned models are timed, never used: a cut without recovery can leave large activations whose
        # float32 rounding differs between runtimes by more than an artifact may (0.1 on 0..255), so the
        # check here only proves that the graph runs at dynamic H/W with the right shape and finite values
        export_onnx(model, path, ExportOptions(parity_sizes=((parity, parity),), opt_shape=(h, w),
                                               max_abs_diff=TIMING_ONLY_MAX_DIFF,
                                               max_shape=(max(h, 1024), max(w, 1024)), threads=self.threads,
                                               force=True))
        return create_runner(path, self.backend, threads=self.threads)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def measure_latency_table(model: nn.Module, *, backend: str = "onnxruntime",
                          input_size: Sequence[int] | int = (256, 256), threads: int = 2, round_to: int = 4,
                          runs: int = 20, warmup: int = 2, progress: Progress | None = None,
                          work_dir: str | Path | None = None,
                          make_runner: RunnerFactory | None = None,
                          clock: Callable[[], float] = time.perf_counter) -> LatencyTable:
    """Measure ms saved per removed channel for every prunable channel group of `model` (module docstring).

    Each thinned model is timed with the unpruned one in `runs` interleaved rounds after `warmup` calls each;
    `progress` gets one line per group (with the total and an ETA). `make_runner(model, label)` replaces the
    ONNX export + `backend` runner (tests); `clock` is the timer of `measure_interleaved`.
    """
    name = check_backend(backend)
    h, w = (input_size, input_size) if isinstance(input_size, int) else (int(v) for v in input_size)
    for what, v in (("threads", threads), ("runs", runs), ("round_to", round_to), ("height", h), ("width", w)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserInputError(f"{what} must be a positive integer, got {v!r}.")
    if warmup < 0:
        raise UserInputError(f"warmup must be >= 0, got {warmup}.")
    min_size = int(getattr(model, "min_input_size", 1) or 1)
    if min(h, w) < min_size:
        raise UserInputError(f"input {h}x{w} is below the model's minimum input size {min_size}.")
    from edgesr.bench.env import collect_env
    from edgesr.bench.harness import latency_input

    pruner, plan, skipped = _plan(model, round_to)
    x = latency_input(h, w)
    table = LatencyTable(groups={}, backend=name, threads=threads, input_size=(h, w), runs=runs, round_to=round_to,
                         model=getattr(model, "edgesr_name", None), scale=getattr(model, "scale", None),
                         widths={g.name: g.width for g in pruner.groups if not g.is_frozen}, skipped=skipped,
                         env=collect_env(threads, gpu=False))
    base_samples: list[float] = []
    with tempfile.TemporaryDirectory(prefix="edgesr-latency-table-") as tmp:
        folder = Path(work_dir) if work_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        build = make_runner or OnnxRunners(name, threads, folder, (h, w))
        base = build(model, "base")
        base.activate()
        start = time.perf_counter()
        try:
            for i, step in enumerate(plan):
                runner = build(_thin(pruner, step), f"group_{step.group.index}")
                runner.activate()
                try:
                    stats = measure_interleaved({"base": lambda: base.infer(x), "thinned": lambda: runner.infer(x)},
                                                warmup_iters=warmup, min_iters=runs, clock=clock)
                finally:
                    runner.deactivate()
                g = step.group
                d = saving_per_channel(stats["base"], stats["thinned"], g.width, len(step.channels))
                table.details[g.name] = d
                table.groups[g.name] = d.ms_per_channel
                base_samples.append(d.base_ms)
                if progress is not None:
                    done = i + 1
                    eta = (time.perf_counter() - start) / done * (len(plan) - done)
                    flag = " (clipped: not faster)" if d.clipped else " (noisy)" if d.noisy else ""
                    progress(f"latency table [{done}/{len(plan)}] {g.name}: {g.width} -> {g.width - d.removed} "
                             f"channels, {d.base_ms:.3f} -> {d.thinned_ms:.3f} ms, {d.ms_per_channel:.4f} ms/channel"
                             f"{flag}; ETA {_duration(eta)}")
        finally:
            base.deactivate()
    for g in skipped:
        table.groups[g] = 0.0
    table.groups = {g.name: table.groups[g.name] for g in pruner.groups if g.name in table.groups}
    if base_samples:
        import numpy as np

        table.base_ms = float(np.median(base_samples))
    return table
