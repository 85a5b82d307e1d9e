"""Fixtures of the robustness tests: bad files made once per session, and the CLI run in-process."""
from __future__ import annotations

import os
import traceback
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from edgesr.cli.main import main


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread) -> None:
    """These inputs are tiny: one torch thread (`one_torch_thread` in tests/conftest.py)."""


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _entry(args: tuple[str, ...]) -> None:
    main(list(args))  # the real entry point, with its error handling


class CliResult:
    def __init__(self, code: int | None, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr
        self.output = stdout + stderr


def run_cli(*args: str) -> CliResult:
    """`edgesr ARGS` in-process through click's CliRunner (catch_exceptions=False): an exception that
    escapes main() is a traceback a user would see, reported as such."""
    runner = CliRunner(env={"EDGESR_OFFLINE": "1"})
    try:
        res = runner.invoke(_entry, [str(a) for a in args], catch_exceptions=False)
    except Exception:  # noqa: BLE001 - what the user would see as a traceback
        return CliResult(None, "", "Traceback (escaped main)\n" + traceback.format_exc())
    return CliResult(res.exit_code, res.stdout, res.stderr)


@pytest.fixture(scope="session")
def cli():
    return run_cli


def tiny_onnx(path: Path, *, scale: int = 2, weight: float = 0.25, dtype: str = "float32",
              valid_pool: bool = False) -> Path:
    """A real ONNX super-resolution graph, small enough to build in milliseconds: a 1x1 conv to 3*s*s
    channels and DepthToSpace (optionally a 3x3 max pool without padding first, which refuses tiny inputs).
    `weight` fills the conv (NaN/Inf/huge values make broken artifacts)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    np_dtype = np.float16 if dtype == "float16" else np.float32
    elem = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    c = 3 * scale * scale
    w = np.full((c, 3, 1, 1), weight, dtype=np_dtype)
    nodes, src = [], "input"
    if valid_pool:
        nodes.append(helper.make_node("MaxPool", [src], ["pooled"], kernel_shape=[3, 3]))
        src = "pooled"
    nodes += [helper.make_node("Conv", [src, "w"], ["feat"]),
              helper.make_node("DepthToSpace", ["feat"], ["output"], blocksize=scale, mode="CRD")]
    graph = helper.make_graph(nodes, "tiny_sr",
                              [helper.make_tensor_value_info("input", elem, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("output", elem, ["N", 3, "H2", "W2"])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory, weights_dir: Path) -> Path:
    """A folder of inputs, outside every test's working directory."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(folder / "lr.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "one.png")
    (folder / "notimage.png").write_text("this is not a PNG")
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "notes.txt").write_text("hello")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "exists.png")
    (folder / "exists.json").write_text("{}")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo executed",))

    torch.save({"a": Evil()}, folder / "evil.pth")
    sd = torch.load(weights_dir / "rlfn_x2.pth", map_location="cpu", weights_only=True)
    key = sorted(sd)[3]
    sd[key] = sd[key].clone()
    sd[key].view(-1)[0] = float("nan")
    torch.save(sd, folder / "nan_rlfn_x2.pth")
    (folder / "nan_key.txt").write_text(key)
    tiny_onnx(folder / "tiny_x2.onnx", scale=2)
    tiny_onnx(folder / "pool_x2.onnx", scale=2, valid_pool=True)
    tiny_onnx(folder / "nan_x2.onnx", scale=2, weight=float("nan"))
    tiny_onnx(folder / "overflow_fp16_x2.onnx", scale=2, weight=60000.0, dtype="float16")
    (folder / "images").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / "images" / f"{i}.png")
    return folder


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    """An empty working directory the command runs in (relative outputs land here)."""
    run = tmp_path / "cwd"
    run.mkdir()
    monkeypatch.chdir(run)
    return run


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="session")
def list_files():
    return listing


@pytest.fixture(scope="session")
def make_tiny_onnx():
    return tiny_onnx
