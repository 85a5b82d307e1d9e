#!/usr/bin/env bash
# Set up (idempotent) and run the main job on the CPU: evaluate and upscale with the official RLFN x4.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0 2>&1 | grep -v -e "as the 'root' user" -e "^WARNING: Location" || true
python3 -m pip install -q -e . 2>&1 | grep -v -e "as the 'root' user" -e "^WARNING: Location" || true
SHARED="${EDGESR_SHARED:-../shared}"
mkdir -p out
edgesr models
edgesr eval rlfn --scale 4 --dataset "$SHARED/datasets/Set5" --json out/rlfn_x4_set5.json --force
edgesr upscale rlfn "$SHARED/datasets/DIV2K_test_LR_x4/0901.png" out/0901_rlfn_x4.png --force
