"""`edgesr optimize`: find, build and prove the fastest deployable form of a model within a quality budget.

    from edgesr.optimize import OptimizeConfig, run_optimize
    result = run_optimize(model, OptimizeConfig(out_dir=Path("out/opt"), target="cpu", max_drop=0.05))
    print(result.config["summary"])     # best: openvino bf16 — 6.8x eager, -0.004 dB Set5 — out/opt/rlfn_x4.onnx

Units: `targets` (target profiles, machine capabilities), `candidates` (model variant x precision x runtime
over the export-format and runner registries, with skip reasons), `measure` (build and score one candidate),
`state` (the resumable state file), `decide` (budget, Pareto front, choice), `report` (tables, plot, chosen
artifact with its decision sidecar block), `search` (the phases in order).
"""
from __future__ import annotations

from edgesr.optimize.search import OptimizeConfig, OptimizeResult, run_optimize

__all__ = ["OptimizeConfig", "OptimizeResult", "run_optimize"]
