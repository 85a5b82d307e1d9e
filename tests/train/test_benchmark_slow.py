"""The learning benchmark, shortened (slow: run with -m slow)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_short_training_run_learns(datasets_dir: Path, tmp_path: Path, benchmark_script) -> None:
    bench = benchmark_script("train_rlfn_s_x2")
    out = bench.main(["--steps", "90", "--val-every", "30", "--results", str(tmp_path / "r.md"),
                      "--output", str(tmp_path / "run")])
    psnrs = [p for _, p, _ in out["curve"]]
    assert len(psnrs) == 3 and psnrs[0] < psnrs[1] < psnrs[2] and psnrs[-1] > psnrs[0] + 1.0, psnrs
    assert "| 90 |" in (tmp_path / "r.md").read_text()
