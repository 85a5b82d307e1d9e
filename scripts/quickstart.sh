#!/usr/bin/env bash
# Upscale demo that needs nothing but this repository: installs edgesr (with video support), makes its own
# sample picture, folder and video, and upscales them x4 with RLFN. The official RLFN weights are fetched
# from their GitHub URL (sha256-verified) unless EDGESR_WEIGHTS_DIR names a folder that holds rlfn_x4.pth.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0 2>&1 | grep -v -e "as the 'root' user" -e "^WARNING: Location" || true
python3 -m pip install -q -e ".[video]" 2>&1 | grep -v -e "as the 'root' user" -e "^WARNING: Location" || true
python3 scripts/make_sample.py out/sample
edgesr upscale rlfn out/sample/sample.png out/sample/sample_x4.png --force
edgesr upscale rlfn out/sample/folder out/sample/folder_x4 --recursive --force
edgesr upscale rlfn out/sample/sample.mp4 out/sample/sample_x4.mp4 --force
