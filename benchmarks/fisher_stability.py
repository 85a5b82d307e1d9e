"""How many samples does one Group Fisher decision need? Score agreement of two independent estimates.

    EDGESR_OFFLINE=1 python benchmarks/fisher_stability.py [--samples 16,64] [--batch 8] [--crop 32]

For the official RLFN x4 and real training pairs (BSD68 HR, MATLAB bicubic LR; L1 to HR + L1 to itself as
the teacher, the loss of the pruning phase), two Fisher estimates on disjoint crops are compared:
Spearman rank correlation of the memory-normalised channel scores, overlap of the 10 % lowest (what
would be pruned first), and the rank correlation of the 6 block-gate scores. Writes
benchmarks/results/fisher_stability_<env>.md.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("EDGESR_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import edgesr  # noqa: E402
from edgesr.bench.env import env_slug  # noqa: E402
from edgesr.models import create_model  # noqa: E402
from edgesr.paths import shared_dir  # noqa: E402
from edgesr.prune.stability import fisher_agreement  # noqa: E402
from edgesr.train.data import TrainPatchDataset  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def batches(ds: TrainPatchDataset, keys: np.ndarray, batch: int) -> list:
    out = []
    for i in range(0, len(keys) - batch + 1, batch):
        items = [ds[int(k)] for k in keys[i:i + batch]]
        out.append((torch.stack([it["lr"] for it in items]).float() / 255.0,
                    torch.stack([it["hr"] for it in items]).float() / 255.0))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", default="16,64", help="samples per estimate, comma-separated")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--results", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = create_model("rlfn_x4", pretrained=True).eval()
    ds = TrainPatchDataset(shared_dir() / "datasets" / "BSD68" / "HR", 4, args.crop, seed=0, cache="ram")
    rng = np.random.default_rng(0)
    rows = []
    for n in [int(v) for v in args.samples.split(",")]:
        keys = rng.permutation(len(ds))[:2 * n]
        agree = fisher_agreement(model, batches(ds, keys[:n], args.batch), batches(ds, keys[n:], args.batch),
                                 teacher=model, normalize="memory", depth=True)
        rows.append(agree)
        print(agree, flush=True)
    lines = ["# Group Fisher score stability (RLFN x4, memory-normalised)", "",
             f"Command: `python benchmarks/fisher_stability.py --samples {args.samples} --batch {args.batch} --crop "
             f"{args.crop}`; edgesr {edgesr.__version__}, {env_slug(threads=1)}, "
             f"{(time.perf_counter() - t0) / 60:.1f} min. Two estimates on disjoint {args.crop}x{args.crop} BSD68 "
             "crops (MATLAB LR), loss = L1 to HR + L1 to the unpruned model (the pruning phase's loss at step 0).",
             "", "| samples per estimate | channels | Spearman (channels) | lowest-10 % overlap | Spearman (6 blocks) |",
             "| ---: | ---: | ---: | ---: | ---: |",
             *[f"| {a.samples} | {a.channels} | {a.spearman:.3f} | {a.bottom_overlap:.2f} | "
               f"{'n/a' if a.block_spearman is None else f'{a.block_spearman:.3f}'} |" for a in rows], ""]
    path = args.results or RESULTS / f"fisher_stability_{env_slug(threads=1)}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
