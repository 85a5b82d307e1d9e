"""The search's state file (``<out>/optimize_state.json``): what is finished, so `--resume` reuses it.

Written atomically after every candidate (a crash or Ctrl-C leaves the previous complete state), and keyed by
the search's setup (`fingerprint`): a state made for another model, target or validation set is refused rather
than mixed in. Latency is stored only for a complete interleaved run, so a resumed search measures all its
candidates together again when the earlier run did not finish that phase.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgesr.errors import UserInputError
from edgesr.utils.atomic import write_text_atomic

STATE_NAME = "optimize_state.json"
STATE_VERSION = 1


@dataclass
class CandidateResult:
    """What was measured for one candidate. `status`: "done" (built and scored) or "failed" (`error` says why);
    `call_ms`: one warm call per timed size (the latency phase's time estimate); `latency`: per size, the
    statistics of the interleaved run (`LatencyStats.to_dict`)."""

    key: str
    variant: str
    runtime: str
    backend: str
    precision: str
    fmt: str | None = None
    artifact: str | None = None
    runner: dict[str, Any] = field(default_factory=dict)
    status: str = "done"
    error: str | None = None
    psnr: float | None = None
    ssim: float | None = None
    memory: dict[str, Any] | None = None
    call_ms: dict[str, float] = field(default_factory=dict)
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)
    build_s: float = 0.0
    actual_precision: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "done"

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"

    def median_ms(self, size: str) -> float | None:
        entry = self.latency.get(size)
        return float(entry["median_ms"]) if entry else None

    def p90_ms(self, size: str) -> float | None:
        entry = self.latency.get(size)
        return float(entry["p90_ms"]) if entry else None


@dataclass
class SearchState:
    fingerprint: dict[str, Any]
    results: dict[str, CandidateResult] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # export key -> artifact path (shared exports)
    latency_done: bool = False
    elapsed_s: float = 0.0
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=str, allow_nan=False) + "\n"

    def save(self, out_dir: Path) -> Path:
        return write_text_atomic(Path(out_dir) / STATE_NAME, self.to_json(), force=True)

    @classmethod
    def load(cls, out_dir: Path) -> "SearchState | None":
        path = Path(out_dir) / STATE_NAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}")
            results = {k: CandidateResult(**v) for k, v in data.get("results", {}).items()}
            return cls(fingerprint=data["fingerprint"], results=results, artifacts=dict(data.get("artifacts", {})),
                       latency_done=bool(data.get("latency_done")), elapsed_s=float(data.get("elapsed_s", 0.0)))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise UserInputError(f"cannot resume from {path}: {exc}. Delete it, or start over with --force.") from exc


def open_state(out_dir: Path, fingerprint: dict[str, Any], *, resume: bool, force: bool) -> SearchState:
    """The state to continue (`resume`), or a fresh one; refuses to mix searches or to overwrite one silently."""
    old = SearchState.load(out_dir) if (resume or not force) else None
    if old is None:
        return SearchState(fingerprint=fingerprint)
    if not resume:
        raise UserInputError(f"{out_dir} holds a search already ({STATE_NAME}): pass --resume to continue it, or "
                             "--force to start over.")
    if old.fingerprint != fingerprint:
        diff = sorted(k for k in set(old.fingerprint) | set(fingerprint) if old.fingerprint.get(k) != fingerprint.get(k))
        raise UserInputError(f"{out_dir} holds a search with another setup (differs in: {', '.join(diff)}); resume it "
                             "with the same options, or start over with --force.")
    return old
