"""Training patches: random (LR, HR) crops from an HR folder, with the LR made on the fly or read.

Every sample is a pure function of ``(seed, key)``, where the key is the sample's position in the
run's sample stream (``epoch * len(dataset) + index``): which image, where the crop falls and which
of the 8 flips/rotations it gets. So a run is reproducible whatever the number of loader workers,
resumes exactly at any step, and gives the same global batches on 1 process or N (see `PatchSampler`).

Images are decoded once. With ``cache="ram"`` (or ``"auto"`` when the estimate fits in ``cache_gb``)
every HR image, and its MATLAB-bicubic LR when there is no LR folder, is decoded and computed once
up front in the main process, before loader workers fork: forked workers share those arrays
copy-on-write, so RAM holds one copy. Without the cache (``"none"``, or ``"auto"`` when too big) each
sample reads its HR file and computes only the LR patch it needs, from an HR window with a margin
wide enough for the bicubic kernel, which gives exactly the pixels of the full-image LR.
"""
from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler

from edgesr.data.datasets import PairedImageDataset
from edgesr.data.image_io import modcrop, read_image
from edgesr.data.imresize import imresize
from edgesr.errors import ImageError, UserInputError

log = logging.getLogger(__name__)

CACHE_MODES = ("auto", "ram", "none")
#: LR pixels of context kept around a lazily computed LR patch. MATLAB bicubic at 1/s reads up to
#: 2 LR pixels (2*s HR pixels) on each side of an output pixel; one more for the ceil() in its taps.
_LR_MARGIN = 3
#: Samples per virtual epoch at least this many (then rounded up to a multiple of the global batch):
#: fewer epoch boundaries, where the loader restarts its prefetching.
_MIN_EPOCH_SAMPLES = 2000


@dataclass(frozen=True)
class ImageInfo:
    hr_path: Path
    lr_path: Path | None
    hr_size: tuple[int, int]  # (H, W) after modcrop to the scale


def _header_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from None


def _augment(img: np.ndarray, hflip: bool, vflip: bool, transpose: bool) -> np.ndarray:
    if hflip:
        img = img[:, ::-1]
    if vflip:
        img = img[::-1]
    if transpose:
        img = img.transpose(1, 0, 2)
    return img


def lr_patch_from_hr(hr: np.ndarray, scale: int, top: int, left: int, patch: int) -> np.ndarray:
    """MATLAB-bicubic LR pixels [top:top+patch, left:left+patch] of `hr` (modcropped), computed from
    an HR window only; equal to cropping ``bicubic_downscale(hr, scale)``."""
    h_lr, w_lr = hr.shape[0] // scale, hr.shape[1] // scale
    t0, l0 = max(0, top - _LR_MARGIN), max(0, left - _LR_MARGIN)
    t1, l1 = min(h_lr, top + patch + _LR_MARGIN), min(w_lr, left + patch + _LR_MARGIN)
    window = hr[t0 * scale:t1 * scale, l0 * scale:l1 * scale]
    lr = imresize(window, output_shape=(t1 - t0, l1 - l0))
    return lr[top - t0:top - t0 + patch, left - l0:left - l0 + patch]


class TrainPatchDataset(Dataset):
    """Random (LR, HR) patch pairs; item ``key`` -> ``{"lr": uint8 3xPxP, "hr": uint8 3x(sP)x(sP)}``.

    Args:
        hr_dir: folder of HR images (all must be at least ``patch * scale`` on each side).
        scale: upscaling factor.
        patch: LR patch size (the HR patch is ``patch * scale``).
        lr_dir: optional folder of matching LR images (by file stem; DIV2K ``x4`` suffixes accepted).
            Without it the LR is MATLAB bicubic of the modcropped HR.
        augment: random horizontal/vertical flips and transposition (the 8 dihedral transforms).
        seed: seed of the crop/augmentation draws.
        cache: "ram", "none" or "auto" (ram if the decoded images fit in `cache_gb`).
        cache_gb: RAM budget for "auto".
        limit: use only the first N images (sorted by name).
        epoch_multiple: the virtual epoch length (>= 2000 samples) is a multiple of this (the global
            batch) and of the number of images.
        preload_threads: threads decoding/resizing the cache.
    """

    def __init__(self, hr_dir: str | Path, scale: int, patch: int, *, lr_dir: str | Path | None = None,
                 augment: bool = True, seed: int = 0, cache: str = "auto", cache_gb: float = 8.0,
                 limit: int | None = None, epoch_multiple: int = 1, preload_threads: int | None = None) -> None:
        if cache not in CACHE_MODES:
            raise UserInputError(f"cache must be one of {', '.join(CACHE_MODES)}, got {cache!r}.")
        if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
            raise UserInputError(f"patch must be a positive integer (LR pixels), got {patch!r}.")
        # File listing, LR matching and LR size checks (clear errors for empty folders, missing LR, wrong scale).
        pairs = PairedImageDataset(hr_dir, scale, lr_dir, limit=limit)
        self.scale, self.patch, self.augment, self.seed = pairs.scale, int(patch), bool(augment), int(seed)
        self.hr_dir = Path(hr_dir)
        self.lr_dir = None if lr_dir is None else Path(lr_dir)
        lr_files = pairs.lr_files or [None] * len(pairs.hr_files)
        infos = []
        for hr_path, lr_path in zip(pairs.hr_files, lr_files):
            h, w = _header_size(hr_path)
            infos.append(ImageInfo(hr_path, lr_path, (h - h % self.scale, w - w % self.scale)))
        self.infos = infos
        need = self.patch * self.scale
        small = [i for i in infos if min(i.hr_size) < need]
        if small:
            shown = ", ".join(f"{i.hr_path.name} ({i.hr_size[1]}x{i.hr_size[0]})" for i in small[:4])
            more = f" and {len(small) - 4} more" if len(small) > 4 else ""
            smallest = min(min(i.hr_size) for i in infos) // self.scale
            raise UserInputError(
                f"patch {self.patch} at x{self.scale} needs HR images of at least {need}x{need} pixels, but "
                f"{len(small)} image(s) of {self.hr_dir} are smaller: {shown}{more}. Use --patch {smallest} "
                "or less, or drop those images."
            )
        n = len(infos)
        # A multiple of the image count (every image equally often per epoch) and of the global batch
        # (no batch straddles two epochs, which keeps the N-process / 1-process batches identical).
        multiple = math.lcm(n, max(1, int(epoch_multiple)))
        self.epoch_len = math.ceil(max(n, _MIN_EPOCH_SAMPLES) / multiple) * multiple
        self.cache_bytes = sum(h * w * 3 * (1 + 1 / self.scale**2) for h, w in (i.hr_size for i in infos))
        self.cached = cache == "ram" or (cache == "auto" and self.cache_bytes <= cache_gb * 2**30)
        self._hr: list[np.ndarray] | None = None
        self._lr: list[np.ndarray] | None = None
        if self.cached:
            self._preload(preload_threads)
        else:
            log.info("training images are read per sample (%.1f GiB decoded > cache budget %.1f GiB)",
                     self.cache_bytes / 2**30, cache_gb)

    # ------------------------------------------------------------------------------------------ loading
    def _load_pair(self, info: ImageInfo) -> tuple[np.ndarray, np.ndarray]:
        hr = modcrop(read_image(info.hr_path), self.scale)
        if hr.shape[:2] != info.hr_size:
            raise ImageError(f"{info.hr_path} changed size while training ({hr.shape[1]}x{hr.shape[0]}).")
        if info.lr_path is None:
            lr = imresize(hr, output_shape=(hr.shape[0] // self.scale, hr.shape[1] // self.scale))
        else:
            lr = read_image(info.lr_path)
            if lr.shape[0] * self.scale != hr.shape[0] or lr.shape[1] * self.scale != hr.shape[1]:
                raise UserInputError(f"LR {info.lr_path} does not match HR {info.hr_path} at x{self.scale}.")
        return hr, lr

    def _preload(self, threads: int | None) -> None:
        start = time.perf_counter()
        threads = threads or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=threads) as pool:  # decode and imresize release the GIL
            loaded = list(pool.map(self._load_pair, self.infos))
        self._hr = [p[0] for p in loaded]
        self._lr = [p[1] for p in loaded]
        log.info("cached %d training images in RAM (%.1f MiB%s) in %.1f s", len(loaded), self.cache_bytes / 2**20,
                 ", LR by MATLAB bicubic" if self.lr_dir is None else "", time.perf_counter() - start)

    # ------------------------------------------------------------------------------------------- access
    def __len__(self) -> int:
        return self.epoch_len

    @property
    def num_images(self) -> int:
        return len(self.infos)

    def sample_params(self, key: int) -> tuple[int, int, int, tuple[bool, bool, bool]]:
        """(image index, LR top, LR left, (hflip, vflip, transpose)) of sample `key`."""
        rng = np.random.default_rng([self.seed, int(key)])
        image = int(key % self.epoch_len) % len(self.infos)
        h, w = self.infos[image].hr_size
        top = int(rng.integers(0, h // self.scale - self.patch + 1))
        left = int(rng.integers(0, w // self.scale - self.patch + 1))
        flips = tuple(bool(b) for b in rng.integers(0, 2, size=3)) if self.augment else (False, False, False)
        return image, top, left, flips  # type: ignore[return-value]

    def __getitem__(self, key: int) -> dict[str, Any]:
        image, top, left, flips = self.sample_params(key)
        s, p = self.scale, self.patch
        if self._hr is not None and self._lr is not None:
            hr_full, lr_full = self._hr[image], self._lr[image]
            lr = lr_full[top:top + p, left:left + p]
        else:
            info = self.infos[image]
            hr_full = modcrop(read_image(info.hr_path), s)
            if info.lr_path is None:
                lr = lr_patch_from_hr(hr_full, s, top, left, p)
            else:
                lr = read_image(info.lr_path)[top:top + p, left:left + p]
        hr = hr_full[top * s:(top + p) * s, left * s:(left + p) * s]
        lr, hr = _augment(lr, *flips), _augment(hr, *flips)
        return {
            "lr": torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))),
            "hr": torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))),
        }


class PatchSampler(DistributedSampler):
    """`DistributedSampler` over the virtual epoch that yields sample keys and can start mid-stream.

    Each epoch is a permutation of ``range(len(dataset))`` seeded by ``seed + epoch`` (as in
    DistributedSampler), and rank r takes ``perm[r::world]``. With the epoch length a multiple of the
    global batch, the union of the ranks' batches at step t is ``perm[t*B:(t+1)*B]``, the batch a
    single process sees at step t: N-process runs see the same global batches as 1-process runs.
    """

    def __init__(self, dataset: TrainPatchDataset, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.skip = 0

    def start_at(self, consumed: int) -> None:
        """Position the stream after `consumed` samples of this rank (sets the epoch and the offset)."""
        self.set_epoch(consumed // self.num_samples)
        self.skip = consumed % self.num_samples

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * len(self.dataset)
        indices = list(super().__iter__())[self.skip:]
        return iter([base + i for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def default_workers(device: torch.device, world_size: int = 1) -> int:
    """Loader workers: 0 on CPU (patches come from RAM; the cores are better spent on the model),
    else up to 8 per process, leaving a core to each process's main thread."""
    if device.type == "cpu":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cpus // max(1, world_size) - 1))


def make_loader(dataset: TrainPatchDataset, sampler: PatchSampler, batch: int, device: torch.device,
                workers: int | None = None) -> torch.utils.data.DataLoader:
    """The training DataLoader: workers with persistent processes and prefetching, pinned memory on CUDA."""
    workers = default_workers(device, sampler.num_replicas) if workers is None else int(workers)
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=4)
    return torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                                       pin_memory=device.type == "cuda", drop_last=True, **kwargs)
