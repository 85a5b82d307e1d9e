"""Tiled vs untiled upscaling on real DIV2K LR images: max abs difference and PSNR between outputs.

    python benchmarks/tiling_parity.py [--images N] [--tile 256] [--halo 32] [--model rlfn_x4]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from edgesr.data import find_images, read_image
from edgesr.inference import torch_sr_function, upscale_array
from edgesr.metrics import psnr_between
from edgesr.models import create_model
from edgesr.paths import shared_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="rlfn_x4")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--halo", type=int, nargs="+", default=[16, 32, 48])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = create_model(args.model)
    fn = torch_sr_function(model)
    print(f"| image | LR size | tile | halo | max abs diff (uint8) | pixels differing | PSNR tiled vs untiled (dB) | untiled s | tiled s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in find_images(shared_dir() / "datasets" / "DIV2K_test_LR_x4")[: args.images]:
        lr = read_image(path)
        t0 = time.perf_counter()
        full = upscale_array(fn, lr, model.scale, min_size=model.min_input_size)
        t_full = time.perf_counter() - t0
        for halo in args.halo:
            t0 = time.perf_counter()
            tiled = upscale_array(fn, lr, model.scale, tile=args.tile, halo=halo, min_size=model.min_input_size)
            t_tiled = time.perf_counter() - t0
            diff = np.abs(full.astype(int) - tiled.astype(int))
            p = psnr_between(full.astype(np.float64), tiled.astype(np.float64), 255.0)
            print(f"| {path.name} | {lr.shape[1]}x{lr.shape[0]} | {args.tile} | {halo} | {diff.max()} | "
                  f"{(diff > 0).mean() * 100:.3f}% | {p:.2f} | {t_full:.1f} | {t_tiled:.1f} |")


if __name__ == "__main__":
    main()
