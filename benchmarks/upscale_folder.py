"""Folder upscaling at scale: the 100 DIV2K LR x4 images plus one corrupt file, through an exported artifact.

Checks what a user relies on: images/s, the corrupt file reported, exit code 1, every other output written
and equal to the single-image path, and `--shard 1/2` + `--shard 2/2` equal to the unsharded run.

    python benchmarks/upscale_folder.py --artifact out/exports/rlfn_x4.onnx [--limit 100] [--md FILE]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edgesr.data import find_images
from edgesr.paths import shared_dir


def cli(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgesr.cli.main", "upscale", *args], capture_output=True, text=True)
    return proc, time.perf_counter() - t0


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--artifact", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--tile", type=int, default=256, help="--tile of every run (0: whole images)")
    ap.add_argument("--single-checks", type=int, default=100,
                    help="how many outputs to compare against the single-image path (in-process upscale_file)")
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edgesr_folder_"))
    src = work / "in"
    src.mkdir()
    images = find_images(shared_dir() / "datasets" / "DIV2K_test_LR_x4")[: args.limit]
    for path in images:
        os.symlink(path, src / path.name)
    (src / "0950_corrupt.png").write_bytes((shared_dir() / "datasets" / "DIV2K_test_LR_x4" / "0950.png")
                                           .read_bytes()[:3000])  # a truncated PNG
    engine = ["--artifact", str(args.artifact), "--tile", str(args.tile)]
    load_before = os.getloadavg()
    full, t_full = cli(*engine, str(src), str(work / "all"))
    load_after = os.getloadavg()
    outputs = sorted((work / "all").glob("*.png"))
    rate = len(outputs) / t_full

    shard_runs = [cli(*engine, str(src), str(work / "sharded"), "--shard", f"{k}/2")
                  for k in (1, 2)]
    sharded = sorted((work / "sharded").glob("*.png"))
    shards_equal = [p.name for p in sharded] == [p.name for p in outputs] and all(
        np.array_equal(pixels(a), pixels(b)) for a, b in zip(outputs, sharded))

    # the single-image path: the function `edgesr upscale ARTIFACT IMG OUT` runs, in this process
    from edgesr.export.tensorrt.profiles import plan_runner_tiling
    from edgesr.inference.files import UpscaleOptions, upscale_file
    from edgesr.runtimes import create_runner

    runner = create_runner(args.artifact).activate()
    plan, scale = plan_runner_tiling(runner, args.tile, 32)
    fn = plan.wrap(runner.as_sr_function(), scale)
    opts = UpscaleOptions(tile=plan.tile, halo=plan.halo, min_size=plan.min_size)
    single_equal = 0
    checked = images[: args.single_checks]
    for path in checked:
        ref = work / "single" / path.name
        upscale_file(fn, path, ref, scale, options=opts)
        single_equal += np.array_equal(pixels(ref), pixels(work / "all" / path.name))
    cli_one, _ = cli(*engine, str(images[0]), str(work / "cli_single.png"))
    cli_equal = cli_one.returncode == 0 and np.array_equal(pixels(work / "cli_single.png"),
                                                          pixels(work / "all" / images[0].name))

    reported = "0950_corrupt.png" in full.stderr
    lines = [
        f"# Folder upscale: {len(images)} DIV2K LR x4 images + 1 corrupt file, {args.artifact.name} (ONNX Runtime CPU)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared; load average "
        f"{load_before[0]:.1f} before / {load_after[0]:.1f} after the timed run. Command: "
        f"`edgesr upscale --artifact {args.artifact.name} IN_DIR OUT_DIR --tile {args.tile}` (halo 32). Made by "
        f"`python {' '.join(sys.argv)}`.",
        "",
        "| check | result |",
        "|---|---|",
        f"| wall time, whole folder (incl. start-up, PNG writes) | {t_full:.1f} s |",
        f"| images/s | {rate:.3f} |",
        f"| exit code | {full.returncode} (expected 1) |",
        f"| corrupt file reported | {'yes' if reported else 'NO'} |",
        f"| outputs written | {len(outputs)} of {len(images)} |",
        f"| equal to the single-image path (upscale_file, in-process) | {single_equal} of {len(checked)} |",
        f"| equal to `edgesr upscale --artifact ... IMG OUT` (CLI, first image) | {'yes' if cli_equal else 'NO'} |",
        f"| `--shard 1/2` + `--shard 2/2` exit codes | {shard_runs[0][0].returncode}, {shard_runs[1][0].returncode} |",
        f"| shards together equal the unsharded run | {'yes' if shards_equal else 'NO'} ({len(sharded)} files; "
        f"{shard_runs[0][1]:.1f} s + {shard_runs[1][1]:.1f} s) |",
        "",
        "Summary line printed by the run:",
        "",
        "```",
        *[line for line in full.stdout.splitlines() if "->" in line],
        *[line for line in full.stderr.splitlines()  # the failure list, not the progress bars' control codes
          if line.startswith(("Error", "  ")) and line.strip() and "\x1b" not in line],
        "```",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(text)
    shutil.rmtree(work)
    ok = full.returncode == 1 and reported and len(outputs) == len(images) and shards_equal \
        and single_equal == len(checked) and cli_equal
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
