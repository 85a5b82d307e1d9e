"""Tiled vs untiled RLFN x4 at tile 128: hard crop, feathered blend, two-pass ESA statistics (whole image,
and from a x2-downscaled copy). PSNR of each tiled output against the untiled one (uint8, RGB).

    python benchmarks/tiling_seams.py [--images 2] [--tile 128] [--halo 32] [--crop 256x256] [--md FILE]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgesr.data import find_images, read_image
from edgesr.inference import torch_sr_function
from edgesr.inference.stitch import upscale_tiled
from edgesr.inference.tiling import TilingConfig
from edgesr.inference.two_pass import GlobalAttention
from edgesr.metrics import psnr_between
from edgesr.models import create_model
from edgesr.paths import shared_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="rlfn_x4")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--halo", type=int, default=32)
    ap.add_argument("--blend", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crop", default=None, metavar="WxH",
                    help="run on the centre WxH crop of each image (tile 128 needs more than 128 px to tile)")
    ap.add_argument("--modes", nargs="+", default=["hard", "blend", "two-pass", "two-pass-x2", "two-pass-blend"],
                    help="which tiled modes to run")
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = create_model(args.model).eval()
    fn = torch_sr_function(model)
    scale, min_size = model.scale, model.min_input_size
    cfg = TilingConfig(args.tile, args.halo, 1, min_size)
    rows = []
    for path in find_images(shared_dir() / "datasets" / "DIV2K_test_LR_x4")[: args.images]:
        lr = read_image(path)
        if args.crop:
            cw, ch = (int(v) for v in args.crop.split("x"))
            y0, x0 = max(0, (lr.shape[0] - ch) // 2), max(0, (lr.shape[1] - cw) // 2)
            lr = np.ascontiguousarray(lr[y0:y0 + ch, x0:x0 + cw])
        full = upscale_tiled(fn, lr, scale, TilingConfig(0, 0, 1, min_size))

        def run(name: str, blend: int = 0, downscale: int | None = None) -> None:
            t0 = time.perf_counter()
            if downscale is None:
                out = upscale_tiled(fn, lr, scale, cfg, blend=blend)
            else:
                attention = GlobalAttention(model, lr, downscale)
                with attention.active():
                    out = upscale_tiled(fn, lr, scale, cfg, blend=blend, on_tile=attention.on_tile)
            secs = time.perf_counter() - t0
            diff = np.abs(out.astype(int) - full.astype(int))
            p = psnr_between(out.astype(np.float64), full.astype(np.float64), 255.0)
            rows.append(f"| {path.name} {lr.shape[1]}x{lr.shape[0]} | {name} | {p:.2f} | {diff.max()} | "
                        f"{(diff > 0).mean() * 100:.3f}% | {secs:.1f} |")
            print(rows[-1], flush=True)

        modes = {"hard": lambda: run("hard crop"),
                 "blend": lambda: run(f"blend {args.blend} px", blend=args.blend),
                 "two-pass": lambda: run("two-pass (whole-image ESA maps)", downscale=1),
                 "two-pass-x2": lambda: run("two-pass (ESA maps from a x2-downscaled copy)", downscale=2),
                 "two-pass-blend": lambda: run(f"two-pass + blend {args.blend} px", blend=args.blend, downscale=1)}
        for mode in args.modes:
            modes[mode]()
    text = "\n".join([
        f"# Tiling seams: {args.model}, tile {args.tile}, halo {args.halo}, PyTorch eager CPU, {args.threads} threads",
        "",
        f"PSNR of the tiled uint8 output against the untiled one on DIV2K LR x4 images (RGB, no shave). Machine "
        f"shared: load average {os.getloadavg()[0]:.1f} at the end; seconds are indicative only. Made by "
        f"`python {' '.join(sys.argv)}`.",
        "",
        "| image | mode | PSNR vs untiled (dB) | max abs diff | pixels differing | seconds |",
        "|---|---|---|---|---|---|",
        *rows,
    ]) + "\n"
    print(text)
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
