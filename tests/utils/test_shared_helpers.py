"""The helpers every exporter and report shares: JSON values, sha256, PSNR text."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from edgesr.metrics import format_psnr
from edgesr.utils.hashing import sha256_bytes, sha256_file
from edgesr.utils.jsonable import to_jsonable


def test_to_jsonable_writes_strict_json() -> None:
    value = {"psnr": math.inf, "nan": float("nan"), 3: (1, 2.5), "path": Path("a/b.onnx"),
             "np": np.float32(0.5), "arr": np.arange(3), "nested": [{"x": -math.inf}], "keep": "text"}
    out = to_jsonable(value)
    assert json.loads(json.dumps(out, allow_nan=False)) == {
        "psnr": None, "nan": None, "3": [1, 2.5], "path": "a/b.onnx", "np": 0.5, "arr": [0, 1, 2],
        "nested": [{"x": None}], "keep": "text"}


def test_sha256_of_bytes_and_file_agree(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_bytes(data) == sha256_file(path) == sha256_file(path, chunk=4096) == hashlib.sha256(data).hexdigest()


def test_format_psnr() -> None:
    assert format_psnr(38.2149) == "38.21 dB"
    assert format_psnr(math.inf) == format_psnr(None) == "inf (identical)"  # sidecars store inf as null
    assert format_psnr(None, none="n/a") == "n/a"
