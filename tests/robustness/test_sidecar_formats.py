"""Every format of one model in one folder: no sidecar collides, no --force is needed, and each artifact runs with
its own sidecar (checked against its files) and gives the same image."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgesr.artifacts import Sidecar, load_schema
from edgesr.cli.main import main
from edgesr.runtimes import create_runner

FORMATS = {"onnx": ("m.onnx",), "ort": ("m.ort", "m.required_operators.config"), "ncnn": ("m.param", "m.bin"),
           "executorch": ("m.pte",)}


def _export(folder: Path, fmt: str) -> None:
    args = ["export", "rlfn", "--scale", "2", "--random-init", "--name", "m", "--format", fmt, "--parity-size",
            "32x32", "--opt-shape", "64x64", "--max-shape", "128x128", "--exporter", "torchscript", "--threads", "1",
            "-o", str(folder)]
    with pytest.raises(SystemExit) as info:
        main(args)
        raise SystemExit(0)
    assert info.value.code in (0, None), f"edgesr {' '.join(args)} exited with {info.value.code}"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    import torch

    out = tmp_path_factory.mktemp("formats")
    for fmt in FORMATS:
        torch.manual_seed(0)  # one model: the same random weights for every format
        _export(out, fmt)
    return out


def test_all_formats_share_a_folder_without_force(folder: Path) -> None:
    expected = {f for files in FORMATS.values() for f in files} | {f"{files[0]}.json" for files in FORMATS.values()}
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    for fmt, files in FORMATS.items():
        data = json.loads((folder / f"{files[0]}.json").read_text())
        validator.validate(data)  # what edgesr writes is valid under the schema it publishes
        assert data["artifact"]["file"] == files[0] and [f["file"] for f in data["files"]] == list(files)


def test_each_artifact_runs_with_its_own_sidecar(folder: Path) -> None:
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    outputs = {}
    for fmt, files in FORMATS.items():
        side = Sidecar.for_artifact(folder / files[0], required=True)
        assert side.source_path == folder / f"{files[0]}.json"
        with create_runner(folder / files[0]) as runner:
            assert runner.artifact.sidecar_path == side.source_path and runner.scale == 2
            outputs[fmt] = runner.infer(x)
        assert outputs[fmt].shape == (1, 3, 64, 64)
    for fmt, y in outputs.items():
        np.testing.assert_allclose(y, outputs["onnx"], atol=2e-3, err_msg=fmt)
