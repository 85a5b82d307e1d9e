"""Random training crops for pruning and fine-tuning (LR-only folders or paired datasets)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from edgesr.errors import UserInputError

__all__ = ["crop_batches"]


def _load(source: Any, limit: int | None) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    from edgesr.data import LRImageFolder

    if isinstance(source, (str, Path)):
        source = LRImageFolder(source, limit=limit)
    items = [source[i] for i in range(len(source) if limit is None else min(limit, len(source)))]
    if not items:
        raise UserInputError("no training images.")
    lrs = [it["lr"] for it in items]
    hrs = [it["hr"] for it in items] if all("hr" in it for it in items) else None
    return lrs, hrs


def crop_batches(source: str | Path | Sequence[dict], crop_size: int = 48, batch_size: int = 8,
                 scale: int | None = None, seed: int = 0, limit: int | None = None,
                 augment: bool = True) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """Endless random crops: LR tensors ``[B, 3, crop, crop]`` in 0..1, or (LR, HR) pairs.

    Args:
        source: a folder of LR images, or a dataset whose items are dicts with ``lr`` (and ``hr``)
            uint8 HxWx3 arrays (e.g. `edgesr.data.PairedImageDataset`); images are read once.
        crop_size: LR crop side; images smaller than it are skipped.
        scale: needed with HR to align the HR crop (taken from the dataset's ``scale`` if it has one).
        augment: random flips and 90-degree rotations (applied to LR and HR alike).
    """
    if crop_size < 1 or batch_size < 1:
        raise UserInputError("crop_size and batch_size must be positive.")
    lrs, hrs = _load(source, limit)
    if hrs is not None:
        scale = scale or getattr(source, "scale", None)
        if not scale:
            raise UserInputError("paired crops need the scale.")
    usable = [i for i, lr in enumerate(lrs) if lr.shape[0] >= crop_size and lr.shape[1] >= crop_size]
    if not usable:
        raise UserInputError(f"no image is at least {crop_size}x{crop_size} pixels.")
    rng = np.random.default_rng(seed)

    def gen() -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        while True:
            lr_b, hr_b = [], []
            for _ in range(batch_size):
                i = usable[int(rng.integers(len(usable)))]
                lr = lrs[i]
                y = int(rng.integers(lr.shape[0] - crop_size + 1))
                x = int(rng.integers(lr.shape[1] - crop_size + 1))
                patches = [lr[y:y + crop_size, x:x + crop_size]]
                if hrs is not None:
                    s = int(scale)
                    patches.append(hrs[i][y * s:(y + crop_size) * s, x * s:(x + crop_size) * s])
                if augment:
                    k, flip = int(rng.integers(4)), bool(rng.integers(2))
                    patches = [np.rot90(p[:, ::-1] if flip else p, k) for p in patches]
                lr_b.append(np.ascontiguousarray(patches[0]))
                if hrs is not None:
                    hr_b.append(np.ascontiguousarray(patches[1]))
            lr_t = torch.from_numpy(np.stack(lr_b)).permute(0, 3, 1, 2).float().div_(255.0)
            if hrs is None:
                yield lr_t
            else:
                yield lr_t, torch.from_numpy(np.stack(hr_b)).permute(0, 3, 1, 2).float().div_(255.0)

    return gen()
