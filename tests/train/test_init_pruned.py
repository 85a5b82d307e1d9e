"""`edgesr train --init PRUNED_DIR`: continue training a pruned model (its own widths and depth)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from click.testing import CliRunner

from edgesr.cli.main import cli, main
from edgesr.models import create_model
from edgesr.prune import Pruner, load_pruned, read_pruned_config, save_pruned

CFG = {"feature_channels": 8, "num_blocks": 2, "esa_channels": 4}


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RLFN x2 with one block removed and two channels of a block's mid conv pruned."""
    torch.manual_seed(0)
    pruner = Pruner(create_model("rlfn", scale=2, **CFG), depth=True).without_blocks(["block_2"])
    mid = next(g for g in pruner.groups if g.name.endswith("c1_r"))
    pruner.prune(mid.index, [0, 1])
    small, config = pruner.export()
    return save_pruned(tmp_path_factory.mktemp("pruned") / "p", small, config)


def test_train_continues_a_pruned_model(pruned_dir: Path, set5: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--init", str(pruned_dir), "--hr", str(set5 / "HR"), "--patch", "16",
                                   "--batch", "2", "--steps", "2", "--schedule", "cosine", "--ema", "0.9", "--val",
                                   str(set5), "--val-every", "0", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "init: pruned from" in text and "trained 2 steps" in text
    before, after = load_pruned(pruned_dir), load_pruned(out / "pruned")
    assert read_pruned_config(out / "pruned").layers == read_pruned_config(pruned_dir).layers
    assert [p.shape for p in before.parameters()] == [p.shape for p in after.parameters()]
    assert after.edgesr_config["num_blocks"] == 1
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))


@pytest.mark.parametrize("extra,message", [
    (["rfdn"], "holds a pruned rlfn x2, not rfdn x2"),
    (["--scale", "4"], "holds a pruned rlfn x2, but --scale 4 was given"),
])
def test_init_with_a_pruned_folder_of_another_model(extra: list[str], message: str, pruned_dir: Path, set5: Path,
                                                    tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = ["train", *extra[:1 if extra[0] == "rfdn" else 0], "--init", str(pruned_dir), "--hr", str(set5 / "HR"),
            "--steps", "1", "-o", str(out), *([] if extra[0] == "rfdn" else extra)]
    if extra[0] == "rfdn":
        args += ["--scale", "2"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and message in err and "Traceback" not in err and err.count("\n") == 1
    assert not out.exists()


def test_hr_images_smaller_than_the_patch(pruned_dir: Path, set5: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--init", str(pruned_dir), "--hr", str(set5 / "HR"), "--patch", "400", "--steps", "1",
              "-o", str(tmp_path / "run")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: patch 400 at x2 needs HR images of at least 800x800") and err.count("\n") == 1
