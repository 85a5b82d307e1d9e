"""Training state: EMA of weights, RNG capture/restore, atomic checkpoints, JSONL/TensorBoard logs."""
from __future__ import annotations

import copy
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgesr.errors import UserInputError
from edgesr.utils.atomic import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "edgesr-train/1"


class EMA:
    """Exponential moving average of a model's parameters (buffers are copied): ``e <- d*e + (1-d)*w``."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise UserInputError(f"EMA decay must be in (0, 1), got {decay!r}.")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - self.decay)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Restart the average at `model`'s current weights (a new warm-start stage)."""
        self.module.load_state_dict(model.state_dict())
        self.updates = 0

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states, in types `torch.load(weights_only=True)` reads."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.random.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write a training checkpoint atomically (a crash mid-write leaves the previous one intact)."""
    with atomic_path(path, force=True) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    return path


def save_weights(path: Path, module: nn.Module) -> Path:
    """A plain state_dict (CPU tensors; safetensors for a ``.safetensors`` path), atomically: loadable with
    ``create_model(name, pretrained=path)`` or ``edgesr.load_model(path)``."""
    from edgesr.models.weights import save_state_dict

    return save_state_dict(path, module, force=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means the same thing here
        raise UserInputError(f"cannot read training checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserInputError(f"{path} is not an edgesr training checkpoint ({CHECKPOINT_FORMAT}).")
    return state


class RunLogger:
    """Appends one JSON object per line to ``log.jsonl``; mirrors scalars to TensorBoard when available.

    Only the process that writes (rank 0) creates one. TensorBoard is optional: with
    ``tensorboard=None`` it is used when ``torch.utils.tensorboard`` imports, silently skipped otherwise;
    with ``True`` a missing install is logged as a warning.
    """

    def __init__(self, folder: Path, tensorboard: bool | None = None) -> None:
        self.path = folder / "log.jsonl"
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._tb = None
        if tensorboard is not False:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is not installed
                if tensorboard:
                    log.warning("TensorBoard requested but not installed (pip install tensorboard); "
                                "logging to %s only.", self.path)
            else:
                self._tb = SummaryWriter(log_dir=str(folder / "tb"))

    def write(self, event: str, step: int, **values: Any) -> None:
        record = {"event": event, "step": step, "time": round(time.time(), 3), **values}
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{event}/{k}", v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
