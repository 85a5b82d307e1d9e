#!/usr/bin/env bash
# Set up (idempotent) and run the main job on the CPU: export official RLFN x4 to a fused ONNX with its
# sidecar, benchmark it against PyTorch eager, evaluate it on Set5, upscale a DIV2K LR image.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0 2>&1 | grep -v -e "as the 'root' user" -e "^WARNING: Location" || true
python3 -m pip install -q -e . 2>&1 | grep -v -e "as the 'root' user" -e "^WARNING: Location" || true
SHARED="${EDGESR_SHARED:-../shared}"
mkdir -p out
edgesr models
edgesr export rlfn --scale 4 -o out/exports --force
edgesr bench --onnx out/exports/rlfn_x4.onnx -b onnxruntime --size 256x256 --threads 2 --psnr-dataset "$SHARED/datasets/Set5" \
  --json out/bench_rlfn_x4_ort.json --md out/bench_rlfn_x4_ort.md --force
edgesr bench rlfn_x4 -b torch -b onnxruntime --size 256x256 --threads 2 --work-dir out/exports \
  --md out/bench_rlfn_x4_torch_vs_ort.md --force
edgesr eval rlfn --scale 4 --dataset "$SHARED/datasets/Set5" --json out/rlfn_x4_set5.json --force -q
edgesr upscale rlfn "$SHARED/datasets/DIV2K_test_LR_x4/0901.png" out/0901_rlfn_x4.png --force
