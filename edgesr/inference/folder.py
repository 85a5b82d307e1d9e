"""Upscale a folder of images: relative paths kept, existing outputs skipped, shards for job arrays.

A shard is a fixed slice of the sorted file list (file i goes to shard ``i % N``), taken before
existing outputs are skipped, so `--shard K/N` on N machines splits a dataset the same way every time
and a rerun of one shard only does what that shard has left. One bad file does not stop the run: it is
recorded in the summary and the caller decides the exit code.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from edgesr.errors import EdgesrError, UserInputError


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> "Shard":
        if not text:
            return cls()
        try:
            k, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise UserInputError(f"--shard must look like K/N (e.g. 2/8), got {text!r}.") from None
        if n < 1 or not 1 <= k <= n:
            raise UserInputError(f"--shard {text}: need 1 <= K <= N.")
        return cls(k, n)

    def take(self, items: list) -> list:
        return items[self.index - 1:: self.count]


@dataclass(frozen=True)
class FileJob:
    src: Path
    dst: Path


@dataclass
class FolderSummary:
    done: list[FileJob] = field(default_factory=list)
    skipped: list[FileJob] = field(default_factory=list)
    failed: list[tuple[FileJob, str]] = field(default_factory=list)
    seconds: float = 0.0
    input_pixels: int = 0

    def describe(self) -> str:
        rate = len(self.done) / self.seconds if self.seconds > 0 else 0.0
        return (f"{len(self.done)} upscaled, {len(self.skipped)} skipped (output exists), {len(self.failed)} failed "
                f"in {self.seconds:.1f} s ({rate:.2f} images/s, {self.input_pixels / 1e6 / max(self.seconds, 1e-9):.2f} "
                "input MP/s)")


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def check_folders(src: Path, dst: Path) -> None:
    """Refuse DST equal to SRC (even with --force) and DST inside SRC (a rerun would read the outputs as
    inputs), before any compute."""
    if not src.is_dir():
        raise UserInputError(f"input folder {src} does not exist.")
    if dst.exists() and not dst.is_dir():
        raise UserInputError(f"{src} is a folder, so the output must be a folder too; {dst} is a file.")
    if _inside(dst, src):
        what = "is the input folder itself" if dst.resolve() == src.resolve() else "is inside the input folder"
        raise UserInputError(f"output folder {dst} {what} {src}: outputs would overwrite or be read back as "
                             "inputs (--force does not change this). Choose a folder outside it.")


def plan_folder(src: Path, dst: Path, *, recursive: bool = False, pattern: str | None = None,
                suffix: str | None = None, shard: Shard = Shard()) -> list[FileJob]:
    """Every image under `src` (sorted by relative path; `pattern` is a glob on the relative path, default:
    every known image extension) mapped to the same relative path under `dst` (with `suffix` replacing
    the extension when given), then sliced to `shard`."""
    from edgesr.data.datasets import IMAGE_EXTENSIONS

    check_folders(src, dst)
    candidates = src.rglob("*") if recursive else src.glob("*")
    files = []
    for path in candidates:
        rel = path.relative_to(src)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if pattern is not None:
            if not rel.match(pattern) and not path.match(pattern):
                continue
        elif path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        files.append(rel)
    files.sort(key=lambda p: p.as_posix())
    jobs = [FileJob(src / rel, dst / (rel.with_suffix(suffix) if suffix else rel)) for rel in files]
    return shard.take(jobs)


def run_folder(jobs: list[FileJob], upscale_one: Callable[[FileJob], tuple[int, int]], *, force: bool = False,
               progress: bool = False, log: Callable[[str], None] | None = None) -> FolderSummary:
    """Run `upscale_one(job) -> (lr height, lr width)` on every job whose output is missing (all with
    `force`). Expected failures (`EdgesrError`: unreadable image, too large, ...) are recorded and the run
    goes on; anything else is a bug and propagates."""
    summary = FolderSummary()
    todo = []
    for job in jobs:
        (todo if force or not job.dst.exists() else summary.skipped).append(job)
    start = time.perf_counter()
    for job in _progress(todo, progress):
        try:
            h, w = upscale_one(job)
        except EdgesrError as exc:
            summary.failed.append((job, str(exc)))
            if log is not None:
                log(f"FAILED {job.src}: {exc}")
            continue
        summary.done.append(job)
        summary.input_pixels += h * w
    summary.seconds = time.perf_counter() - start
    return summary


def _progress(jobs: list[FileJob], enabled: bool) -> Iterator[FileJob]:
    if not enabled:
        yield from jobs
        return
    from tqdm.auto import tqdm

    with tqdm(total=len(jobs), desc="files", unit="img") as bar:
        for job in jobs:
            bar.set_postfix_str(job.src.name, refresh=False)
            yield job
            bar.update(1)
