"""Atomic artifact writing: a crash or an error never leaves a partial file behind.

Temporary files are named by `temp_name_prefix` (``.<target>.edgesr-tmp-<pid>-<random>.tmp``, beside the
target), so that a file left by a killed run is recognisable: `remove_stale_temps` deletes those of a
folder whose process is gone and that are older than the current run, and every atomic write calls it
for its own folder. Folders created for outputs are recorded (`ensure_folder`), so that a run that
fails can remove the ones it left empty (`remove_created_folders`).
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterator

from edgesr.errors import OutputExistsError, UserInputError

TEMP_MARK = ".edgesr-tmp-"
_TEMP_RE = re.compile(r"^\..+" + re.escape(TEMP_MARK) + r"(\d+)-[^/]*\.tmp$")
_RUN_STARTED = time.time()
_created_folders: list[Path] = []


def temp_name_prefix(path: str | Path) -> str:
    """Prefix of the temporary files written for `path` (pass it to mkstemp/mkdtemp with suffix ".tmp")."""
    return f".{Path(path).name}{TEMP_MARK}{os.getpid()}-"


def make_temp_beside(path: str | Path) -> Path:
    """Create an empty temporary file beside `path` with edgesr's temp naming, readable as the umask allows."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=temp_name_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make shared caches unreadable
    return Path(tmp)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete temporary files of edgesr's naming in `folder` left by runs that died (older than this run,
    their process gone). Returns what was removed; never raises."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if not m or _process_alive(int(m.group(1))):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= _RUN_STARTED:
                continue
            if entry.is_dir(follow_symlinks=False):
                import shutil

                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def ensure_folder(folder: str | Path) -> Path:
    """`mkdir -p folder`, recording each folder it creates so a failed run can remove the empty ones."""
    folder = Path(folder)
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    _created_folders.extend(reversed(missing))
    return folder


def remove_created_folders() -> None:
    """Remove the folders `ensure_folder` created that are still empty (deepest first); forget them all."""
    for folder in reversed(_created_folders):
        with contextlib.suppress(OSError):
            folder.rmdir()
    _created_folders.clear()


def forget_created_folders() -> None:
    """The run succeeded: its folders stay."""
    _created_folders.clear()


def check_writable(path: str | Path, force: bool = False) -> Path:
    """Validate an output path before doing expensive work.

    Raises OutputExistsError if it exists and `force` is False, UserInputError if its
    folder cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists; pass --force to overwrite it.")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        ensure_folder(parent)
    except OSError as exc:
        raise UserInputError(f"cannot create output folder {parent}: {exc.strerror}") from exc
    if not os.access(parent, os.W_OK):
        raise UserInputError(f"output folder {parent} is not writable.")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path = check_writable(path, force)
    remove_stale_temps(path.parent)
    tmp_path = make_temp_beside(path)
    try:
        yield tmp_path
        if path.exists() and not force:
            raise OutputExistsError(f"{path} appeared while writing; pass --force to overwrite it.")
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | Path, data: bytes, force: bool = False) -> Path:
    with atomic_path(path, force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str, force: bool = False) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), force)
