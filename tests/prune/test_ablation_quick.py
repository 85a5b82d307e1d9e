"""The pruning ablation benchmark in its --quick smoke mode (slow: run with -m slow)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_quick_ablation_runs_every_row(datasets_dir: Path, tmp_path: Path, benchmark_script) -> None:
    bench = benchmark_script("prune_ablation")
    results = tmp_path / "r.md"
    out = bench.main(["--quick", "--output", str(tmp_path / "work"), "--results", str(results)])
    keys = [row["key"] for row in out["rows"]]
    assert keys == list(bench.ROWS)
    goal = out["reference"]["macs"]
    for row in out["rows"]:  # every row at RLFN-NTIRE's size with the same step budget
        assert 0.97 * goal <= row["measurement"]["macs"] <= goal  # equal FLOPs, uniform rows included
        assert row["prune_steps"] + row["finetune_steps"] == out["steps"]
    assert next(r for r in out["rows"] if r["key"] == "uniform_drop2")["blocks"] == 4
    text = results.read_text()
    assert "ONNX (dynamic H/W) vs PyTorch max |diff|" in text  # every model exported and verified
    assert "| RLFN-NTIRE x4" in text and "Fisher + memory" in text and "Command: `" in text
    assert results.with_suffix(".png").stat().st_size > 1000
