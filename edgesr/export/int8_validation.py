"""The validation set an INT8 quality budget is measured on: Y-PSNR against ground truth, not against FP32.

``--int8-max-drop DB`` means: on these images the INT8 model's Y-PSNR is at most DB below the FP32 model's.
``--int8-val DATASET`` names them (`dataset_validation_set`: any dataset `edgesr eval` takes, e.g. Set14, with
its own LR or MATLAB bicubic LR). Without it they are LR images held out from calibration (the calibration folder's files, split by
`edgesr.export.calibration.split_files`) used as ground truth: each is cut to a multiple of the scale and
downscaled with MATLAB bicubic (`edgesr.data.imresize.bicubic_downscale`), the usual SR benchmark
degradation, so the measurement follows the protocol of `edgesr.evaluate` (SR rounded to uint8, Y channel
of BT.601, `scale` pixels shaved) on images the quantization never saw.

The default images are small textured crops that SR models score ~25 dB on; the same INT8 noise costs less
there than on clean benchmark images scored ~32 dB, so their drop under-predicts the Set5 drop
(benchmarks/results/int8_tradeoff_*: 0.09 dB there, 0.42 dB on Set5). A clean HR set such as Set14 predicts
benchmark drops better.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from edgesr.errors import UserInputError


@dataclass
class ValidationSet:
    """Ground-truth pairs ({name, lr, hr}, uint8 HxWx3) at `scale`."""

    pairs: list[dict[str, Any]]
    scale: int
    min_size: int = 1
    files: list[str] = field(default_factory=list)
    source: str = ""

    def psnr_per_image(self, fn: Callable[[np.ndarray], np.ndarray],
                       pairs: Iterable[dict[str, Any]] | None = None) -> list[float]:
        """Y-PSNR of `fn` (float32 NCHW 0..1 -> same, x scale) on each pair (the `edgesr.evaluate` protocol);
        `pairs`: a subset of this set's pairs (default all)."""
        from edgesr.inference.predict import upscale_array
        from edgesr.metrics import psnr

        out = []
        for item in self.pairs if pairs is None else pairs:
            sr = upscale_array(fn, item["lr"], self.scale, min_size=self.min_size)
            out.append(float(psnr(sr, item["hr"], crop_border=self.scale, test_y_channel=True)))
        return out

    def psnr(self, fn: Callable[[np.ndarray], np.ndarray]) -> float:
        """Mean Y-PSNR over the pairs (as `edgesr eval` averages over images)."""
        values = self.psnr_per_image(fn)
        return float(np.mean(values))

    def describe(self) -> dict[str, Any]:
        return {"images": len(self.pairs), "files": self.files, "scale": self.scale, "source": self.source,
                "lr_sizes": [list(p["lr"].shape[:2]) for p in self.pairs],
                "protocol": f"Y-PSNR (BT.601), shave {self.scale}, SR rounded to uint8"}


def dataset_validation_set(dataset: str | Path, scale: int, *, count: int | None = None,
                           min_size: int = 1) -> ValidationSet:
    """The (first `count`) pairs of an evaluation dataset (a folder or a name under shared/datasets, as
    `edgesr eval -d` takes it)."""
    from edgesr.data import open_eval_dataset, resolve_dataset

    data = open_eval_dataset(resolve_dataset(dataset), scale, limit=count)
    pairs = [data[i] for i in range(len(data))]
    pairs = [p for p in pairs if min(p["lr"].shape[:2]) >= min_size]
    if not pairs:
        raise UserInputError(f"no image of the validation set {dataset} is large enough for x{scale}.")
    return ValidationSet(pairs, scale, min_size, [f"{dataset}/{p['name']}" for p in pairs],
                         f"the dataset {dataset} (its LR images, or MATLAB bicubic x{scale})")


def validation_set(files: Sequence[Path], scale: int, *, count: int = 8, max_side: int = 384,
                   min_size: int = 1) -> ValidationSet:
    """Pairs from the first `count` of `files`: each image (centre crop of at most `max_side` px, cut to a
    multiple of `scale`) is the ground truth, its MATLAB bicubic downscale the LR input."""
    from edgesr.data import read_image
    from edgesr.data.imresize import bicubic_downscale

    if scale < 1:
        raise UserInputError(f"scale must be >= 1, got {scale}.")
    pairs, names = [], []
    for path in list(files)[:max(1, count)]:
        img = read_image(path)
        h = min(img.shape[0], max_side) // scale * scale
        w = min(img.shape[1], max_side) // scale * scale
        if h // scale < min_size or w // scale < min_size:
            continue
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        hr = np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])
        pairs.append({"name": Path(path).stem, "lr": bicubic_downscale(hr, scale), "hr": hr})
        names.append(Path(path).name)
    if not pairs:
        raise UserInputError(f"no validation image is large enough for x{scale} (an LR side of at least "
                             f"{min_size} px is needed).")
    return ValidationSet(pairs, scale, min_size, names, f"images held out from calibration as ground truth, "
                                                         f"MATLAB bicubic x{scale} LR")
