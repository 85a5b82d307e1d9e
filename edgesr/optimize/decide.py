"""The decision: the fastest deployable candidate whose quality drop stays within the budget.

Drop = the eager PyTorch FP32 PSNR of the original (unpruned) model minus the candidate's, on the validation
set, each measured through its own runtime; speed-up = eager median / candidate median at the target's first
input size, both from the same interleaved run. Torch rows are references (no file to ship), so they are never
chosen; a faster torch row is reported, not hidden.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from edgesr.bench.pareto import pareto_front
from edgesr.errors import UserInputError
from edgesr.optimize.state import CandidateResult

DROP_TOLERANCE_DB = 1e-9  # float noise at the budget's edge


@dataclass
class Row:
    """One measured candidate with its derived figures."""

    result: CandidateResult
    drop_db: float | None
    speedup: float | None
    within_budget: bool
    on_front: bool = False


@dataclass
class Decision:
    size: str
    max_drop: float
    reference_psnr: float
    baseline: CandidateResult
    rows: list[Row]
    chosen: Row | None = None
    closest: Row | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chosen is not None

    def to_dict(self) -> dict[str, Any]:
        def name(row: Row | None) -> str | None:
            return row.result.key if row else None

        return {"size": self.size, "max_drop_db": self.max_drop, "reference_psnr": self.reference_psnr,
                "baseline": self.baseline.key, "chosen": name(self.chosen), "closest": name(self.closest),
                "chosen_speedup": self.chosen.speedup if self.chosen else None,
                "chosen_drop_db": self.chosen.drop_db if self.chosen else None, "notes": list(self.notes)}


def decide(results: Sequence[CandidateResult], baseline_key: str, size: str, max_drop: float) -> Decision:
    """Rows for every measured candidate (fastest first), the Pareto front, the chosen one, or the closest one
    when none meets the budget."""
    by_key = {r.key: r for r in results}
    base = by_key.get(baseline_key)
    if base is None or not base.ok or base.psnr is None or base.median_ms(size) is None:
        why = base.error if base is not None and base.error else "not measured"
        raise UserInputError(f"the eager PyTorch baseline ({baseline_key}) could not be measured ({why}); the "
                             "search needs it for the speed-up and the quality drop.")
    base_ms = base.median_ms(size)
    assert base_ms is not None and base.psnr is not None
    rows = []
    for r in results:
        ms = r.median_ms(size)
        if not r.ok or ms is None or r.psnr is None:
            continue
        drop = base.psnr - r.psnr
        rows.append(Row(r, drop, base_ms / ms if ms > 0 else None, drop <= max_drop + DROP_TOLERANCE_DB))
    rows.sort(key=lambda row: row.result.median_ms(size) or float("inf"))
    for i in pareto_front([(row.result.median_ms(size) or 0.0, row.result.psnr or 0.0) for row in rows]):
        rows[i].on_front = True
    decision = Decision(size, max_drop, base.psnr, base, rows)
    deployable = [row for row in rows if row.result.fmt is not None]
    fits = [row for row in deployable if row.within_budget]
    if fits:
        decision.chosen = fits[0]
        faster = [row for row in rows if row.within_budget and row.result.fmt is None and
                  (row.result.median_ms(size) or 0) < (fits[0].result.median_ms(size) or 0)]
        if faster:
            decision.notes.append(f"{faster[0].result.key} (PyTorch, not a deployable file) was faster than the "
                                  "chosen artifact")
    elif deployable:
        decision.closest = min(deployable, key=lambda row: (row.drop_db, row.result.median_ms(size) or 0.0))
    return decision
