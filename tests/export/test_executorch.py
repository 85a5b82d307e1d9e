"""ExecuTorch export (XNNPACK) and its runner: dynamic H/W with bounds, parity at three sizes, clear errors.

Tiny models keep this fast; the official-weights figures (RLFN x4, RFDN x4: max abs diff and Set5 PSNR)
are measured by benchmarks/mobile_parity.py.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.errors import ExportError, MissingDependencyError, UserInputError
from edgesr.export import ExportOptions
from edgesr.export.executorch import export_executorch, lower_bound_from_guards
from edgesr.runtimes import create_runner

SIZES = ((24, 21), (33, 17), (41, 40))  # odd sizes included; 33x17 is below the raised bound
SMALL = dict(max_shape=(64, 64), opt_shape=(32, 32))  # small planned memory, fast


def _need_executorch():
    pytest.importorskip("executorch.runtime", reason="executorch not installed (pip install edgesr[executorch])")


def _torch(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


class TinyESA(nn.Module):
    """ESA's geometry in small: stride-2 conv, max_pool(7, 3), bilinear resize back to the input size, gate,
    PixelShuffle x2. Needs >= 15 px like ESA (the pooled map must exist)."""

    min_input_size = 15

    def __init__(self) -> None:
        super().__init__()
        self.scale = 2
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2)
        self.mix = nn.Conv2d(8, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.head(x), 0.05)
        pooled = self.mix(F.max_pool2d(self.down(y), kernel_size=7, stride=3))
        gate = F.interpolate(pooled, size=(x.size(2), x.size(3)), mode="bilinear", align_corners=False)
        return self.shuffle(self.tail(y * torch.sigmoid(gate)))


def _tiny() -> TinyESA:
    torch.manual_seed(0)
    return TinyESA().eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    _need_executorch()
    model = _tiny()
    path = tmp_path_factory.mktemp("et") / "tiny_xnnpack.pte"
    return model, export_executorch(model, path, ExportOptions(parity_sizes=SIZES, max_abs_diff=1e-2, **SMALL))


def test_export_is_dynamic_with_raised_lower_bound(exported) -> None:
    _, res = exported
    assert [p.name for p in res.files] == ["tiny_xnnpack.pte", "tiny_xnnpack.pte.json"]
    side = json.loads(res.sidecar_path.read_text())
    block = side["executorch"]
    assert side["artifact"]["format"] == "executorch" and block["backend"] == "XnnpackBackend"
    assert block["dynamic_shape"] is True
    # ESA's pooled map is 1 px for 15..20 px inputs, a case torch.export guards out: the bound becomes 21
    assert block["height_range"] == [21, 64] and block["width_range"] == [21, 64]
    assert side["min_size"] == 21 and "raised from 15x15 to 21x21" in block["note"]
    assert side["shape_profile"]["max"] == [1, 3, 64, 64]
    assert block["delegate_calls"] >= 1 and block["planned_memory_bytes"] > 0
    assert "aten::upsample_bilinear2d.vec_out" in block["kernels"]  # the dynamic-size resize runs portable
    entries = res.sidecar.parity.entries
    assert [(e.height, e.width) for e in entries] == [(24, 21), (41, 40)]  # 33x17: 17 < 21
    assert all(e.max_abs_diff <= 1e-2 for e in entries)
    assert any("33x17" in w for w in res.warnings)


@pytest.mark.parametrize("shape", [(1, 3, 21, 21), (1, 3, 37, 23), (2, 3, 64, 51)])
def test_runner_matches_pytorch(exported, shape) -> None:
    model, res = exported
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    with create_runner(res.path, threads=1) as runner:
        y = runner.infer(x)
        info = runner.describe()
        stages = runner.last_timing.stages
    assert y.shape == (shape[0], 3, shape[2] * 2, shape[3] * 2)
    np.testing.assert_allclose(y, _torch(model, x), atol=1e-4, rtol=0)
    assert info["backend"] == "executorch" and info["height_range"] == [21, 64] and info["threads"] == 1
    assert set(stages) == {"input", "compute", "output"}


def test_runner_refuses_sizes_outside_the_bounds(exported) -> None:
    _, res = exported
    runner = create_runner(res.path)
    with pytest.raises(UserInputError, match="H, W >= 21"):
        runner.infer(np.zeros((1, 3, 17, 30), np.float32))
    with pytest.raises(UserInputError, match="exceeds .* upper bound 64x64"):
        runner.infer(np.zeros((1, 3, 65, 30), np.float32))


def test_lower_bound_from_guard_message() -> None:
    msg = ("Constraints violated (height, width)!\n"
           "  - Not all values of width = L['x'].size()[3] in the specified range 15 <= width <= 1024 satisfy the "
           "generated guard ((-1) + (((-3) + L['x'].size()[3]) // 6)) != 1.\n"
           "  - Not all values of height = L['x'].size()[2] in the specified range 15 <= height <= 1024 satisfy the "
           "generated guard ((-1) + (((-3) + L['x'].size()[2]) // 6)) != 1.\n")
    assert lower_bound_from_guards(msg, {2: (15, 1024), 3: (15, 1024)}) == {2: 21, 3: 21}
    assert lower_bound_from_guards("something else", {2: (15, 64), 3: (15, 64)}) is None
    evil = msg.replace("// 6", "// __import__('os').getpid()")
    assert lower_bound_from_guards(evil, {2: (15, 64), 3: (15, 64)}) is None


class SizeSpecialised(nn.Module):
    """Reads the input size as Python ints: torch.export can only export one size."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = 2
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[2]), int(x.shape[3])
        grid = torch.ones(1, 1, h * 2, w * 2) if h * w > 0 else None
        return F.interpolate(self.conv(x), scale_factor=2.0, mode="nearest") * grid


def test_static_fallback_is_recorded_and_enforced(tmp_path) -> None:
    _need_executorch()
    res = export_executorch(SizeSpecialised().eval(), tmp_path / "s.pte",
                            ExportOptions(parity_sizes=((24, 24),), **SMALL))
    side = json.loads(res.sidecar_path.read_text())
    assert side["executorch"]["dynamic_shape"] is False and "static 32x32" in side["executorch"]["note"]
    assert side["inputs"][0]["shape"] == [1, 3, 32, 32]
    assert [(e.height, e.width) for e in res.sidecar.parity.entries] == [(32, 32)]
    runner = create_runner(res.path)
    assert runner.infer(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 3, 64, 64)
    with pytest.raises(UserInputError, match="static 32x32 program"):
        runner.infer(np.zeros((1, 3, 24, 24), np.float32))


class Erfinv(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.erfinv(torch.sigmoid(x) * 0.5)


class Sort(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sort(x, dim=1)[0]


class Holder(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.scale = 2
        self.stem = nn.Conv2d(3, 12, 3, padding=1)
        self.odd = inner
        self.up = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.odd(self.stem(x)))


@pytest.mark.parametrize("inner,op,cls", [(Erfinv, "aten.erfinv", "Erfinv"), (Sort, "aten::sort", "Sort")])
def test_op_executorch_cannot_express_is_named(tmp_path, inner, op, cls) -> None:
    _need_executorch()
    with pytest.raises(ExportError) as info:
        export_executorch(Holder(inner()).eval(), tmp_path / "m.pte", ExportOptions(parity_sizes=((24, 24),), **SMALL))
    msg = str(info.value)
    assert "ExecuTorch cannot" in msg and op in msg and f"'odd' ({cls})" in msg
    assert list(tmp_path.iterdir()) == []


def test_bad_options_are_refused(tmp_path) -> None:
    _need_executorch()
    with pytest.raises(UserInputError, match="must end in .pte"):
        export_executorch(_tiny(), tmp_path / "m.onnx")
    with pytest.raises(UserInputError, match="--fp16 is not supported for ExecuTorch"):
        export_executorch(_tiny(), tmp_path / "m.pte", ExportOptions(fp16=True))
    with pytest.raises(UserInputError, match="io 'uint8' is not supported"):
        export_executorch(_tiny(), tmp_path / "m.pte", ExportOptions(io="uint8"))
    with pytest.raises(UserInputError, match="outside the export's shape range"):
        export_executorch(_tiny(), tmp_path / "m.pte", ExportOptions(parity_sizes=((80, 80),), **SMALL))
    assert list(tmp_path.iterdir()) == []


def test_missing_executorch_names_the_extra(tmp_path, monkeypatch) -> None:
    from edgesr.runtimes.executorch_runner import ExecuTorchRunner

    monkeypatch.setitem(sys.modules, "executorch.runtime", None)
    (tmp_path / "m.pte").write_bytes(b"\0" * 8)
    with pytest.raises(MissingDependencyError, match=r"pip install edgesr\[executorch\]"):
        export_executorch(_tiny(), tmp_path / "out.pte")
    with pytest.raises(MissingDependencyError, match=r"pip install edgesr\[executorch\]"):
        ExecuTorchRunner(tmp_path / "m.pte")


def test_corrupt_program_is_a_clear_error(tmp_path) -> None:
    _need_executorch()
    bad = tmp_path / "bad.pte"
    bad.write_bytes(b"not a program at all")
    with pytest.raises(UserInputError, match="ExecuTorch cannot load"):
        create_runner(bad).activate()


def test_thread_pool_is_shared_safely(exported) -> None:
    """The XNNPACK pool is process-wide: sizes may change between runners, not under a loaded one."""
    model, res = exported
    x = np.random.default_rng(4).random((1, 3, 24, 24), dtype=np.float32)
    for threads in (1, 2, 1):  # resized before each load: no program runs on a freed pool
        with create_runner(res.path, threads=threads) as runner:
            np.testing.assert_allclose(runner.infer(x), _torch(model, x), atol=1e-4)
    with create_runner(res.path, threads=1) as first:
        with pytest.raises(UserInputError, match="thread pool is process-wide"):
            create_runner(res.path, threads=2).activate()
        with create_runner(res.path, threads=1) as same:  # the same size is fine
            np.testing.assert_allclose(same.infer(x), first.infer(x))


def test_format_registry_entry() -> None:
    from edgesr.errors import UserInputError as UIE
    from edgesr.export.formats import export_artifact, get_format

    info = get_format("executorch")
    assert info.suffixes == (".pte",) and info.accepts_fp16 is False
    with pytest.raises(UIE, match="does not take --fp16"):
        export_artifact(_tiny(), "unused", "m", "executorch", ExportOptions(fp16=True))
