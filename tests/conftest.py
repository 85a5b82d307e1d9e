"""Shared fixtures.

Tests that need the real data in ../shared fail in CI (CI=true) when it is missing and skip,
with the reason, only on a developer machine without it.

Cheap shared fixtures for expensive things (session-scoped: built once, on first use, for all folders;
treat what they return as read-only):

- `rlfn_x4`: the official RLFN x4 (eval mode, offline weights). Copy it (`copy.deepcopy`) before
  changing it.
- `export_cache(variant, fp16=False, io="float01", **ExportOptions fields)`: `export_onnx` of a
  pretrained variant (``edsr_baseline``: seeded random init), once per argument set.
- `rlfn_x4_onnx` / `rlfn_x4_uint8_onnx`: ExportResults (``.path``, ``.sidecar``) of the official
  RLFN x4 exported by edgesr, FP32 with float 0..1 or uint8 I/O, parity-checked at 64x64.
- `lr_crops(count, size)`: a folder of the first `count` DIV2K test LR images cropped to size x size
  (training images for the pruning CLI that load instantly).

The session's peak RSS (this process and its children; with xdist, every worker's and their sum, the
bound that matters when they run side by side) is printed at the end of the run.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import resource
from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch

from edgesr.paths import shared_dir

# The suite runs on pytest-xdist workers (scripts/test.sh: one per core); each worker gets its share of
# the cores so that two workers never fight over the same two threads.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
TEST_THREADS = max(1, min(2, (os.cpu_count() or 1) // _WORKERS))
torch.set_num_threads(TEST_THREADS)


def _require(path: Path) -> Path:
    if path.exists():
        return path
    msg = f"shared data not found: {path} (set EDGESR_SHARED or place shared/ beside the repo)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def shared() -> Path:
    """Root of the shared data folder (weights/, datasets/)."""
    return _require(shared_dir())


@pytest.fixture(scope="session")
def weights_dir(shared: Path) -> Path:
    return _require(shared / "weights")


@pytest.fixture(scope="session")
def datasets_dir(shared: Path) -> Path:
    return _require(shared / "datasets")


# -------------------------------------------------------------------------------- shared heavy fixtures
@pytest.fixture(scope="session")
def lr_crops(tmp_path_factory, datasets_dir: Path) -> Callable[[int, int], Path]:
    """`lr_crops(count, size)`: the first `count` DIV2K test LR images cropped to `size` px, once per argument."""
    import numpy as np

    from edgesr.data import find_images, read_image, write_image

    folders: dict[tuple[int, int], Path] = {}

    def crops(count: int, size: int) -> Path:
        if (count, size) not in folders:
            folder = tmp_path_factory.mktemp(f"lr_{count}x{size}")
            for p in find_images(datasets_dir / "DIV2K_test_LR_x4")[:count]:
                write_image(folder / p.name, np.ascontiguousarray(read_image(p)[:size, :size]))
            folders[count, size] = folder
        return folders[count, size]

    return crops


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """EDGESR_OFFLINE=1 while a session fixture builds (weights come from ../shared, never the network)."""
    before = os.environ.get("EDGESR_OFFLINE")
    os.environ["EDGESR_OFFLINE"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["EDGESR_OFFLINE"]
        else:
            os.environ["EDGESR_OFFLINE"] = before


@pytest.fixture(scope="session")
def rlfn_x4(weights_dir: Path):
    """The official RLFN x4, built once per session."""
    from edgesr.models import create_model

    with _offline():
        return create_model("rlfn_x4").eval()


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory) -> Callable:
    """export(variant, fp16=False, io="float01", **options) -> ExportResult, cached for the session."""
    from edgesr.export import ExportOptions, export_onnx
    from edgesr.models import create_model

    cache: dict[tuple, object] = {}
    root = tmp_path_factory.mktemp("exports")

    def export(variant: str, fp16: bool = False, io: str = "float01", **options):
        key = (variant, fp16, io, tuple(sorted(options.items())))
        if key not in cache:
            with _offline():
                if variant == "edsr_baseline":
                    torch.manual_seed(0)
                    model = create_model("edsr_baseline", scale=4)  # random init: no official weights
                else:
                    model = create_model(variant)
                path = Path(root) / f"{variant}_{'fp16' if fp16 else 'fp32'}_{io}_{len(cache)}.onnx"
                cache[key] = export_onnx(model, path, ExportOptions(fp16=fp16, io=io, **options))
        return cache[key]

    return export


@pytest.fixture(scope="session")
def rlfn_x4_onnx(export_cache, weights_dir: Path):
    """The official RLFN x4 exported by edgesr (FP32, float 0..1 I/O, dynamic H/W)."""
    return export_cache("rlfn_x4", parity_sizes=((64, 64),))


@pytest.fixture(scope="session")
def rlfn_x4_uint8_onnx(export_cache, weights_dir: Path):
    """The official RLFN x4 exported by edgesr with uint8 NCHW I/O."""
    return export_cache("rlfn_x4", io="uint8", parity_sizes=((64, 64),))


# ------------------------------------------------------------------------------------------ peak memory
def peak_rss_mib() -> tuple[float, float]:
    """(this process, its largest waited-for child) peak resident set size in MiB (Linux: KiB units).

    A forked child's figure starts from the parent's peak at the fork, so the larger of the two is
    the suite's peak."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def pytest_sessionfinish(session) -> None:
    """An xdist worker hands its peak to the controller, which sums what ran side by side."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["peak_rss_mib"] = max(peak_rss_mib())


_WORKER_PEAKS: dict[str, float] = {}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    peak = getattr(node, "workeroutput", {}).get("peak_rss_mib")
    if peak is not None:
        _WORKER_PEAKS[node.gateway.id] = float(peak)


def pytest_terminal_summary(terminalreporter) -> None:
    own, children = peak_rss_mib()
    if _WORKER_PEAKS:
        peaks = ", ".join(f"{name} {mib:.0f}" for name, mib in sorted(_WORKER_PEAKS.items()))
        terminalreporter.write_line(f"peak RSS: {sum(_WORKER_PEAKS.values()) + own:.0f} MiB at most together "
                                    f"(workers: {peaks} MiB; controller {own:.0f} MiB)")
        return
    terminalreporter.write_line(f"peak RSS: {max(own, children):.0f} MiB (pytest process {own:.0f} MiB, "
                                f"largest child process {children:.0f} MiB)")


def _adam_steps(model: torch.nn.Module, steps: int = 3, scale: int = 4) -> None:
    """A few Adam steps on random 16x16 patches: every branch of a re-parameterizable block moves away
    from its initialisation (a fold test on freshly initialised weights would miss branch mix-ups)."""
    import torch.nn.functional as F

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        loss = F.l1_loss(model(torch.rand(2, 3, 16, 16)), torch.rand(2, 3, 16 * scale, 16 * scale))
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for the test: tiny inputs run as fast, and on a shared CPU two OpenMP
    threads spin-wait for seconds (folders of such tests use it autouse from their conftest)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def adam_steps():
    """`adam_steps(model, steps=3, scale=4)`: train a model briefly on random patches."""
    return _adam_steps


@pytest.fixture
def run_edgesr(capsys) -> Callable[..., tuple[int, str, str]]:
    """``run_edgesr(*args)`` -> (exit code, stdout, stderr) of ``edgesr ARGS`` in this process."""
    from edgesr.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(scope="session")
def benchmark_script() -> Callable[[str], object]:
    """``benchmark_script("prune_ablation")`` -> the module benchmarks/prune_ablation.py, loaded from its file
    (benchmarks/ is not a package), registered in sys.modules so its dataclasses can find their module."""
    root = Path(__file__).resolve().parents[1] / "benchmarks"

    def load(name: str) -> object:
        spec = importlib.util.spec_from_file_location(name, root / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    return load

