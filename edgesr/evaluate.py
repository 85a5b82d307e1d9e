"""PSNR/SSIM evaluation of any SR function on a paired dataset (the standard SR protocol).

Protocol: LR uint8 in, SR clamped and rounded to uint8, PSNR/SSIM on the float Y channel of
BT.601 YCbCr (MATLAB rgb2ycbcr, not rounded), `scale` pixels shaved from each border,
averaged over images.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from edgesr.errors import UserInputError
from edgesr.inference.predict import SRFunction, upscale_array


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float
    lr_shape: tuple[int, int]


@dataclass
class EvalResult:
    dataset: str
    scale: int
    psnr: float
    ssim: float
    images: list[ImageScore] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(fn: SRFunction, pairs: Iterable[dict], scale: int, *, dataset: str = "", crop_border: int | None = None,
             self_ensemble: bool = False, tile: int = 0, halo: int = 16, min_size: int = 1,
             progress: bool = False) -> EvalResult:
    """Score `fn` on items {name, lr, hr} (uint8 HxWx3; hr modcropped to the scale)."""
    from edgesr.metrics import psnr, ssim

    crop = scale if crop_border is None else crop_border
    items = pairs if hasattr(pairs, "__len__") else list(pairs)
    iterator: Iterable = items
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(items, desc=f"eval {dataset}".strip(), unit="img", leave=False)
    scores: list[ImageScore] = []
    start = time.perf_counter()
    for item in iterator:
        sr = upscale_array(fn, item["lr"], scale, tile=tile, halo=halo, min_size=min_size,
                           self_ensemble=self_ensemble)
        hr = item["hr"]
        if sr.shape != hr.shape:
            raise UserInputError(f"{item['name']}: SR shape {sr.shape} != HR shape {hr.shape}")
        scores.append(ImageScore(item["name"], float(psnr(sr, hr, crop_border=crop, test_y_channel=True)),
                                 float(ssim(sr, hr, crop_border=crop, test_y_channel=True)),
                                 tuple(item["lr"].shape[:2])))
    elapsed = time.perf_counter() - start
    if not scores:
        raise UserInputError(f"dataset {dataset!r} has no images")
    return EvalResult(
        dataset=dataset, scale=scale,
        psnr=sum(s.psnr for s in scores) / len(scores),
        ssim=sum(s.ssim for s in scores) / len(scores),
        images=scores, seconds=elapsed,
        settings={"crop_border": crop, "y_channel": "float BT.601 (MATLAB rgb2ycbcr, not rounded)",
                  "self_ensemble": self_ensemble, "tile": tile, "halo": halo},
    )


def evaluate_datasets(fn: SRFunction, datasets: Sequence[str | Path], scale: int, *, limit: int | None = None,
                      on_result: Any = None, progress: bool = False, **options: Any) -> dict[str, EvalResult]:
    """`evaluate` on each dataset (a folder, or a name under shared/datasets such as ``Set5``), keyed by the
    dataset's name. `options` are `evaluate`'s; `on_result(result)` is called as each one finishes."""
    from edgesr.data import dataset_name, open_eval_dataset, resolve_dataset

    folders = [resolve_dataset(d) for d in datasets]  # every name is checked before the first image is run
    results: dict[str, EvalResult] = {}
    for folder in folders:
        name = dataset_name(folder)
        res = evaluate(fn, open_eval_dataset(folder, scale, limit=limit), scale, dataset=name, progress=progress,
                       **options)
        results[name] = res
        if on_result is not None:
            on_result(res)
    return results
