"""Benchmark datasets: HR folders with shipped or generated bicubic LR, and LR-only folders.

Layout understood (the one in shared/datasets and most SR repos)::

    Set5/HR/*.png
    Set5/LR_bicubic/X4/*.png      optional; generated from HR with MATLAB bicubic when absent

Images are read lazily, one per item, as uint8 HxWx3 RGB.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from edgesr.data.image_io import modcrop, read_image
from edgesr.data.imresize import bicubic_downscale
from edgesr.errors import ImageError, UserInputError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _check_scale(scale: object) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise UserInputError(f"scale must be a positive integer, got {scale!r}.")
    return int(scale)


def _check_limit(limit: object) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise UserInputError(f"limit must be a positive integer or None, got {limit!r}.")
    return None if limit is None else int(limit)


def find_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder` (by extension, case-insensitive), sorted by name.

    Hidden files (e.g. an interrupted atomic write's ``.name.tmp``) are skipped. Raises
    UserInputError when the folder does not exist; returns [] when it holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise UserInputError(f"image folder {folder} {what}.")
    return sorted(
        (p for p in folder.iterdir()
         if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()),
        key=lambda p: p.name,
    )


def _images_or_raise(folder: Path, what: str) -> list[Path]:
    files = find_images(folder)
    if not files:
        raise UserInputError(
            f"{what} folder {folder} contains no images ({', '.join(IMAGE_EXTENSIONS)})."
        )
    return files


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in files:
        if p.stem in out:
            raise UserInputError(f"{folder} holds two images named {p.stem!r}: {out[p.stem].name} and {p.name}.")
        out[p.stem] = p
    return out


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from None


class PairedImageDataset(Dataset):
    """(LR, HR) pairs at one scale; items are ``dict(name, lr, hr)`` with uint8 HxWx3 arrays.

    HR is always modcropped to a multiple of `scale`. LR comes from `lr_dir`, matched to HR by
    file stem (a DIV2K-style ``x{scale}`` / ``_x{scale}`` suffix on the LR name is accepted);
    without `lr_dir` it is generated with the MATLAB-compatible `bicubic_downscale`.
    `limit` keeps only the first N HR images (sorted by name).
    """

    def __init__(self, hr_dir: str | Path, scale: int, lr_dir: str | Path | None = None,
                 limit: int | None = None) -> None:
        self.scale = _check_scale(scale)
        limit = _check_limit(limit)
        self.hr_dir = Path(hr_dir)
        self.lr_dir = None if lr_dir is None else Path(lr_dir)
        hr_files = _images_or_raise(self.hr_dir, "HR")[:limit]
        _by_stem(hr_files, self.hr_dir)
        self.hr_files = hr_files
        self.lr_files: list[Path] | None = None
        if self.lr_dir is None:
            log.info("no LR folder for %s: generating MATLAB bicubic x%d LR from HR.", self.hr_dir, self.scale)
        else:
            self.lr_files = self._match_lr(self.lr_dir, _images_or_raise(self.lr_dir, "LR"))
            self._check_lr_sizes(self.lr_files)

    def _match_lr(self, lr_dir: Path, lr_files: list[Path]) -> list[Path]:
        exact = _by_stem(lr_files, lr_dir)
        suffix = re.compile(rf"_?x{self.scale}$", re.IGNORECASE)
        loose = {suffix.sub("", stem): p for stem, p in exact.items() if suffix.search(stem)}
        matched, missing = [], []
        for hr in self.hr_files:
            lr = exact.get(hr.stem) or loose.get(hr.stem)
            if lr is None:
                missing.append(hr.name)
            else:
                matched.append(lr)
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise UserInputError(
                f"LR folder {lr_dir} has no image for {len(missing)} HR image(s) of {self.hr_dir}: {shown}."
            )
        return matched

    def _check_lr_sizes(self, lr_files: list[Path]) -> None:
        for hr, lr in zip(self.hr_files, lr_files):
            h, w = _image_size(hr)
            want = (h // self.scale, w // self.scale)
            got = _image_size(lr)
            if got != want:
                raise UserInputError(
                    f"LR image {lr} is {got[1]}x{got[0]} but HR {hr.name} ({w}x{h}) at x{self.scale} "
                    f"needs {want[1]}x{want[0]}: wrong scale or wrong LR folder?"
                )

    def __len__(self) -> int:
        return len(self.hr_files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        hr_path = self.hr_files[index]
        hr = modcrop(read_image(hr_path), self.scale)
        if self.lr_files is None:
            lr = bicubic_downscale(hr, self.scale)
        else:
            lr = read_image(self.lr_files[index])
            if lr.shape[0] * self.scale != hr.shape[0] or lr.shape[1] * self.scale != hr.shape[1]:
                raise UserInputError(f"LR {self.lr_files[index]} does not match HR {hr_path} at x{self.scale}.")
        return {"name": hr_path.stem, "lr": lr, "hr": hr}


class LRImageFolder(Dataset):
    """LR-only images (e.g. DIV2K_test_LR_x4); items are ``dict(name, lr)`` with uint8 HxWx3 arrays."""

    def __init__(self, folder: str | Path, limit: int | None = None) -> None:
        self.folder = Path(folder)
        self.files = _images_or_raise(self.folder, "LR")[:_check_limit(limit)]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        return {"name": path.stem, "lr": read_image(path)}


def _find_lr_dir(dataset_dir: Path, scale: int) -> Path | None:
    for sub in (f"X{scale}", f"x{scale}"):
        candidate = dataset_dir / "LR_bicubic" / sub
        if candidate.is_dir():
            return candidate
    return None


def resolve_dataset(value: str | Path) -> Path:
    """A dataset folder, or the name of one under shared/datasets (``Set5``, ``Set14``, ``BSD68``,
    ``DIV2K_test_LR_x4``): how every command that takes a dataset finds it."""
    from edgesr.paths import shared_dir

    path = Path(value).expanduser()
    if path.is_dir():
        return path
    shared = shared_dir() / "datasets" / str(value)
    if shared.is_dir():
        return shared
    what = "is not a folder" if path.exists() else "does not exist"
    raise UserInputError(f"dataset {value} not found: {path} {what}, nor is there {shared}. Pass a folder with HR/ "
                         "(and LR_bicubic/X<scale>/), a folder of images, or a name under shared/datasets.")


def dataset_name(folder: str | Path) -> str:
    """The name results are filed under: the folder's name (its parent's for a ``.../HR`` folder)."""
    folder = Path(folder).resolve()
    return folder.parent.name if folder.name.upper() == "HR" else folder.name


def open_eval_dataset(dataset_dir: str | Path, scale: int, limit: int | None = None) -> PairedImageDataset:
    """An evaluation set from `dataset_dir`: ``HR/`` (+ optional ``LR_bicubic/X{scale}/``), or a
    plain folder of HR images (LR then generated with MATLAB bicubic)."""
    dataset_dir = Path(dataset_dir)
    scale = _check_scale(scale)
    if not dataset_dir.is_dir():
        what = "is not a folder" if dataset_dir.exists() else "does not exist"
        raise UserInputError(f"dataset folder {dataset_dir} {what}.")
    hr_dir = dataset_dir / "HR"
    if hr_dir.is_dir():
        return PairedImageDataset(hr_dir, scale, _find_lr_dir(dataset_dir, scale), limit=limit)
    if find_images(dataset_dir):
        return PairedImageDataset(dataset_dir, scale, None, limit=limit)
    raise UserInputError(
        f"dataset folder {dataset_dir} has neither an HR/ subfolder nor images; expected "
        f"{dataset_dir}/HR/*.png (and optionally {dataset_dir}/LR_bicubic/X{scale}/*.png)."
    )
