"""An artifact's files on disk: written as one transaction with the sidecar last, checked before every load.

`write_artifact` fills the sidecar's ``artifact`` and ``files`` records (size and sha256 of every file) and
commits the files and then the sidecar with `edgesr.utils.atomic.commit_files`, so a reader finds the old
artifact or the new one, never a mix, whenever the writer is killed. `recover_artifact` finishes a commit that
was interrupted after its commit point (readers run it first), and `verify_files` refuses files that do not
match their sidecar (made by hand or by another tool), naming both files. ``EDGESR_SKIP_SHA256=1`` (or
``sha256=False``) skips hashing huge files; the size check always runs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from edgesr.errors import ArtifactMismatchError
from edgesr.utils.atomic import commit_files, commit_record_for, finish_commit
from edgesr.utils.hashing import sha256_bytes, sha256_file

if TYPE_CHECKING:
    from edgesr.artifacts.sidecar import Sidecar

SKIP_SHA256_ENV = "EDGESR_SKIP_SHA256"


def write_artifact(sidecar: "Sidecar", payloads: Mapping[Path, bytes], *, force: bool = False,
                   roles: Mapping[str, str] | None = None) -> Path:
    """Write `payloads` ({path: bytes}, the model file first, all in one folder) and then `sidecar` beside them.

    Sets ``sidecar.artifact`` (file, bytes, sha256) from the first payload and ``sidecar.files`` from all of
    them (`roles`: {file name: role}; default "model" for the first, else the suffix). Returns the sidecar path.
    """
    from edgesr.artifacts.sidecar import FileRecord, sidecar_path_for

    paths = [Path(p) for p in payloads]
    first = paths[0]
    records = []
    for i, (path, data) in enumerate(zip(paths, payloads.values())):
        role = (roles or {}).get(path.name) or ("model" if i == 0 else path.suffix.lstrip(".") or "data")
        records.append(FileRecord(file=path.name, bytes=len(data), sha256=sha256_bytes(data), role=role))
    sidecar.artifact.file, sidecar.artifact.bytes, sidecar.artifact.sha256 = first.name, records[0].bytes, \
        records[0].sha256
    sidecar.files = records
    side_path = sidecar_path_for(first)
    from edgesr.artifacts.validate import validate_sidecar

    validate_sidecar(sidecar, where=f"the sidecar of {first.name}")  # never write what a reader would refuse
    commit_files({**{p: d for p, d in zip(paths, payloads.values())}, side_path: sidecar.to_json().encode()},
                 force=force)
    return side_path


def recover_artifact(artifact: str | Path) -> None:
    """Finish an interrupted commit of `artifact` (its sidecar's commit record), if there is one."""
    from edgesr.artifacts.sidecar import sidecar_path_for

    record = commit_record_for(sidecar_path_for(artifact))
    if not record.exists():
        return
    if not os.access(record.parent, os.W_OK):
        raise ArtifactMismatchError(
            f"{artifact}: an export into {record.parent} was interrupted while it replaced the files ({record.name} "
            "is left); it cannot be completed in a read-only folder. Re-export the artifact.")
    if not finish_commit(record):
        raise ArtifactMismatchError(f"{artifact} is being written by another process right now ({record.name}); "
                                    "try again when that export has finished.")


def skip_sha256_requested() -> bool:
    return os.environ.get(SKIP_SHA256_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def verify_files(sidecar: "Sidecar", sidecar_path: str | Path, *, sha256: bool | None = None) -> None:
    """Check every file `sidecar` lists (its ``files``, else its ``artifact``) in the folder of `sidecar_path`:
    present, same size, and (unless `sha256` is False or ``EDGESR_SKIP_SHA256=1``) same sha256.
    ArtifactMismatchError names the file and the sidecar."""
    sidecar_path = Path(sidecar_path)
    folder = sidecar_path.parent
    records = [(r.file, r.bytes, r.sha256) for r in sidecar.files] or \
        [(sidecar.artifact.file, sidecar.artifact.bytes, sidecar.artifact.sha256)]
    do_hash = (not skip_sha256_requested()) if sha256 is None else sha256
    for name, size, digest in records:
        path = folder / name
        try:
            actual_size = path.stat().st_size
        except FileNotFoundError:
            raise ArtifactMismatchError(f"{path} is missing: its sidecar {sidecar_path} lists it as part of the "
                                        "artifact. Re-export the artifact.") from None
        hint = (f"the files come from different exports. Re-export the artifact, or delete {path.name} and "
                f"{sidecar_path.name}.")
        if size and actual_size != size:
            raise ArtifactMismatchError(f"{path} does not match its sidecar {sidecar_path}: it has {actual_size:,} "
                                        f"bytes, the sidecar recorded {size:,}; {hint}")
        if do_hash and digest:
            actual = sha256_file(path)
            if actual != digest:
                raise ArtifactMismatchError(f"{path} does not match its sidecar {sidecar_path}: its sha256 is "
                                            f"{actual[:16]}..., the sidecar recorded {digest[:16]}...; {hint}")
