"""Kill `edgesr export --force` while it replaces an artifact: the folder holds the old artifact or the new one.

Two ways of killing it:

* fault injection at every step of the write: `edgesr export --force` runs in the test process; when it reaches
  its final write, the process is forked once per step and each child ends (`os._exit`, no cleanup, like
  SIGKILL) just before its k-th file-system call of that write (open, write - half the bytes written -, fsync,
  close, rename, unlink), for every k, for a one-file (ONNX) and a two-file (ORT format + operator config)
  artifact;
* SIGKILL at random moments of an `edgesr export --force` subprocess (slow: a whole export per kill).

After each kill the folder is read the way the next edgesr run reads it (the runner's sidecar lookup, which
completes an interrupted commit and checks every file's sha256) and classified: every file of the old export,
every file of the new one, or a mix. A mix must never be seen; stale temporaries must be gone.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgesr.artifacts import Sidecar, sidecar_path_for, store
from edgesr.errors import ArtifactMismatchError
from edgesr.utils import atomic

EXPORT = ["export", "rlfn", "--scale", "2", "--random-init", "--parity-size", "16x16", "--exporter", "torchscript",
          "--name", "m", "--threads", "1"]
_STEPS = ("open", "write", "fsync", "close", "replace", "unlink")


def _cli(*args: str) -> None:
    from edgesr.cli.main import main

    try:
        main(list(args))
    except SystemExit as exc:
        assert not exc.code, f"edgesr {' '.join(args)} exited with {exc.code}"


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if not p.name.startswith(".")}


def _classify(folder: Path, artifact: str, old: dict[str, str], new: dict[str, str]) -> str:
    """Read the folder as the next edgesr run does, then say what it holds: "old", "new" or "mixed"."""
    try:
        Sidecar.for_artifact(folder / artifact)  # completes an interrupted commit, checks every file
    except ArtifactMismatchError:
        return "mixed"
    started, atomic._RUN_STARTED = atomic._RUN_STARTED, time.time() + 1  # as a later run: the killed writer's
    try:                                                                  # files are older than it
        atomic.remove_stale_temps(folder)  # what the next write into the folder does first
    finally:
        atomic._RUN_STARTED = started
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"stale files after the next run: {leftovers}"
    now = _digests(folder)
    return "old" if now == old else "new" if now == new else "mixed"


def _commit_killed_at(step: int, files: dict, force: bool) -> int:
    """Fork; the child runs the export's final write (`commit_files`) and dies (`os._exit`, no cleanup) before
    its `step`-th file-system call; a torn write puts half its bytes in the file first. Returns the number of
    calls the child made (== step when it was killed)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        count = [0]
        real = {name: getattr(os, name) for name in _STEPS}

        def hooked(name):
            def call(*a, **k):
                count[0] += 1
                if count[0] == step:
                    if name == "write":
                        real["write"](a[0], bytes(a[1])[: len(a[1]) // 2])
                    real["write"](write_fd, str(count[0]).encode())
                    os._exit(137)
                return real[name](*a, **k)
            return call

        try:
            for name in _STEPS:
                setattr(os, name, hooked(name))
            _REAL_COMMIT(files, force=force)
            for name in _STEPS:
                setattr(os, name, real[name])
            os.write(write_fd, str(count[0]).encode())
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(3)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    calls = int(os.read(read_fd, 64) or b"0")
    os.close(read_fd)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 137), f"the writing child failed (exit {code})"
    return calls


_REAL_COMMIT = atomic.commit_files


def _restore(folder: Path, old: Path) -> None:
    shutil.rmtree(folder)
    shutil.copytree(old, folder)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """For the onnx and ort formats: a folder holding the "old" export (--io float01)."""
    root = tmp_path_factory.mktemp("crash")
    out = {}
    for fmt in ("onnx", "ort"):
        folder = root / fmt
        _cli(*EXPORT, "--format", fmt, "--io", "float01", "-o", str(folder))
        out[fmt] = folder
    return out


def test_kill_at_every_step_of_the_write_leaves_old_or_new(exports: dict[str, Path], tmp_path: Path,
                                                           monkeypatch) -> None:
    """`edgesr export --force` runs in this process; when it reaches its final write, the process is forked once
    per kill point and each child dies at that point of the write; the folder is then read back."""
    results: dict[str, int] = {"old": 0, "new": 0, "mixed": 0}
    counts = {"points": 0, "records": 0}
    for fmt, artifact in (("onnx", "m.onnx"), ("ort", "m.ort")):
        old = _digests(exports[fmt])
        work = tmp_path / fmt
        shutil.copytree(exports[fmt], work)

        def kill_everywhere(files, *, force=False, work=work, fmt=fmt, artifact=artifact, old=old):
            if Path(next(iter(files))).parent != work:
                return _REAL_COMMIT(files, force=force)  # a scratch file of the export, not the artifact
            total = _commit_killed_at(10 ** 9, files, force)  # one complete write: how many calls it makes
            new = _digests(work)
            assert set(new) == set(old) and all(new[k] != old[k] for k in new), (new, old)
            for step in range(1, total + 1):
                _restore(work, exports[fmt])
                assert _commit_killed_at(step, files, force) == step
                counts["records"] += any(p.name.endswith(atomic.COMMIT_SUFFIX) for p in work.iterdir())
                results[_classify(work, artifact, old, new)] += 1
                counts["points"] += 1
            _restore(work, exports[fmt])
            return _REAL_COMMIT(files, force=force)

        monkeypatch.setattr(store, "commit_files", kill_everywhere)  # the artifact's final write
        _cli(*EXPORT, "--format", fmt, "--io", "float255", "--force", "-o", str(work))
        monkeypatch.setattr(store, "commit_files", _REAL_COMMIT)
        assert _classify(work, artifact, old, _digests(work)) != "old"
    print(f"\n{counts['points']} kill points: {results['old']} old, {results['new']} new, {results['mixed']} mixed "
          f"({counts['records']} left a commit record, completed by the next run)")
    assert counts["points"] >= 50 and results["mixed"] == 0
    assert results["old"] > 0 and results["new"] > 0


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_old_or_new(exports: dict[str, Path], tmp_path: Path) -> None:
    old = _digests(exports["onnx"])
    work = tmp_path / "w"
    cmd = [sys.executable, "-m", "edgesr.cli.main", *EXPORT, "--format", "onnx", "--io", "float255", "--force",
           "-o", str(work)]
    env = {**os.environ, "EDGESR_OFFLINE": "1"}
    shutil.copytree(exports["onnx"], work)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    duration = time.perf_counter() - start
    new = _digests(work)
    rng = random.Random(0)
    results = {"old": 0, "new": 0, "mixed": 0}
    for _ in range(12):
        shutil.rmtree(work)
        shutil.copytree(exports["onnx"], work)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(duration * rng.uniform(0.5, 1.05))  # the write is at the end of the run
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        results[_classify(work, "m.onnx", old, new)] += 1
    print(f"\n12 SIGKILLs at random moments of a {duration:.1f} s export: {results}")
    assert results["mixed"] == 0


def test_hand_made_mismatched_pair_is_refused(exports: dict[str, Path], tmp_path: Path) -> None:
    """The new sidecar beside the old model file (what the nested renames used to leave): refused by the CLI."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "mixed"
    shutil.copytree(exports["onnx"], folder)
    side = Sidecar.for_artifact(folder / "m.onnx")
    import onnx

    model = onnx.load(folder / "m.onnx")
    model.doc_string = "another export"
    onnx.save(model, folder / "m.onnx")  # a valid model file of another export beside this sidecar
    assert side is not None and sidecar_path_for(folder / "m.onnx").is_file()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "in.png")
    res = subprocess.run([sys.executable, "-m", "edgesr.cli.main", "upscale", "--artifact", str(folder / "m.onnx"),
                          str(tmp_path / "in.png"), str(tmp_path / "out.png")], capture_output=True, text=True,
                         env={**os.environ, "EDGESR_OFFLINE": "1"}, timeout=600)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert str(folder / "m.onnx") in res.stderr and str(sidecar_path_for(folder / "m.onnx")) in res.stderr
    assert not (tmp_path / "out.png").exists()


def test_next_write_finishes_an_interrupted_commit(tmp_path: Path) -> None:
    """A writer killed after its commit point left a commit record and renames still to do: the next write into
    the folder finishes them (stale temporaries themselves: tests/robustness/test_leftovers.py)."""
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    pending = tmp_path / f".n.onnx{atomic.TEMP_MARK}{dead}-89abcdef.tmp"
    pending.write_bytes(b"new model")
    (tmp_path / "n.onnx").write_bytes(b"old model")
    record = atomic.commit_record_for(tmp_path / "n.onnx")
    record.write_text(f'{{"pid": {dead}, "moves": [["{pending.name}", "n.onnx"]]}}')
    atomic.write_text_atomic(tmp_path / "other.txt", "x")  # the next write into the folder
    assert not record.exists() and not pending.exists() and (tmp_path / "n.onnx").read_bytes() == b"new model"
