"""Atomic writing: a crash or an error never leaves a partial file behind, nor a mix of old and new files.

Temporary files are named by `temp_name_prefix` (``.<target>.edgesr-tmp-<pid>-<random>.tmp``, beside the
target), so that a file left by a killed run is recognisable: `remove_stale_temps` deletes those of a
folder whose process is gone and that are older than the current run, and every atomic write calls it
for its own folder. Folders created for outputs are recorded (`ensure_folder`), so that a run that
fails can remove the ones it left empty (`remove_created_folders`).

One file: `atomic_path` / `write_bytes_atomic` write a temporary beside the target and rename it into place.
Several files that belong together (a model and its sidecar, ncnn's ``.param`` + ``.bin``): `commit_files`
writes them as one transaction:

1. every file is written to a temporary beside its target and flushed to disk;
2. a commit record ``.<last target>.edgesr-commit`` listing the (temporary, target) pairs is renamed into
   place: the commit point;
3. the temporaries are renamed over their targets, the last file last, and the record is removed.

A process killed before step 2 leaves the old files and stale temporaries (removed by the next write into
the folder). Killed after it, the record lets anyone finish the renames (`finish_commit`; the next write into
the folder and every artifact reader do), so the folder then holds the new files.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterator, Mapping

from edgesr.errors import OutputExistsError, UserInputError

log = logging.getLogger(__name__)

TEMP_MARK = ".edgesr-tmp-"
COMMIT_SUFFIX = ".edgesr-commit"
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
    """Finish the commits in `folder` that were interrupted after their commit point, then delete temporary
    files of edgesr's naming left by runs that died (older than this run, their process gone). Returns the
    temporaries removed; never raises."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(COMMIT_SUFFIX):
            with contextlib.suppress(OSError):
                finish_commit(entry.path)
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


# ---- several files as one transaction --------------------------------------------------------------------
def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit_record_for(last_target: str | Path) -> Path:
    """The commit record of a transaction whose last file is `last_target`."""
    last_target = Path(last_target)
    return last_target.with_name(f".{last_target.name}{COMMIT_SUFFIX}")


def commit_files(files: Mapping[Path, bytes], *, force: bool = False) -> None:
    """Write `files` ({target: bytes}, all in one folder) so that all of them or none replace their targets.

    The last file is renamed last (put a sidecar that describes the others there). Raises OutputExistsError
    without `force` for an existing target; writes nothing then.
    """
    targets = [Path(t) for t in files]
    if not targets:
        return
    folder = targets[0].parent
    if any(t.parent != folder for t in targets):
        raise ValueError("the files of one transaction must share a folder")
    for t in targets:
        check_writable(t, force)
    remove_stale_temps(folder)
    record = commit_record_for(targets[-1])
    temps: list[Path] = []
    try:
        for data, target in zip(files.values(), targets):
            temps.append(make_temp_beside(target))
            _write_synced(temps[-1], bytes(data))
        if not force:
            for t in targets:
                if t.exists():
                    raise OutputExistsError(f"{t} appeared while writing; pass --force to overwrite it.")
        temps.append(make_temp_beside(record))
        payload = {"pid": os.getpid(), "moves": [[tmp.name, t.name] for tmp, t in zip(temps, targets)]}
        _write_synced(temps[-1], json.dumps(payload).encode())
        _sync_dir(folder)
        os.replace(temps[-1], record)  # the commit point
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    _sync_dir(folder)
    finish_commit(record)


def finish_commit(record: str | Path) -> bool:
    """Finish the renames a commit record lists (idempotent) and remove it. False when a live process owns it
    (it finishes itself) or the record is unreadable."""
    record = Path(record)
    try:
        data = json.loads(record.read_bytes())
        moves = [(str(a), str(b)) for a, b in data["moves"]]
        pid = int(data.get("pid", 0))
    except FileNotFoundError:
        return True
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring an unreadable edgesr commit record %s: %s", record, exc)
        return False
    if pid and pid != os.getpid() and _process_alive(pid):
        return False
    folder = record.parent
    if any(Path(a).name != a or Path(b).name != b for a, b in moves):
        log.warning("ignoring an edgesr commit record that names paths outside its folder: %s", record)
        return False
    for tmp, target in moves:
        with contextlib.suppress(FileNotFoundError):  # FileNotFoundError: renamed before the interruption
            os.replace(folder / tmp, folder / target)
    _sync_dir(folder)
    with contextlib.suppress(FileNotFoundError):
        record.unlink()
    return True
