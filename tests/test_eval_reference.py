"""Acceptance: PSNR/SSIM of the official weights equal the official code's figures (reference.md)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgesr.data import open_eval_dataset
from edgesr.evaluate import evaluate
from edgesr.inference import torch_sr_function
from edgesr.models import create_model, list_pretrained

# Every official variant on Set5, and RLFN x4 on Set14, in the fast suite; the other Set14 runs (5-17 s of
# CPU each) are slow-marked (`pytest -m slow`).
CASES = [(v.name, ds) if ds == "Set5" or v.name == "rlfn_x4" else pytest.param(v.name, ds, marks=pytest.mark.slow)
         for v in list_pretrained() if v.name in
         ("rlfn_x4", "rlfn_x2", "rlfn_s_x4", "rlfn_ntire_x4", "rfdn_x4", "imdn_x4") for ds in ("Set5", "Set14")]
# The NTIRE 2023/2024 winners (reference.md, "NTIRE efficient-SR winners after RLFN"); Set14 runs ~20 s each.
CASES += [("span_ch28_x4", "Set5"), ("efdn_x4", "Set5"),
          pytest.param("span_ch28_x4", "Set14", marks=pytest.mark.slow),
          pytest.param("efdn_x4", "Set14", marks=pytest.mark.slow)]


def _case_id(case) -> str:
    variant, dataset = case.values if hasattr(case, "values") else case
    return f"{variant}-{dataset}"


@pytest.mark.parametrize("variant,dataset", CASES, ids=[_case_id(c) for c in CASES])
def test_psnr_ssim_match_official(variant: str, dataset: str, datasets_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    model = create_model(variant)
    expected_psnr, expected_ssim = model.pretrained_cfg.expected[dataset]
    pairs = open_eval_dataset(datasets_dir / dataset, model.scale)
    res = evaluate(torch_sr_function(model), pairs, model.scale, dataset=dataset, min_size=model.min_input_size)
    assert len(res.images) == {"Set5": 5, "Set14": 14}[dataset]
    assert res.psnr == pytest.approx(expected_psnr, abs=0.01)
    assert res.ssim == pytest.approx(expected_ssim, abs=0.0005)


def test_eval_cli_json(datasets_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from edgesr.cli.main import cli

    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    out = tmp_path / "res.json"
    result = CliRunner().invoke(cli, ["eval", "rlfn_ntire", "--scale", "4", "--weights", "rlfn_ntire_x4",
                                      "--dataset", "Set5", "--json", str(out), "-q"])  # a shared dataset by name
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert list(data) == ["Set5"]  # one entry per dataset at the top level
    set5 = data["Set5"]
    assert set5["psnr"] == pytest.approx(32.0809, abs=0.01)
    assert set5["ssim"] == pytest.approx(0.89440, abs=0.0005)
    assert len(set5["images"]) == 5 and {"name", "psnr", "ssim"} <= set(set5["images"][0])
    assert set5["scale"] == 4 and set5["settings"]["crop_border"] == 4
    assert set5["source"]["model"] == "rlfn_ntire" and set5["source"]["weights"].endswith("rlfn_ntire_x4.pth")
    assert "Set5: x4 PSNR 32.08" in result.output


def test_self_ensemble_improves_rlfn(datasets_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    model = create_model("rlfn_ntire_x4")
    pairs = [open_eval_dataset(datasets_dir / "Set5", 4)[i] for i in (0, 3)]  # baby, head: small
    fn = torch_sr_function(model)
    plain = evaluate(fn, pairs, 4, min_size=15)
    ens = evaluate(fn, pairs, 4, min_size=15, self_ensemble=True)
    assert ens.psnr > plain.psnr + 0.02
