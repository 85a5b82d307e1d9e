"""Acceptance: exported ONNX (FP32 and FP16) of the real models matches PyTorch on real DIV2K crops.

Each model is exported once with --fp16; that export measures the FP32 graph against PyTorch and the
FP16 graph against the FP32 graph (recorded in the sidecar). The test reads the figures back from the
sidecar on disk and re-checks the written artifact independently. The fast suite verifies at two sizes
(one square, one odd); the slow test repeats it at the three acceptance sizes (`ExportOptions`' default,
up to 339x510, which alone costs 85% of the parity runs).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from edgesr.export import Sidecar, onnxruntime_sr_function
from edgesr.export.verify import create_session, parity_images, torch_reference_255
from edgesr.models import create_model

MODELS = ["rlfn_x4", "rlfn_s_x4", "rfdn_x4", "imdn_x4", "edsr_baseline"]
SIZES = [(64, 64), (127, 93), (339, 510)]
FAST_SIZES = ((64, 64), (127, 93))


@pytest.mark.parametrize("variant", MODELS)
def test_fp32_and_fp16_parity(variant: str, export_cache, datasets_dir: Path) -> None:
    _check_fp32_and_fp16_parity(variant, export_cache(variant, fp16=True, parity_sizes=FAST_SIZES), FAST_SIZES)


@pytest.mark.slow
@pytest.mark.parametrize("variant", MODELS)
def test_fp32_and_fp16_parity_at_acceptance_sizes(variant: str, export_cache, datasets_dir: Path) -> None:
    _check_fp32_and_fp16_parity(variant, export_cache(variant, fp16=True), SIZES)


def _check_fp32_and_fp16_parity(variant: str, res, sizes) -> None:
    side = Sidecar.for_artifact(res.path, required=True)
    assert side.to_dict() == res.sidecar.to_dict()
    # real DIV2K LR crops at the given sizes
    assert [(e.height, e.width) for e in side.parity.entries] == list(sizes)
    assert all(e.image.startswith(("09", "10")) and e.image[:4].isdigit() for e in side.parity.entries)
    for e in side.parity.entries:
        assert e.max_abs_diff <= 1e-3, (variant, e)          # FP32 ONNX vs PyTorch, 0..255
        assert e.fp16_psnr_db is not None and e.fp16_psnr_db >= 45.0, (variant, e)  # FP16 vs FP32
    assert side.parity.max_abs_diff == max(e.max_abs_diff for e in side.parity.entries)

    # the artifact on disk is what the sidecar describes
    data = res.path.read_bytes()
    assert side.artifact.bytes == len(data) and side.artifact.sha256 == hashlib.sha256(data).hexdigest()
    assert side.export.precision == "fp16" and side.export.io == "float01" and not side.export.fp16_io
    assert [t.dtype for t in side.inputs] == ["float32"] and [t.dtype for t in side.outputs] == ["float32"]
    assert side.inputs[0].shape == ["batch", 3, "height", "width"]
    assert side.graph.op_counts.get("Cast", 0) >= 2 and side.graph.nodes == sum(side.graph.op_counts.values())
    assert side.scale == 4

    # independent re-check of the written FP16 file against PyTorch, with a batch of 2
    if variant == "edsr_baseline":
        torch.manual_seed(0)  # the same random init as the export (see conftest)
        model = create_model("edsr_baseline", scale=4)
    else:
        model = create_model(variant)
    (_, img), = parity_images([(40, 36)])
    ref = torch_reference_255(model.eval(), img, "float01")
    x = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    out = onnxruntime_sr_function(res.path)(np.concatenate([x, x[:, :, ::-1].copy()]))
    assert out.shape == (2, 3, 160, 144)
    err = np.abs(out[:1].astype(np.float64) * 255.0 - ref)
    assert 10 * np.log10(255.0 ** 2 / np.mean(err ** 2)) >= 45.0


def test_headline_rlfn_sidecar(export_cache, weights_dir: Path) -> None:
    """`edgesr export rlfn --fp16`: what the sidecar promises a C++/Android consumer."""
    side = export_cache("rlfn_x4", fp16=True, parity_sizes=FAST_SIZES).sidecar
    assert side.model.name == "rlfn" and side.model.variant == "rlfn_x4"
    assert side.model.weights_sha256 == "8c7edb57dfc89048bafba29d591d4c27d4099964b4a9e22df23d6dc257a637c0"
    assert Path(side.model.weights_path).name == "rlfn_x4.pth"
    assert side.min_size == 15 and side.halo == 32 and side.alignment == 1
    assert side.shape_profile.min == [1, 3, 15, 15] and side.shape_profile.opt == [1, 3, 256, 256]
    assert side.inputs[0].value_range == [0.0, 1.0] and not side.outputs[0].clamped
    assert side.export.opset == 18 and side.export.exporter in ("dynamo", "torchscript")
    assert side.export.simplified
    assert set(side.versions) >= {"edgesr", "torch", "onnx", "onnxruntime"}
    counts = side.graph.op_counts
    assert counts["Conv"] == 57 and counts["Resize"] == 6 and counts["DepthToSpace"] == 1
    assert side.graph.nodes <= side.graph.nodes_exported + 2  # simplification never grows it (+2 Casts)
    # FP16 halves the file
    fp32 = export_cache("rlfn_x4", parity_sizes=((64, 64),)).sidecar
    assert side.artifact.bytes < 0.55 * fp32.artifact.bytes
    assert fp32.graph.op_counts.get("Cast", 0) == 0


def test_set5_through_onnxruntime_matches_pytorch(export_cache, datasets_dir: Path) -> None:
    """RLFN x4 Set5 PSNR through ONNX Runtime: FP32 within 0.01 dB, FP16 within 0.05 dB of PyTorch's 32.2130."""
    from edgesr.data import open_eval_dataset
    from edgesr.evaluate import evaluate

    pairs = open_eval_dataset(datasets_dir / "Set5", 4)
    torch_psnr = create_model("rlfn_x4").pretrained_cfg.expected["Set5"][0]
    assert torch_psnr == pytest.approx(32.2130)
    fp32 = export_cache("rlfn_x4", parity_sizes=((64, 64),))
    fp16 = export_cache("rlfn_x4", fp16=True, parity_sizes=FAST_SIZES)
    r32 = evaluate(onnxruntime_sr_function(fp32.path), pairs, 4, dataset="Set5", min_size=fp32.sidecar.min_size)
    r16 = evaluate(onnxruntime_sr_function(fp16.path), pairs, 4, dataset="Set5", min_size=fp16.sidecar.min_size)
    assert len(r32.images) == 5
    assert abs(r32.psnr - torch_psnr) <= 0.01, r32.psnr
    assert abs(r16.psnr - torch_psnr) <= 0.05, r16.psnr


def test_uint8_io_matches_pytorch_pipeline(export_cache, datasets_dir: Path) -> None:
    """--io uint8: uint8 NCHW in, uint8 out, within one level of edgesr's PyTorch upscale path."""
    from edgesr.inference import torch_sr_function, upscale_array

    res = export_cache("rlfn_x4", io="uint8", parity_sizes=((64, 64),))
    side = res.sidecar
    assert side.inputs[0].dtype == "uint8" and side.outputs[0].dtype == "uint8" and side.outputs[0].clamped
    counts = side.graph.op_counts
    assert counts["Cast"] == 2 and counts["Round"] == 1 and counts["Clip"] == 1
    assert side.parity.entries[0].max_abs_diff <= 1.0

    (_, img), = parity_images([(57, 83)])
    expected = upscale_array(torch_sr_function(create_model("rlfn_x4")), img, 4)  # HxWx3 uint8
    session = create_session(res.path)
    out = session.run(None, {"input": np.ascontiguousarray(img.transpose(2, 0, 1)[None])})[0]
    assert out.dtype == np.uint8 and out.shape == (1, 3, 57 * 4, 83 * 4)
    diff = np.abs(out[0].transpose(1, 2, 0).astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    # and the artifact runs as an ordinary SR function (sidecar read for the io convention)
    y = onnxruntime_sr_function(res.path)((img.astype(np.float32) / 255).transpose(2, 0, 1)[None])
    assert np.abs(y[0].transpose(1, 2, 0) * 255 - expected).max() <= 1.0001
