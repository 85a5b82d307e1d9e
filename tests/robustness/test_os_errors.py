"""OS and memory errors: one `Error:` line, exit 2 for a path the user can change, 1 for the machine's
trouble (full disk, no memory), and nothing partial left behind."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from edgesr.errors import failure_message
from edgesr.utils.atomic import TEMP_MARK

LONG = "b" * 300


@pytest.mark.parametrize("err,code", [(errno.ENAMETOOLONG, 2), (errno.ENOENT, 2), (errno.EACCES, 2), (errno.EROFS, 2),
                                      (errno.EISDIR, 2), (errno.ENOSPC, 1), (errno.EDQUOT, 1), (errno.EIO, 1)])
def test_os_error_exit_codes(err: int, code: int) -> None:
    msg, got = failure_message(OSError(err, os.strerror(err), "/some/" + LONG))
    assert got == code and os.strerror(err) in msg and "\n" not in msg
    assert len(msg) < 200  # a 300-character path is shortened, not echoed whole
    assert failure_message(ValueError("a bug")) is None  # anything else keeps its traceback


def test_memory_errors_exit_1() -> None:
    import torch

    with pytest.raises(MemoryError) as info:
        np.empty(1 << 50, dtype=np.uint8)  # numpy's _ArrayMemoryError, raised by malloc at once
    for exc in (info.value, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), MemoryError()):
        msg, code = failure_message(exc)
        assert code == 1 and msg.startswith("out of memory") and "\n" not in msg


@pytest.mark.parametrize("where", ["weights", "src", "dst"])
def test_name_too_long(where: str, cli, bad_files: Path, workdir: Path) -> None:
    args = {"weights": ["-w", LONG + ".pth", str(bad_files / "lr.png"), "out.png"],
            "src": [LONG + ".png", "out.png"], "dst": [str(bad_files / "lr.png"), LONG + ".png"]}[where]
    res = cli("upscale", "rlfn_ntire", *args)
    assert res.code == 2 and "Traceback" not in res.output, res.output
    assert res.stderr.startswith("Error: File name too long") and res.stderr.count("\n") == 1
    assert list(workdir.iterdir()) == []


@pytest.fixture
def disk_full(monkeypatch):
    """ENOSPC on every write into a temporary file of edgesr's naming: the disk fills while the artifact
    is written. Returns the list of temp files the writes were aimed at."""
    hits: list[Path] = []
    real_bytes, real_text = Path.write_bytes, Path.write_text

    def full(path: Path) -> None:
        if TEMP_MARK in path.name:
            hits.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def write_bytes(self, data):
        full(self)
        return real_bytes(self, data)

    def write_text(self, data, *args, **kwargs):
        full(self)
        return real_text(self, data, *args, **kwargs)

    from edgesr.utils import atomic

    real_synced = atomic._write_synced

    def write_synced(path, data):  # multi-file commits (artifact + sidecar) write through here
        full(Path(path))
        return real_synced(path, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    monkeypatch.setattr(Path, "write_text", write_text)
    monkeypatch.setattr(atomic, "_write_synced", write_synced)
    return hits


def test_disk_full_during_export(cli, workdir: Path, disk_full, list_files) -> None:
    res = cli("export", "rlfn", "-s", "2", "-o", "art/x2", "--parity-size", "24x20", "--exporter", "torchscript")
    assert disk_full, "the export never reached its write"
    assert res.code == 1 and "Traceback" not in res.output, res.output
    assert "Error: No space left on device" in res.stderr and "no partial output" in res.stderr
    assert list_files(workdir) == []  # no temp file, no half pair, not even the folders it created


def test_disk_full_during_bench_json(cli, workdir: Path, disk_full, list_files) -> None:
    (workdir / "keep").mkdir()
    res = cli("bench", "rlfn_ntire", "--size", "16x16", "--min-iters", "1", "--min-seconds", "0", "--no-memory",
              "--json", "keep/res/r.json")
    assert disk_full and res.code == 1 and "Traceback" not in res.output, res.output
    assert "Error: No space left on device" in res.stderr
    assert list_files(workdir) == ["keep"]  # the folder that existed stays, the one it made goes


def test_huge_bench_size_refused_before_allocating(cli, workdir: Path, monkeypatch) -> None:
    def no_alloc(*args, **kwargs):
        raise AssertionError("an input was allocated")

    monkeypatch.setattr("edgesr.bench.harness.latency_input", no_alloc)
    res = cli("bench", "rlfn_ntire", "--size", "100000x100000", "--no-memory")
    assert res.code == 2 and "Traceback" not in res.output, res.output
    assert "100000x100000" in res.stderr and "more than this machine has" in res.stderr


def test_image_too_big_for_memory_refused_before_compute(cli, bad_files: Path, workdir: Path, monkeypatch) -> None:
    monkeypatch.setattr("edgesr.inference.guard.available_memory_bytes", lambda: 20_000)  # 20 kB free
    res = cli("upscale", "rlfn_ntire", str(bad_files / "lr.png"), "out.png")
    assert res.code == 2 and "more than the default limit" in res.stderr and "Traceback" not in res.output
    assert list(workdir.iterdir()) == []


def test_memory_error_deep_inside_is_one_line(cli, bad_files: Path, workdir: Path, monkeypatch) -> None:
    def huge(*args, **kwargs):
        return np.empty(1 << 50, dtype=np.uint8)

    monkeypatch.setattr("edgesr.inference.stitch.upscale_tiled", huge)
    res = cli("upscale", "rlfn_ntire", str(bad_files / "lr.png"), "out/x.png")
    assert res.code == 1 and "Traceback" not in res.output, res.output
    assert res.stderr.startswith("Error: out of memory (") and "Unable to allocate 1.00 PiB" in res.stderr
    assert res.stderr.count("\n") == 1
    assert list(workdir.iterdir()) == []
