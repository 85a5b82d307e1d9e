"""Folder outputs that appear whole or not at all.

A command that writes several files (a pruned model's config, weights and report; its resumable
checkpoint) writes them into a hidden staging folder beside the destination and renames that folder
into place at the end. An interrupted run leaves only the staging folder, which the next run can
resume from or discard; readers of the destination never see half a result.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgesr.errors import OutputExistsError, UserInputError


@dataclass
class StagedFolder:
    """The destination folder `out` and its staging folder ``.<name>.partial`` in the same parent (one
    file system, so publishing is a rename)."""

    out: Path
    force: bool = False
    path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.path = self.out.parent / f".{self.out.name}.partial"

    def check(self) -> None:
        """Refuse, before any work, a destination that is a file, a non-empty folder without `force`,
        or a place that cannot be written."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise UserInputError(f"{out} exists and is not a folder; choose another --output.")
        if out.is_dir() and any(out.iterdir()) and not self.force:
            raise OutputExistsError(f"{out} already exists and is not empty; pass --force to overwrite it.")
        parent = out.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            raise UserInputError(f"cannot write into {parent}.")

    def prepare(self, resume: bool = False) -> Path:
        """The staging folder to write into. An interrupted run's staging folder is kept with `resume`,
        discarded with `force`, and otherwise an error that says which of the two to pass."""
        if self.path.exists() and not resume:
            if not self.force:
                raise UserInputError(f"an interrupted run left {self.path}; pass --resume to continue it or "
                                     "--force to start over.")
            shutil.rmtree(self.path)
        return self.path

    def publish(self) -> Path:
        """Rename the finished staging folder to `out`, replacing an existing one only with `force`; the
        replaced folder is moved aside first and deleted last, so `out` is always whole."""
        out, staging = self.out, self.path
        out.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if out.exists() and any(out.iterdir()):
            if not self.force:  # appeared while we were working
                raise OutputExistsError(f"{out} appeared while writing; the result is in {staging}.")
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
        elif out.is_dir():
            out.rmdir()
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return out
