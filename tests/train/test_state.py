"""Training state helpers: EMA arithmetic, RNG round trip through a weights_only checkpoint, JSONL log."""
from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgesr.errors import UserInputError
from edgesr.train.state import EMA, RunLogger, capture_rng, load_checkpoint, restore_rng, save_checkpoint


def test_ema_average() -> None:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, 0.75)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)  # 0.75 * 1 + 0.25 * 3
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 1.5))
    ema.update(model)  # 0.75 * 1.5 + 0.25 * 3
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 1.875)) and ema.updates == 2
    assert not any(p.requires_grad for p in ema.module.parameters())
    ema.reset(model)
    assert torch.equal(ema.module.weight, model.weight) and ema.updates == 0
    with pytest.raises(UserInputError):
        EMA(model, 1.0)


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = save_checkpoint(tmp_path / "c.pt", {"rng": capture_rng()})
    want = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng(load_checkpoint(path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == want
    (tmp_path / "other.pt").write_bytes(b"nope")
    with pytest.raises(UserInputError, match="cannot read training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"x": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(UserInputError, match="not an edgesr training checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_jsonl_log(tmp_path: Path, caplog) -> None:
    logger = RunLogger(tmp_path, tensorboard=False)
    logger.write("train", 5, loss=0.25, stage=1)
    logger.write("val", 5, psnr=30.0)
    logger.close()
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(r["event"], r["step"]) for r in lines] == [("train", 5), ("val", 5)] and lines[0]["loss"] == 0.25
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:  # without tensorboard installed, asking for it only warns
        with caplog.at_level(logging.WARNING):
            RunLogger(tmp_path, tensorboard=True).close()
        assert "TensorBoard requested but not installed" in caplog.text
        assert not (tmp_path / "tb").exists()
