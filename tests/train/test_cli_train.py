"""`edgesr train` on the command line: a tiny run end to end, and user errors as one line, exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import click
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
    assert "stage 2  PSNR" in res.output and "trained 4 steps" in res.output and "model_final.safetensors" in res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["contrastive"] == 0.1 and cfg["config"]["stages"] == 2 and cfg["config"]["ema"] == 0.9
    assert cfg["model"]["cfg"] == {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4}
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints", "config.json", "log.jsonl", "model_best.safetensors", "model_final.safetensors",
        "result.json", "stage1.safetensors", "stage2.safetensors"]
    res = CliRunner().invoke(cli, args[:-len(TINY_ARGS) - 1] + ["--resume", *TINY_ARGS])
    assert res.exit_code == 0, res.output  # resuming a finished run: nothing left to do
    assert "trained 4 steps" in res.output


@pytest.mark.parametrize("extra,message", [
    (["--scale", "2", "--init", "rlfn_x4"], "holds x4 weights (rlfn x4), but scale 2 was asked for"),
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


# ------------------------------------------------------------------------------------- --config run files
def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_trainconfig_field_is_an_option() -> None:
    """The options are derived from the dataclass: no field is missing, none is declared by hand."""
    import dataclasses

    from edgesr.cli.train_cmd import command
    from edgesr.train import TrainConfig

    options = {p.name for p in command.params if isinstance(p, click.Option)} - {"help"}
    assert options == {f.name for f in dataclasses.fields(TrainConfig)} - {"model"} | {"config_file"}


def test_run_file_reaches_every_field_and_flags_override_it(tmp_path: Path, monkeypatch) -> None:
    """A run file sets fields the old flags could not reach (stage_overrides, betas, min_lr, val_limit);
    flags typed on the command line win over it, field by field (model_cfg key by key)."""
    import edgesr.train
    from edgesr.train import TrainConfig

    seen: list[TrainConfig] = []

    def fake_train(config: TrainConfig):
        config.validate()
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(edgesr.train, "train", fake_train)
    run = _write(tmp_path / "run.yaml", """
model: rlfn_s
scale: 2
hr_dir: data/HR
output_dir: runs/a
model_cfg: {feature_channels: 8, num_blocks: 1}
steps: 100
stages: 3
stage_overrides: [{}, {lr: 1e-4}, {loss: mse, lr: 2.0e-5, steps: 10}]
lr: 5e-4            # YAML 1.1 reads this as text: still a number
betas: [0.9, 0.99]
min_lr: 1.0e-6
val_limit: 2
augment: false
tensorboard: false
""")
    res = CliRunner().invoke(cli, ["train", "--config", str(run), "--steps", "7", "--augment", "-o", "runs/b",
                                   "--model-cfg", "num_blocks=2", "--betas", "0.8,0.9", "-q"])
    assert res.exit_code == 0, res.output
    cfg = seen[0]
    assert (cfg.model, cfg.scale, cfg.hr_dir, cfg.output_dir) == ("rlfn_s", 2, Path("data/HR"), Path("runs/b"))
    assert cfg.steps == 7 and cfg.augment is True and cfg.progress is False and cfg.tensorboard is False
    assert cfg.model_cfg == {"feature_channels": 8, "num_blocks": 2}
    assert cfg.betas == (0.8, 0.9) and cfg.min_lr == 1e-6 and cfg.val_limit == 2 and cfg.lr == 5e-4
    assert cfg.stage_overrides == [{}, {"lr": 1e-4}, {"loss": "mse", "lr": 2e-5, "steps": 10}]
    assert cfg.stage_steps() == [7, 7, 10]

    res = CliRunner().invoke(cli, ["train", "rlfn", "--config", str(run),
                                   "--stage-overrides", "[{steps: 3}]", "--lr", "1e-3"])
    assert res.exit_code == 0, res.output
    assert seen[1].model == "rlfn" and seen[1].stage_overrides == [{"steps": 3}] and seen[1].lr == 1e-3
    assert seen[1].augment is False  # from the file: not typed on the command line


@pytest.mark.parametrize("text,message", [
    ("lr_stp: 100\n", "run.yaml: unknown key 'lr_stp'; the closest field is 'lr_step'."),
    ("hr: data\n", "run.yaml: unknown key 'hr'; the closest field is 'hr_dir'."),
    ("lr: fast\n", "run.yaml: lr must be a number, got 'fast'."),
    ("betas: 0.9\n", "run.yaml: betas must be a list of numbers, got 0.9."),
    ("stage_overrides: [{lr: x}]\n", "run.yaml: lr must be a number, got 'x'."),
    ("- steps\n", "must hold a mapping of TrainConfig fields, got list."),
    ("steps: [1\n", "is not valid YAML at line 2"),
    ("steps: 10\n", "--hr is required: pass --hr or set hr_dir in"),
])
def test_run_file_errors_are_one_line(text: str, message: str, tmp_path: Path, capsys) -> None:
    run = _write(tmp_path / "run.yaml", text)
    with pytest.raises(SystemExit) as exc:
        main(["train", "rlfn", "--config", str(run), "-o", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_run_file_trains_end_to_end(set5: Path, tmp_path: Path) -> None:
    """A real (tiny) run from a file: the per-stage override and val_limit reach the trainer."""
    run = _write(tmp_path / "run.yaml", f"""
model: rlfn_s
scale: 2
hr_dir: {set5 / 'HR'}
val_dir: {set5}
val_limit: 1
val_every: 0
model_cfg: {{feature_channels: 8, num_blocks: 1, esa_channels: 4}}
patch: 16
batch: 2
steps: 2
stages: 2
stage_overrides: [{{}}, {{steps: 1, loss: mse}}]
progress: false
""")
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--config", str(run), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "trained 3 steps" in res.output and "stage 2  PSNR" in res.output
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["stage_overrides"] == [{}, {"steps": 1, "loss": "mse"}] and cfg["val_limit"] == 1
