"""NaN/Inf never becomes an image: weights are checked on load, every tile of every runtime on output."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgesr.errors import NonFiniteError
from edgesr.inference import torch_sr_function, upscale_array
from edgesr.models import create_model


def test_nan_weights_refused_on_load_naming_the_tensor(bad_files: Path, cli, workdir: Path) -> None:
    key = (bad_files / "nan_key.txt").read_text()
    res = cli("upscale", "rlfn", "-s", "2", "-w", str(bad_files / "nan_rlfn_x2.pth"), str(bad_files / "lr.png"),
              "out.png")
    assert res.code == 1 and "Traceback" not in res.output, res.output
    assert f"tensor {key!r}" in res.stderr and "NaN/Inf" in res.stderr
    assert not (workdir / "out.png").exists()


def test_inf_after_load_names_the_first_non_finite_layer() -> None:
    model = create_model("rlfn_ntire", pretrained=True)
    with torch.no_grad():
        model.block_2.c1_r.weight[0, 0, 0, 0] = float("inf")
    lr = np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8)
    with pytest.raises(NonFiniteError, match=r"layer 'block_2\.c1_r' \(Conv2d\)"):
        upscale_array(torch_sr_function(model), lr, 4, tile=24, halo=4)
    with pytest.raises(NonFiniteError, match="block_2.c1_r"):  # through the self-ensemble wrapper too
        upscale_array(torch_sr_function(model), lr, 4, self_ensemble=True)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch"])
def test_every_runtime_output_is_checked(backend: str, bad_files: Path) -> None:
    from edgesr.runtimes import create_runner

    if backend == "torch":
        model = create_model("rlfn_ntire", pretrained=True)
        with torch.no_grad():
            model.conv_1.bias[0] = float("nan")
        runner, scale = create_runner(model, "torch"), 4
    else:
        runner, scale = create_runner(bad_files / "nan_x2.onnx", backend), 2
    lr = np.full((20, 16, 3), 128, np.uint8)
    with runner, pytest.raises(NonFiniteError, match="NaN/Inf"):
        upscale_array(runner.as_sr_function(), lr, scale, tile=8, halo=2, min_size=runner.min_size)


def test_fp16_overflow_is_caught(bad_files: Path) -> None:
    from edgesr.runtimes import create_runner

    with create_runner(bad_files / "overflow_fp16_x2.onnx") as runner:
        assert runner.io.describe().startswith("float16")
        with pytest.raises(NonFiniteError, match="artifact onnxruntime"):
            upscale_array(runner.as_sr_function(), np.full((8, 8, 3), 255, np.uint8), 2)


def test_finite_outputs_pass_unchanged(bad_files: Path) -> None:
    from edgesr.runtimes import create_runner

    lr = np.random.default_rng(1).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    with create_runner(bad_files / "tiny_x2.onnx") as runner:
        sr = upscale_array(runner.as_sr_function(), lr, 2)
    # the tiny graph is a 1x1 conv of weight 0.25 summing 3 channels, then DepthToSpace
    expect = np.clip(lr.astype(np.float32).sum(axis=2) * 0.25, 0, 255)
    assert sr.shape == (18, 14, 3)
    assert np.abs(sr[::2, ::2, 0].astype(np.float32) - expect).max() <= 0.5 + 1e-3


def test_nan_artifact_cli_writes_nothing(bad_files: Path, cli, workdir: Path) -> None:
    res = cli("upscale", "--artifact", str(bad_files / "nan_x2.onnx"), "-s", "2", str(bad_files / "lr.png"),
              "sub/out.png")
    assert res.code == 1 and "NaN/Inf" in res.stderr and "Traceback" not in res.output
    assert list(workdir.iterdir()) == []  # neither the image nor the folder created for it
