"""Options that must do what the help says, and reject what they cannot mean."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from edgesr.errors import UserInputError
from edgesr.prune import Target


def test_named_weights_decide_the_scale(cli, bad_files: Path, workdir: Path) -> None:
    """`-w rlfn_x2` without `-s`: the help says the default scale is the weights' scale."""
    res = cli("upscale", "rlfn", "-w", "rlfn_x2", str(bad_files / "one.png"), "out.png")
    assert res.code == 0, res.output
    assert "rlfn x2" in res.stdout and Image.open(workdir / "out.png").size == (2, 2)


def test_named_weights_decide_the_export_name(monkeypatch, cli, workdir: Path) -> None:
    seen = {}

    def stop(model, path, options):
        seen["scale"], seen["path"] = model.scale, Path(path).name
        raise UserInputError("stop here")

    monkeypatch.setattr("edgesr.export.onnx_export.export_onnx", stop)
    res = cli("export", "rlfn", "-w", "rlfn_x2", "-o", "out")
    assert res.code == 2 and seen == {"scale": 2, "path": "rlfn_x2.onnx"}, res.output


@pytest.mark.parametrize("args", [["export", "rlfn", "--threads", "0"], ["export", "rlfn", "--threads", "-3"],
                                  ["bench", "rlfn", "--limit", "-1"], ["eval", "rlfn", "-d", "x", "--limit", "-1"]])
def test_counts_must_be_positive(args: list[str], cli, workdir: Path) -> None:
    res = cli(*args)
    assert res.code == 2 and "is not in the range x>=1" in res.stderr, res.output


@pytest.mark.parametrize("text,target", [("flops=0.6", Target("flops", ratio=0.6)),
                                         ("flops=1", Target("flops", ratio=1.0)),
                                         ("flops=19.7G", Target("flops", value=19.7e9)),
                                         ("params=300k", Target("params", value=300e3)),
                                         ("latency=5ms", Target("latency", value=5.0))])
def test_prune_target_rule(text: str, target: Target) -> None:
    assert Target.parse(text) == target


@pytest.mark.parametrize("text", ["flops=2", "flops=0", "params=1.5", "latency=3", "params=5ms", "flops=-0.5",
                                  "flops=1e999G"])
def test_prune_target_without_unit_must_be_a_ratio(text: str) -> None:
    with pytest.raises(UserInputError):
        Target.parse(text)


@pytest.mark.parametrize("command", [
    ["export", "rlfn", "-s", "2", "-w", "{F}/nan_rlfn_x2.pth", "-o", "a/b/c"],
    ["bench", "rlfn_ntire", "--images", "nowhere", "--json", "a/b/r.json"],
    ["eval", "rlfn_ntire", "-d", "nowhere", "--json", "a/b/r.json"],
])
def test_failed_runs_leave_no_empty_folders(command: list[str], cli, bad_files: Path, workdir: Path) -> None:
    res = cli(*[c.format(F=bad_files) for c in command])
    assert res.code in (1, 2) and "Traceback" not in res.output, res.output
    assert list(workdir.iterdir()) == []


def test_prune_failure_leaves_no_empty_folders(cli, bad_files: Path, workdir: Path, monkeypatch) -> None:
    """The run fails after it made its staging folder (here: its first checkpoint does not fit on the disk)."""
    def fail(*args, checkpoint_dir, **kwargs):
        from edgesr.utils.atomic import ensure_folder

        ensure_folder(checkpoint_dir)
        raise OSError(28, "No space left on device", str(checkpoint_dir / "checkpoint.pt"))

    monkeypatch.setattr("edgesr.prune.fisher_prune", fail)
    res = cli("prune", "rlfn_ntire", "--target", "flops=0.9", "--images", str(bad_files / "images"), "-o",
              "runs/p", "--crop", "16", "--no-eval", "--no-latency", "-q")
    assert res.code == 1 and "No space left" in res.stderr and "Traceback" not in res.output, res.output
    assert list(workdir.iterdir()) == []
