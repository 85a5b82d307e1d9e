"""Run by test_ddp.py under torchrun (and in-process for the reference): a few steps of a tiny model,
recording the (all-reduced) gradients after every step; rank 0 saves them to OUT/grads.pt."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from edgesr.train import TrainConfig, train

TINY = {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4}


def config(hr: Path, out: Path) -> TrainConfig:
    return TrainConfig("rlfn_s", hr_dir=hr, output_dir=out, scale=2, model_cfg=TINY, patch=16, batch=4, steps=3,
                       lr=1e-3, contrastive=0.1, ema=0.9, progress=False, log_every=1, val_every=0, device="cpu")


def run(hr: Path, out: Path) -> dict:
    grads: list[dict[str, torch.Tensor]] = []

    def record(event: str, info: dict) -> None:
        if event == "step":
            grads.append({n: p.grad.detach().clone() for n, p in info["model"].named_parameters()})

    result = train(config(hr, out), callback=record)
    payload = {"grads": grads, "weights": result.model.state_dict(),
               "world_size": int(os.environ.get("WORLD_SIZE", "1"))}
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save(payload, out / "grads.pt")
    return payload


if __name__ == "__main__":
    torch.set_num_threads(1)
    run(Path(sys.argv[1]), Path(sys.argv[2]))
