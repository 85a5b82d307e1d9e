"""`edgesr prune --depth` through the real entry point: a block goes, the folder rebuilds from its config,
and the depth-pruned model exports to ONNX with dynamic H/W that matches PyTorch at sizes it was not
exported or verified at."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgesr.models import create_model

TINY_RLFN = {"feature_channels": 12, "num_blocks": 3, "esa_channels": 6}


@pytest.fixture(scope="module")
def tiny_rlfn_weights(tmp_path_factory) -> Path:
    """A small RLFN x2 checkpoint whose last block outputs 0, so nothing before it matters to the loss:
    blocks 1-2 score 0 and removing one is cheaper than any channel (the CLI must then drop it)."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = create_model("rlfn", scale=2, **TINY_RLFN)
    with torch.no_grad():
        model.block_3.esa.conv4.weight.zero_()
        model.block_3.esa.conv4.bias.fill_(-1e4)
        model.block_3.c5.weight.zero_()
    path = tmp_path_factory.mktemp("weights") / "tiny_rlfn_x2.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def lr_folder(lr_crops) -> Path:
    return lr_crops(2, 64)


def test_prune_depth_drops_a_block_and_the_folder_exports_with_dynamic_hw(
        tiny_rlfn_weights: Path, lr_folder: Path, tmp_path: Path, run_edgesr) -> None:
    import onnxruntime as ort

    from edgesr.prune import load_pruned

    out = tmp_path / "pruned"
    code, stdout, err = run_edgesr("prune", "-w", str(tiny_rlfn_weights), "--depth", "--target", "flops=0.6",
                                   "--images", str(lr_folder), "--prune-every", "2", "--round-to", "2",
                                   "--crop", "16", "--batch", "2", "--no-eval", "--no-latency", "--threads", "1",
                                   "-q", "-o", str(out))
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["blocks_removed"], config.get("blocks_removed")
    assert config["base_config"]["num_blocks"] < TINY_RLFN["num_blocks"]
    model = load_pruned(out).eval()
    assert model.num_blocks == config["base_config"]["num_blocks"]

    # export the folder (verified by export itself at two sizes), then run the ONNX file at two sizes that
    # it was never traced or verified at
    code, stdout, err = run_edgesr("export", "--pruned", str(out), "-o", str(tmp_path / "onnx"),
                                   "--parity-size", "24x24", "--parity-size", "37x29", "--threads", "1")
    assert code == 0, err
    (onnx_path,) = sorted((tmp_path / "onnx").glob("*.onnx"))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for h, w in ((31, 45), (50, 19)):
        x = rng.random((1, 3, h, w), dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        assert got.shape == ref.shape == (1, 3, 2 * h, 2 * w)
        assert float(np.abs(got - ref).max()) <= 1e-3
    # without MODEL, a folder that is not a pruned model is refused in one line
    code, stdout, err = run_edgesr("export", "--pruned", str(tmp_path / "onnx"), "-o", str(tmp_path / "again"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a folder written by `edgesr prune`" in err
    assert not (tmp_path / "again").exists()
