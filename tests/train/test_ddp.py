"""DDP on CPU: 2 gloo processes under torchrun reproduce the single-process gradients of the same global batch."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent


def _worker():
    spec = importlib.util.spec_from_file_location("ddp_worker", HERE / "ddp_worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_gloo_processes_match_one_process(set5_hr: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EDGESR_OFFLINE": "1"}
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(HERE / "ddp_worker.py"), str(set5_hr), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp = torch.load(out / "grads.pt", weights_only=True)
    assert ddp["world_size"] == 2 and len(ddp["grads"]) == 3

    single = _worker().run(set5_hr, tmp_path / "single")
    assert single["world_size"] == 1
    for step, (g2, g1) in enumerate(zip(ddp["grads"], single["grads"])):
        for name in g1:
            assert torch.allclose(g2[name], g1[name], rtol=1e-4, atol=1e-5), (step, name)
    for name, w in single["weights"].items():
        assert torch.allclose(ddp["weights"][name], w, rtol=0, atol=1e-5), name
    # only rank 0 wrote: one log line per step, one result
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if e["event"] == "train"] == [1, 2, 3]
    assert json.loads((out / "config.json").read_text())["environment"]["world_size"] == 2
