"""`edgesr train` on the command line: a tiny run end to end, and user errors as one line, exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgesr.cli.main import cli, main

TINY_ARGS = ["--model-cfg", "feature_channels=8", "--model-cfg", "num_blocks=1", "--model-cfg", "esa_channels=4"]


def test_train_command_end_to_end(set5: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "rlfn_s", "--hr", str(set5 / "HR"), "--scale", "2", "--patch", "16", "--batch", "2",
            "--steps", "2", "--warm-start-stages", "2", "--contrastive", "0.1", "--ema", "0.9", "--val", str(set5),
            "--val-every", "0", "--lr", "1e-3", "-o", str(out), "-q", *TINY_ARGS]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "stage 2  PSNR" in res.output and "trained 4 steps" in res.output and "model_final.pth" in res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["contrastive"] == 0.1 and cfg["config"]["stages"] == 2 and cfg["config"]["ema"] == 0.9
    assert cfg["model"]["cfg"] == {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4}
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints", "config.json", "log.jsonl", "model_best.pth", "model_final.pth", "result.json",
        "stage1.pth", "stage2.pth"]
    res = CliRunner().invoke(cli, args[:-len(TINY_ARGS) - 1] + ["--resume", *TINY_ARGS])
    assert res.exit_code == 0, res.output  # resuming a finished run: nothing left to do
    assert "trained 4 steps" in res.output


@pytest.mark.parametrize("extra,message", [
    (["--scale", "2", "--init", "rlfn_x4"], "weights fit: rlfn_x4"),
    (["--scale", "4", "--patch", "200"], "needs HR images of at least 800x800"),
    (["--scale", "4", "--ema", "1.5"], "--ema must be a decay in (0, 1)"),
])
def test_user_errors_are_one_line(extra: list[str], message: str, set5: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["train", "rlfn", "--hr", str(set5 / "HR"), "--steps", "1", "-o", str(out), *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and message in err and "Traceback" not in err
    assert not out.exists()
