"""SPAN (NTIRE 2024) and EFDN (NTIRE 2023) through ONNX: parity with PyTorch at three sizes, Set5 through
ONNX Runtime equal to the reference figures, and the deploy ONNX of a trained training-time form equal to
that form's eager output. Small crops keep it cheap; `benchmarks/zoo_ntire_winners.py` covers the
acceptance sizes and every other artifact format."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgesr.data import open_eval_dataset
from edgesr.evaluate import evaluate
from edgesr.artifacts import Sidecar
from edgesr.export import ExportOptions, export_onnx, onnxruntime_sr_function
from edgesr.export.verify import parity_images, torch_reference_255
from edgesr.models import create_model

SIZES = ((32, 32), (47, 61), (64, 96))
# variant -> (Conv nodes of the deploy graph, Set5 PSNR / SSIM of the official code, reference.md)
OFFICIAL = {"span_ch28_x4": (22, 31.7165, 0.89024), "efdn_x4": (65, 32.0537, 0.89366)}


@pytest.mark.parametrize("variant", list(OFFICIAL))
def test_fp32_parity_and_set5_through_onnxruntime(variant: str, export_cache, datasets_dir: Path) -> None:
    convs, psnr, ssim = OFFICIAL[variant]
    res = export_cache(variant, parity_sizes=SIZES)
    side = Sidecar.for_artifact(res.path, required=True)
    assert [(e.height, e.width) for e in side.parity.entries] == list(SIZES)
    assert all(e.max_abs_diff <= 1e-3 for e in side.parity.entries), side.parity.entries  # 0..255
    assert side.graph.op_counts["Conv"] == convs and side.graph.op_counts["DepthToSpace"] == 1
    assert side.inputs[0].value_range == [0.0, 1.0] and side.min_size == create_model(variant).min_input_size

    pairs = open_eval_dataset(datasets_dir / "Set5", 4)
    out = evaluate(onnxruntime_sr_function(res.path), pairs, 4, dataset="Set5", min_size=side.min_size)
    assert out.psnr == pytest.approx(psnr, abs=0.01) and out.ssim == pytest.approx(ssim, abs=0.0005)


def test_span_halo_and_efdn_clamp_in_the_sidecar(export_cache) -> None:
    span = Sidecar.for_artifact(export_cache("span_ch28_x4", parity_sizes=SIZES).path, required=True)
    efdn = Sidecar.for_artifact(export_cache("efdn_x4", parity_sizes=SIZES).path, required=True)
    assert span.halo == create_model("span_ch28_x4").tiling_halo == 21  # exact tiling (receptive radius)
    assert efdn.halo == 32  # ESA: the default halo of attention models
    assert efdn.graph.op_counts.get("Clip", 0) == 1 and efdn.graph.op_counts["Resize"] == 4


@pytest.mark.parametrize("rep_name,cfg", [("span_rep", {"feature_channels": 28}), ("efdn_rep", {})])
def test_deploy_onnx_of_a_trained_training_form(rep_name: str, cfg: dict, tmp_path: Path, adam_steps) -> None:
    """Random init, a few Adam steps, export: the artifact is the deploy form and matches the
    training-time model's eager output (the export folds a copy and measures against the original)."""
    torch.manual_seed(0)
    model = create_model(rep_name, scale=4, **cfg)
    last = model.upsampler[0] if rep_name == "span_rep" else model.tail[0]
    with torch.no_grad():  # default init puts SPAN's output near 24 (x 255): shrink it to the image range,
        last.weight.mul_(0.02)  # where a 1e-3 tolerance on 0..255 is within float32's reach
    adam_steps(model)
    model.eval()
    res = export_onnx(model, tmp_path / f"{rep_name}.onnx", ExportOptions(parity_sizes=((24, 20), (31, 17))))
    plain_convs = {"span_rep": 22, "efdn_rep": 65}[rep_name]
    assert res.sidecar.graph.op_counts["Conv"] == plain_convs
    assert res.sidecar.export.reparam.applied
    assert all(e.max_abs_diff <= 1e-3 for e in res.sidecar.parity.entries)
    # independently: ONNX Runtime on a real crop vs the (unfolded) training-time model in eager mode
    (_, img), = parity_images([(28, 36)])
    ref = torch_reference_255(model, img, "float01")
    x = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    out = onnxruntime_sr_function(res.path)(x)[0].astype(np.float64) * 255.0
    assert np.abs(out - ref).max() <= 1e-3
    assert any(m.__class__.__name__ in ("Conv3XC", "EDBB") for m in model.modules())  # export left it as is


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(OFFICIAL))
def test_fp16_parity(variant: str, export_cache) -> None:
    side = export_cache(variant, fp16=True, parity_sizes=SIZES).sidecar
    for e in side.parity.entries:
        assert e.max_abs_diff <= 1e-3 and e.fp16_psnr_db is not None and e.fp16_psnr_db >= 60.0, e
