"""StagedFolder: a folder result appears whole or not at all, never overwrites without force, and an
interrupted run's staging folder is resumed or discarded on request only."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgesr.errors import OutputExistsError, UserInputError
from edgesr.utils.staging import StagedFolder


def _write_result(staging: Path, text: str) -> None:
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "weights.pth").write_text(text)


def test_publish_renames_the_staging_folder_into_place(tmp_path: Path) -> None:
    folder = StagedFolder(tmp_path / "sub" / "out")
    folder.check()
    staging = folder.prepare()
    assert staging == tmp_path / "sub" / ".out.partial" and not staging.exists()
    _write_result(staging, "new")
    assert not folder.out.exists()  # nothing visible until published
    assert folder.publish() == tmp_path / "sub" / "out"
    assert (folder.out / "weights.pth").read_text() == "new"
    assert sorted(p.name for p in folder.out.parent.iterdir()) == ["out"]


def test_an_empty_destination_folder_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    folder = StagedFolder(tmp_path / "out")
    folder.check()
    _write_result(folder.prepare(), "new")
    folder.publish()
    assert (tmp_path / "out" / "weights.pth").read_text() == "new"


def test_existing_results_need_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_result(out, "old")
    with pytest.raises(OutputExistsError, match="already exists and is not empty; pass --force"):
        StagedFolder(out).check()
    forced = StagedFolder(out, force=True)
    forced.check()
    _write_result(forced.prepare(), "new")
    forced.publish()
    assert (out / "weights.pth").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the replaced folder is gone too


def test_a_destination_that_appears_meanwhile_is_kept(tmp_path: Path) -> None:
    folder = StagedFolder(tmp_path / "out")
    folder.check()
    _write_result(folder.prepare(), "ours")
    _write_result(folder.out, "theirs")
    with pytest.raises(OutputExistsError, match=r"appeared while writing; the result is in .*\.out\.partial"):
        folder.publish()
    assert (folder.out / "weights.pth").read_text() == "theirs"
    assert (folder.path / "weights.pth").read_text() == "ours"


def test_a_file_in_the_way_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x")
    with pytest.raises(UserInputError, match="exists and is not a folder"):
        StagedFolder(tmp_path / "out", force=True).check()


def test_an_interrupted_run_is_resumed_or_discarded_on_request(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_result(tmp_path / ".out.partial", "checkpoint")
    with pytest.raises(UserInputError, match="pass --resume to continue it or --force to start over"):
        StagedFolder(out).prepare()
    staging = StagedFolder(out).prepare(resume=True)
    assert (staging / "weights.pth").read_text() == "checkpoint"  # kept for the resumed run
    assert not StagedFolder(out, force=True).prepare().exists()  # discarded
