"""Initial weights: strict loads, EDSR's x2 -> x4 initialisation (upsampler skipped), scale mismatch errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgesr.errors import WeightsError
from edgesr.models import create_model, get_model_entry
from edgesr.models.weights import read_checkpoint
from edgesr.train import load_init_weights


def test_strict_init_from_a_pretrained_name(weights_dir: Path) -> None:
    model = create_model("rlfn", scale=4)
    report = load_init_weights(model, "rlfn_x4", entry=get_model_entry("rlfn"), scale=4)
    official = read_checkpoint(weights_dir / "rlfn_x4.pth")
    assert report.mode == "strict" and report.loaded == len(official)
    for k, v in model.state_dict().items():
        assert torch.equal(v, official[k])


def test_rlfn_x2_weights_initialise_an_x4_model_except_the_upsampler(weights_dir: Path) -> None:
    torch.manual_seed(0)
    model = create_model("rlfn", scale=4)
    fresh_up = model.upsampler[0].weight.detach().clone()
    report = load_init_weights(model, weights_dir / "rlfn_x2.pth", entry=get_model_entry("rlfn"), scale=4,
                               cross_scale=True)
    x2 = read_checkpoint(weights_dir / "rlfn_x2.pth")
    assert report.mode == "cross-scale" and report.source_scale == 2
    assert report.upsampler == ["upsampler.0"]
    assert report.skipped == ["upsampler.0.bias", "upsampler.0.weight"] == report.fresh
    sd = model.state_dict()
    assert report.loaded == len(x2) - 2 == len(sd) - 2
    for k, v in x2.items():
        if not k.startswith("upsampler."):
            assert torch.equal(sd[k], v), k
    assert torch.equal(model.upsampler[0].weight, fresh_up)  # left at its initialisation
    assert "upsampler.0 skipped" in report.summary()


def test_edsr_x2_to_x4_keeps_the_scale_independent_tail_conv(tmp_path: Path) -> None:
    cfg = {"n_resblocks": 2, "n_feats": 8}
    x2 = create_model("edsr_baseline", scale=2, **cfg)
    path = tmp_path / "x2.pth"
    torch.save(x2.state_dict(), path)
    x4 = create_model("edsr_baseline", scale=4, **cfg)
    report = load_init_weights(x4, path, entry=get_model_entry("edsr_baseline"), scale=4, cfg=cfg, cross_scale=True)
    assert report.upsampler == ["tail.0"]
    assert report.skipped == ["tail.0.0.bias", "tail.0.0.weight"]
    assert report.fresh == ["tail.0.0.bias", "tail.0.0.weight", "tail.0.2.bias", "tail.0.2.weight"]
    assert torch.equal(x4.tail[1].weight, x2.tail[1].weight)  # final conv n_feats -> 3 is loaded
    assert torch.equal(x4.body[0].body[0].weight, x2.body[0].body[0].weight)


def test_scale_mismatch_without_cross_scale_is_a_clear_error(weights_dir: Path) -> None:
    model = create_model("rlfn", scale=4)
    with pytest.raises(WeightsError, match=r"(?s)holds x2 weights \(rlfn x2\), but scale 4 was asked for.*"
                                           "--init-cross-scale"):
        load_init_weights(model, weights_dir / "rlfn_x2.pth", entry=get_model_entry("rlfn"), scale=4)


def test_other_architecture_is_refused_even_cross_scale(weights_dir: Path) -> None:
    model = create_model("rlfn_s", scale=4)
    with pytest.raises(WeightsError, match="does not match rlfn_s x4"):
        load_init_weights(model, weights_dir / "rlfn_x2.pth", entry=get_model_entry("rlfn_s"), scale=4,
                          cross_scale=True)
    with pytest.raises(WeightsError, match="no such file"):
        load_init_weights(model, "nonexistent_x4", entry=get_model_entry("rlfn_s"), scale=4)
