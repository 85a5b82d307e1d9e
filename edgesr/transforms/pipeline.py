"""`reparameterize`: run the fold passes on a model, in place, and report what each one changed."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from torch import nn

from edgesr.analysis.complexity import Complexity, check_input_size
from edgesr.errors import UserInputError, suggest
from edgesr.transforms.registry import FoldContext, FoldPass, get_pass, list_passes

log = logging.getLogger(__name__)

__all__ = ["FoldReport", "PassResult", "reparameterize"]


@dataclass(frozen=True)
class PassResult:
    """One pass: how many rewrites, conv calls it says it removed, and measured totals before/after."""

    name: str
    changes: int
    convs_removed: int
    convs_before: int
    convs_after: int
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    acts_before: int
    acts_after: int
    notes: tuple[str, ...] = ()
    skipped: bool = False

    @property
    def changed(self) -> bool:
        return self.changes > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "notes": list(self.notes), "changed": self.changed}


@dataclass(frozen=True)
class FoldReport:
    """What `reparameterize` did, pass by pass (MACs / #Acts at `input_size`, see `edgesr.analysis.complexity`)."""

    input_size: tuple[int, int]
    passes: tuple[PassResult, ...] = field(default_factory=tuple)

    @property
    def changes(self) -> int:
        """Total rewrites; 0 means the model was already folded."""
        return sum(p.changes for p in self.passes)

    def __getitem__(self, name: str) -> PassResult:
        for p in self.passes:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for export sidecars and logs)."""
        return {"input_size": list(self.input_size), "changes": self.changes,
                "passes": [p.to_dict() for p in self.passes]}

    def _total(self) -> tuple[int, int, int, int, int, int, int, int] | None:
        run = [p for p in self.passes if not p.skipped]
        if not run:
            return None
        a, b = run[0], run[-1]
        return (a.convs_before, b.convs_after, a.params_before, b.params_after, a.macs_before, b.macs_after,
                a.acts_before, b.acts_after)

    def __str__(self) -> str:
        h, w = self.input_size
        rows = [("pass", "changes", "convs", "params", "MACs (G)", "acts (M)")]

        def fmt(name: str, changes: str, v: tuple) -> tuple[str, ...]:
            return (name, changes, f"{v[0]} -> {v[1]}", f"{v[2]:,} -> {v[3]:,}",
                    f"{v[4] / 1e9:.3f} -> {v[5] / 1e9:.3f}", f"{v[6] / 1e6:.3f} -> {v[7] / 1e6:.3f}")

        for p in self.passes:
            if p.skipped:
                rows.append((p.name, "skipped", "", "", "", ""))
                continue
            rows.append(fmt(p.name, str(p.changes), (p.convs_before, p.convs_after, p.params_before,
                                                     p.params_after, p.macs_before, p.macs_after,
                                                     p.acts_before, p.acts_after)))
        total = self._total()
        if total is not None:
            rows.append(fmt("total", str(self.changes), total))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"reparameterize (MACs and #Acts for a 1x3x{h}x{w} input)"]
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(wd) if j == 0 else c.rjust(wd) for j, (c, wd) in enumerate(zip(r, widths))))
            if i == 0 or (total is not None and i == len(rows) - 2):
                lines.append("  ".join("-" * wd for wd in widths))
        notes = [f"  {p.name}: {n}" for p in self.passes for n in p.notes]
        if notes:
            lines += ["notes:", *notes]
        return "\n".join(lines)


def _resolve(passes: Sequence[str | FoldPass] | None, skip: Iterable[str]) -> tuple[list[FoldPass], set[str]]:
    valid = list_passes()
    skip = {skip} if isinstance(skip, str) else set(skip)
    for name in skip:
        if name not in valid:
            raise UserInputError(f"cannot skip unknown fold pass {name!r}.{suggest(name, valid)} "
                                 f"Valid passes: {', '.join(valid)}.")
    if passes is None:
        return [get_pass(name) for name in valid], skip
    if isinstance(passes, (str, FoldPass)):
        passes = [passes]
    resolved = []
    for p in passes:
        if isinstance(p, FoldPass):
            resolved.append(p)
        elif isinstance(p, str):
            resolved.append(get_pass(p))
        else:
            raise UserInputError(f"passes must be pass names or FoldPass instances, got {p!r}. "
                                 f"Valid passes: {', '.join(valid)}.")
    return resolved, skip


def reparameterize(model: nn.Module, passes: Sequence[str | FoldPass] | None = None, skip: Iterable[str] = (),
                   input_size: Sequence[int] | int = (256, 256), in_channels: int = 3) -> FoldReport:
    """Fold `model` in place for deployment and report each pass's effect. Idempotent.

    Args:
        model: the model to fold (edited in place; its class and state_dict keys are kept, see each pass).
        passes: pass names (or configured `FoldPass` instances) to run, in that order; None = every
            registered pass in its default order (`edgesr.transforms.list_passes()`).
        skip: pass names not to run.
        input_size: (H, W) of the input used to measure MACs / #Acts and to decide cost-based folds.
        in_channels: input channels of that input.

    Every pass is exact: outputs stay equal up to float rounding. A second call changes nothing and
    reports 0 changes.
    """
    size = check_input_size(input_size)
    min_size = getattr(model, "min_input_size", 1)
    if isinstance(min_size, int) and min(size) < min_size:
        raise UserInputError(f"input_size {size} is smaller than {type(model).__name__} accepts "
                             f"({min_size} pixels per side); pass a larger input_size.")
    pipeline, skip = _resolve(passes, skip)
    ctx = FoldContext(size, in_channels)
    results = []
    for p in pipeline:
        before: Complexity = ctx.profile(model)
        if p.name in skip:
            results.append(PassResult(p.name, 0, 0, before.convs, before.convs, before.params, before.params,
                                      before.macs, before.macs, before.acts, before.acts, (), skipped=True))
            continue
        outcome = p.apply(model, ctx)
        # A pass that changed nothing left the model as it was: keep the measurement.
        after = ctx.profile(model, refresh=True) if outcome.changes else ctx.reuse(before)
        results.append(PassResult(p.name, outcome.changes, outcome.convs_removed, before.convs, after.convs,
                                  before.params, after.params, before.macs, after.macs, before.acts, after.acts,
                                  tuple(outcome.notes)))
        if outcome.changes:
            log.info("fold pass %s: %d changes, convs %d -> %d", p.name, outcome.changes, before.convs, after.convs)
    return FoldReport(size, tuple(results))
