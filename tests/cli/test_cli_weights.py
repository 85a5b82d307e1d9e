"""Every command that takes MODEL also takes `--weights FILE` alone (the model is detected from the checkpoint),
reads .safetensors, and turns bad weights into one `Error:` line with exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgesr.cli.main import main
from edgesr.models import create_model
from edgesr.models.weights import save_state_dict

TINY = {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("EDGESR_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A small RLFN x2 saved as safetensors: nothing but its tensors says what it is."""
    torch.manual_seed(0)
    model = create_model("rlfn", scale=2, **TINY)
    return save_state_dict(tmp_path_factory.mktemp("w") / "mine.safetensors", model)


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_detects_the_model(tiny_weights: Path, tmp_path: Path, capsys) -> None:
    js = tmp_path / "r.json"
    code, out, err = run(capsys, "eval", "--weights", str(tiny_weights), "-d", "Set5", "--limit", "1", "-q",
                         "--json", str(js))
    assert code == 0, err
    assert out.startswith("rlfn x2 (")
    source = json.loads(js.read_text())["Set5"]["source"]
    assert (source["model"], source["scale"], source["config"]) == ("rlfn", 2, TINY)


def test_upscale_export_bench_prune_train_detect_the_model(tiny_weights: Path, datasets_dir: Path,
                                                            tmp_path: Path, capsys) -> None:
    src = datasets_dir / "Set5" / "LR_bicubic" / "X2" / "baby.png"
    code, out, err = run(capsys, "upscale", "--weights", str(tiny_weights), str(src), str(tmp_path / "sr.png"),
                         "--tile", "0")
    assert code == 0 and (tmp_path / "sr.png").is_file(), err
    code, out, err = run(capsys, "export", "--weights", str(tiny_weights), "-o", str(tmp_path / "x"),
                         "--parity-size", "24x20", "--exporter", "torchscript")
    assert code == 0 and (tmp_path / "x" / "rlfn_x2.onnx").is_file(), err
    code, out, err = run(capsys, "bench", "--weights", str(tiny_weights), "--size", "16x16", "--min-iters", "1",
                         "--min-seconds", "0", "--work-dir", str(tmp_path / "b"))
    assert code == 0 and "rlfn_x2" in out, err
    code, out, err = run(capsys, "prune", "--weights", str(tiny_weights), "--show-groups")
    assert code == 0 and out.startswith("rlfn x2: channel groups"), err
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--init", str(tiny_weights), "--hr", str(datasets_dir / "Set5" / "HR"),
                         "--patch", "16", "--batch", "2", "--steps", "1", "-o", str(run_dir), "-q")
    assert code == 0, err
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"]["cfg"] == TINY and (run_dir / "model_final.safetensors").is_file()


def _one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("Error: ") and err.count("\n") == 1, err
    return err


def test_unknown_architecture(tmp_path: Path, capsys) -> None:
    alien = tmp_path / "alien.safetensors"
    save_state_dict(alien, {"encoder.0.weight": torch.zeros(8, 3, 3, 3), "decoder.weight": torch.zeros(12, 8, 3, 3)})
    err = _one_line_error(*run(capsys, "eval", "--weights", str(alien), "-d", "Set5")[::2])
    assert "is not a checkpoint of any registered architecture" in err and "Closest by tensor shapes:" in err


def test_truncated_safetensors(tiny_weights: Path, tmp_path: Path, capsys) -> None:
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(tiny_weights.read_bytes()[:-100])
    err = _one_line_error(*run(capsys, "eval", "--weights", str(cut), "-d", "Set5")[::2])
    assert "not a valid safetensors file, probably truncated" in err and "pickle" not in err


def test_deploy_weights_given_to_a_training_form_model(weights_dir: Path, capsys) -> None:
    err = _one_line_error(*run(capsys, "eval", "rlfn_rep", "--weights", str(weights_dir / "rlfn_x4.pth"),
                               "-d", "Set5")[::2])
    assert "deploy-form (folded) weights" in err and "Use the deploy form" in err and "fold the training model" in err


@pytest.mark.parametrize("model", [[], ["rlfn"]], ids=["detected", "named"])
def test_scale_that_contradicts_the_weights(model: list[str], weights_dir: Path, capsys) -> None:
    err = _one_line_error(*run(capsys, "eval", *model, "--scale", "2", "--weights",
                               str(weights_dir / "rlfn_x4.pth"), "-d", "Set5")[::2])
    assert "holds x4 weights (rlfn x4), but scale 2 was asked for" in err
