"""The learning benchmark, shortened (slow: run with -m slow)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_rlfn_s_x2.py"


@pytest.mark.slow
def test_short_training_run_learns(datasets_dir: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("train_rlfn_s_x2", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--steps", "90", "--val-every", "30", "--results", str(tmp_path / "r.md"),
                      "--output", str(tmp_path / "run")])
    psnrs = [p for _, p, _ in out["curve"]]
    assert len(psnrs) == 3 and psnrs[0] < psnrs[1] < psnrs[2] and psnrs[-1] > psnrs[0] + 1.0, psnrs
    assert "| 90 |" in (tmp_path / "r.md").read_text()
