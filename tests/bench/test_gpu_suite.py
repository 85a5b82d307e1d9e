"""The GPU suite's dry run: the same code as the GPU run (prepare -> load -> every path -> md/json), on CPU
with random weights and tiny images, so the script is known to work before GPU time is spent."""
from __future__ import annotations

import json
import math


def test_gpu_suite_dry_run(tmp_path, monkeypatch, benchmark_script):
    suite = benchmark_script("gpu_suite")
    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    assert suite.main(["--dry-run", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "gpu_suite_dry_run.json").read_text())
    results = {r["path"]: r for r in data["results"]}
    assert set(results) == {p.name for p in suite.PATHS}
    assert results["torch fp16 CUDA graphs"]["status"] == "skipped: CUDA graphs need a CUDA device"
    ran = [r for r in data["results"] if r["status"] == "ok"]
    assert len(ran) == len(suite.PATHS) - 1, [(r["path"], r["status"]) for r in data["results"]]
    for r in ran:
        assert r["model"] == "rlfn_ntire_x4" and len(r["run_means_ms"]) == 2 and r["runtime_ms"] > 0
        assert math.isfinite(r["set5_psnr"]) and r["max_memory_mb"] is None  # no CUDA memory on CPU
    # random weights: every torch path and ONNX Runtime agree on the Set5 score to within fp16 rounding
    assert max(r["set5_psnr"] for r in ran) - min(r["set5_psnr"] for r in ran) < 0.5
    assert data["config"]["dry_run"] and data["config"]["images"] == 3 and data["env"]["device"] == "cpu (dry run)"
    md = (tmp_path / "gpu_suite_dry_run.md").read_text()
    assert "| rlfn_ntire_x4 | torch fp16 compile |" in md and "Challenge figures: 27.11 ms" in md


def test_gpu_suite_selects_the_registered_zoo_models(benchmark_script):
    models = benchmark_script("gpu_suite").available_models()
    assert models[:2] == ["rlfn_x4", "rlfn_ntire_x4"]
    assert all(m.startswith(("rlfn", "span", "efdn")) and m.endswith("_x4") for m in models)
