"""Does the training loop learn? RLFN-S x2 from scratch on BSD68 HR patches, Set5 PSNR along the way.

    python benchmarks/train_rlfn_s_x2.py [--steps 700] [--patch 32] [--batch 8] [--val-every 50] [--threads 1]

Trains with `edgesr.train.train` (L1, Adam 5e-4, LR halved every steps/5: RLFN's stage-1 recipe,
shortened), validates on Set5 (Y-channel PSNR, crop = scale, MATLAB bicubic LR shipped with Set5),
prints the curve and writes a Markdown result to benchmarks/results/train_rlfn_s_x2_<env>.md.
Budgeted for a shared 2-core CPU (about 6 minutes with the defaults): small patches, small batch, one
thread (on a loaded 2-core machine two OpenMP threads per process run slower than one).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

import edgesr
from edgesr.data import imresize, open_eval_dataset
from edgesr.metrics import psnr
from edgesr.paths import shared_dir
from edgesr.train import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"


def bicubic_psnr(set5: Path, scale: int) -> float:
    """Set5 PSNR of MATLAB bicubic upscaling: the bar a trained model has to clear."""
    ds = open_eval_dataset(set5, scale)
    scores = []
    for i in range(len(ds)):
        item = ds[i]
        up = imresize(item["lr"], output_shape=item["hr"].shape[:2])
        scores.append(psnr(up, item["hr"], crop_border=scale, test_y_channel=True))
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--patch", type=int, default=32, help="LR patch (HR patch = 2x)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, default=None, help="run folder (default: a temporary one)")
    ap.add_argument("--results", type=Path, default=None, help="Markdown result file (default: benchmarks/results/)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = shared_dir() / "datasets"
    set5, bsd68 = data / "Set5", data / "BSD68" / "HR"

    with TemporaryDirectory() as tmp:
        out = args.output or Path(tmp) / "run"
        cfg = TrainConfig("rlfn_s", hr_dir=bsd68, scale=2, output_dir=out, patch=args.patch, batch=args.batch,
                          steps=args.steps, lr=args.lr, loss="l1", schedule="step", val_dir=set5,
                          val_every=args.val_every, save_every=max(args.steps // 2, 1), seed=args.seed,
                          device=args.device, progress=sys.stderr.isatty(), force=True)
        start = time.perf_counter()
        result = train(cfg)
        wall = time.perf_counter() - start
    bicubic = bicubic_psnr(set5, 2)

    curve = [(r["step"], r["psnr"], r["ssim"]) for r in result.val_history]
    psnrs = [p for _, p, _ in curve]
    drops = [(curve[i][0], psnrs[i - 1] - psnrs[i]) for i in range(1, len(psnrs)) if psnrs[i] < psnrs[i - 1]]
    env = "cpu" if args.device == "cpu" else "cuda"
    device = (f"CPU, {args.threads} thread(s)" if env == "cpu"
              else torch.cuda.get_device_name(torch.device(args.device)))
    lines = [
        "# RLFN-S x2 trained from scratch on BSD68 patches: Set5 PSNR along training",
        "",
        f"Setup: `benchmarks/train_rlfn_s_x2.py --steps {args.steps} --patch {args.patch} --batch {args.batch} "
        f"--lr {args.lr:g} --val-every {args.val_every} --threads {args.threads}`; edgesr {edgesr.__version__}, "
        f"torch {torch.__version__}, Python {platform.python_version()}, {device} ({platform.machine()}).",
        f"Data: 68 BSD68 HR images, LR = MATLAB bicubic (computed once, cached in RAM), random {args.patch}px LR / "
        f"{2 * args.patch}px HR patches with flips/rotations. Recipe: L1, Adam (0.9, 0.999, 1e-8), LR "
        f"{args.lr:g} halved every {max(1, args.steps // 5)} steps (RLFN stage 1, shortened). Validation: Set5 "
        "(shipped MATLAB LR), Y-channel PSNR/SSIM, crop = 2, via `edgesr.evaluate`.",
        "",
        "| step | Set5 PSNR (dB) | SSIM |",
        "|---:|---:|---:|",
        *[f"| {s} | {p:.3f} | {q:.4f} |" for s, p, q in curve],
        "",
        f"- first validation {psnrs[0]:.2f} dB -> final {psnrs[-1]:.2f} dB (best {max(psnrs):.2f} dB); "
        f"{len(drops)} of {len(psnrs) - 1} intervals went down"
        + (f" (largest drop {max(d for _, d in drops):.2f} dB)" if drops else "") + ".",
        f"- MATLAB bicubic x2 on the same Set5: {bicubic:.2f} dB; official RLFN-S x2 weights: 38.03 dB "
        "(1e6 iterations x 3 stages of 64-image batches of 256px HR patches).",
        f"- wall time {wall:.0f} s for {result.steps} steps and {len(curve)} validations.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    path = args.results or RESULTS / f"train_rlfn_s_x2_{env}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    return {"curve": curve, "bicubic": bicubic, "wall": wall, "result": result}


if __name__ == "__main__":
    main()
