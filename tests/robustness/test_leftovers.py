"""Temporary files of edgesr's naming left by a killed run are removed by the next write in that folder."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from edgesr.utils.atomic import TEMP_MARK, make_temp_beside, remove_stale_temps, temp_name_prefix, write_text_atomic


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_names_are_recognisable(tmp_path: Path) -> None:
    tmp = make_temp_beside(tmp_path / "model.onnx")
    assert tmp.name.startswith(f".model.onnx{TEMP_MARK}{os.getpid()}-") and tmp.name.endswith(".tmp")
    assert temp_name_prefix(tmp_path / "x.json") == f".x.json{TEMP_MARK}{os.getpid()}-"


def test_only_stale_temps_of_our_naming_are_removed(tmp_path: Path) -> None:
    old = time.time() - 3600
    stale = tmp_path / f".a.onnx{TEMP_MARK}{_dead_pid()}-x1.tmp"
    live = tmp_path / f".b.onnx{TEMP_MARK}{os.getppid()}-x2.tmp"  # its writer still runs
    foreign = tmp_path / ".c.onnx.x3.tmp"  # not ours
    fresh = tmp_path / f".d.onnx{TEMP_MARK}{_dead_pid()}-x4.tmp"  # newer than this run: not touched
    for path in (stale, live, foreign, fresh):
        path.write_bytes(b"partial")
    for path in (stale, live, foreign):
        os.utime(path, (old, old))
    assert remove_stale_temps(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, foreign, fresh))


def test_kill_during_a_write_then_the_next_run_cleans_up(tmp_path: Path) -> None:
    """A process SIGKILLed inside the atomic write leaves its hidden temp file; the next edgesr process that
    writes into that folder removes it, and the target itself was never touched."""
    target = tmp_path / "report.json"
    target.write_text("old")
    writer = textwrap.dedent(f"""
        import os, signal
        from edgesr.utils.atomic import atomic_path
        with atomic_path({str(target)!r}, force=True) as tmp:
            tmp.write_bytes(b"half of the new")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", writer], env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir() if TEMP_MARK in p.name]
    assert len(left) == 1 and target.read_text() == "old"
    nxt = subprocess.run([sys.executable, "-c", "from edgesr.utils.atomic import write_text_atomic as w; "
                          f"w({str(tmp_path / 'other.json')!r}, 'x')"], env=os.environ)
    assert nxt.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json", "report.json"]


def test_atomic_write_still_refuses_to_overwrite(tmp_path: Path) -> None:
    import pytest

    from edgesr.errors import OutputExistsError

    write_text_atomic(tmp_path / "x.txt", "1")
    with pytest.raises(OutputExistsError):
        write_text_atomic(tmp_path / "x.txt", "2")
    assert (tmp_path / "x.txt").read_text() == "1" and len(list(tmp_path.iterdir())) == 1
