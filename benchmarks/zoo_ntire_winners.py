"""SPAN (NTIRE 2024) and EFDN (NTIRE 2023) through every stage, at the acceptance sizes: the long checks the
test suite runs on small crops or marks slow.

For each variant: PSNR/SSIM on Set5 and Set14 (PyTorch), complexity (NTIRE and fvcore FLOPs), ONNX FP32 and
FP16 export with parity at 64x64, 127x93 and 339x510, then .ort, ncnn, ExecuTorch and INT8 ONNX exports
(each verified by the exporter against PyTorch), and prune's channel groups. Prints one Markdown table.

    python benchmarks/zoo_ntire_winners.py [--out DIR] [--variant span_ch28_x4 --variant efdn_x4]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from edgesr.analysis.complexity import profile_complexity
from edgesr.models import create_model
from edgesr.paths import shared_dir

VARIANTS = ("span_ch28_x4", "efdn_x4")


def run(args: list[str]) -> tuple[int, float, str]:
    """Run an edgesr CLI command; (exit code, seconds, last output line that says something)."""
    start = time.perf_counter()
    proc = subprocess.run(["edgesr", *args], capture_output=True, text=True)
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    keep = [ln for ln in lines if ln.startswith(("Set", "parity", "result", "wrote", "params", "Error"))]
    return proc.returncode, time.perf_counter() - start, " / ".join(keep[-3:]) or (lines[-1] if lines else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--variant", action="append", choices=VARIANTS)
    ap.add_argument("--out", type=Path, default=Path("out/zoo_ntire_winners"))
    args = ap.parse_args()
    datasets = shared_dir() / "datasets"
    print("| variant | stage | rc | seconds | result |")
    print("|---|---|---|---|---|")
    for variant in args.variant or VARIANTS:
        model = variant.split("_")[0]
        out = args.out / variant
        print(f"| {variant} | complexity | 0 | 0 | {profile_complexity(create_model(variant), (256, 256))} |")
        steps = [
            ("eval", ["eval", model, "--weights", variant, "-d", str(datasets / "Set5"), "-d", str(datasets / "Set14"),
                      "-q"]),
            ("onnx fp32", ["export", variant, "-o", str(out / "fp32"), "--force"]),
            ("onnx fp16", ["export", variant, "--fp16", "-o", str(out / "fp16"), "--force"]),
            *[(fmt, ["export", variant, "--format", fmt, "-o", str(out / fmt), "--force", "--parity-size", "64x64"])
              for fmt in ("ort", "ncnn", "executorch", "onnx-int8")],
            ("prune groups", ["prune", variant, "--show-groups"]),
        ]
        for stage, cmd in steps:
            rc, seconds, summary = run(cmd)
            print(f"| {variant} | {stage} | {rc} | {seconds:.0f} | {summary} |", flush=True)


if __name__ == "__main__":
    main()
