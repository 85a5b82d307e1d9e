"""Bad input to `export_onnx` / `edgesr export`: each a clear UserInputError/ExportError, no file left behind."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from edgesr.errors import ExportError, OutputExistsError, UnknownModelError, UserInputError
from edgesr.export import ExportOptions, export_onnx



def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


class DataDependent(nn.Module):
    """Python control flow on a tensor value: a trace would silently keep one branch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0.5:
            return x * 2
        return x


class Histogram(nn.Module):
    """An op neither exporter can express (aten::histc)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.histc(x, bins=4).sum() * 0.0


class Wrapper(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.scale = 2
        self.stem = nn.Conv2d(3, 3, 3, padding=1)
        self.gate = inner
        self.up = nn.PixelShuffle(2)
        self.expand = nn.Conv2d(3, 12, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.expand(self.gate(self.stem(x))))


@pytest.mark.parametrize("exporter", ["torchscript", "auto"])
def test_data_dependent_control_flow_is_refused(fast, exporter: str, tmp_path: Path) -> None:
    path = tmp_path / "out" / "m.onnx"
    with pytest.raises(ExportError) as info:
        export_onnx(Wrapper(DataDependent()).eval(), path,
                    ExportOptions(**{**fast, "exporter": exporter}))
    msg = str(info.value)
    assert "module 'gate' (DataDependent)" in msg and "if x.mean() > 0.5:" in msg
    assert "Python control flow" in msg
    assert _leftovers(path.parent) == []


def test_unsupported_op_names_op_and_module(fast, tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    with pytest.raises(ExportError) as info:
        export_onnx(Wrapper(Histogram()).eval(), path, ExportOptions(**fast))
    msg = str(info.value)
    assert "aten::histc" in msg and "'gate' (Histogram)" in msg
    assert _leftovers(tmp_path) == []


def test_fp16_overflow_fails_clearly(fast, hot_sr, tmp_path: Path) -> None:
    path = tmp_path / "hot.onnx"
    model = hot_sr
    with pytest.raises(ExportError) as info:
        export_onnx(model, path, ExportOptions(**fast, fp16=True))
    msg = str(info.value)
    assert "65504" in msg and "NaN/inf" in msg
    assert "module 'amplify'" in msg and "values up to 9" in msg  # where, and by how much
    assert "drop --fp16" in msg and "--io float01" in msg
    assert _leftovers(tmp_path) == []
    # FP32 is fine
    res = export_onnx(model, path, ExportOptions(**fast))
    assert res.sidecar.parity.max_abs_diff < 1e-3


def test_fp16_initializer_beyond_range(fast, hot_sr, tmp_path: Path) -> None:
    model = hot_sr
    with torch.no_grad():
        model.amplify.weight.fill_(1e5)
        model.restore.weight.mul_(0.3)
    with pytest.raises(ExportError, match="float16 maximum 65504"):
        export_onnx(model, tmp_path / "w.onnx", ExportOptions(**fast, fp16=True, reparam=False))
    assert _leftovers(tmp_path) == []


def test_existing_output_checked_before_any_work(fast, tiny_sr, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise AssertionError("export started although the output exists")

    monkeypatch.setattr("edgesr.export.onnx_export.export_torch_to_onnx", boom)
    with pytest.raises(OutputExistsError, match="--force"):
        export_onnx(tiny_sr, path, ExportOptions(**fast))
    (tmp_path / "n.onnx.json").write_text("{}")  # the sidecar alone also blocks
    with pytest.raises(OutputExistsError):
        export_onnx(tiny_sr, tmp_path / "n.onnx", ExportOptions(**fast))
    assert path.read_bytes() == b"old"
    monkeypatch.undo()
    res = export_onnx(tiny_sr, path, ExportOptions(**fast, force=True))
    assert path.read_bytes() != b"old" and res.sidecar_path.is_file()


def test_unwritable_output_dir(fast, tiny_sr, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserInputError, match="cannot create output folder"):
        export_onnx(tiny_sr, blocker / "sub" / "m.onnx", ExportOptions(**fast))
    if os.geteuid() != 0:  # root writes everywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(UserInputError, match="not writable"):
                export_onnx(tiny_sr, ro / "m.onnx", ExportOptions(**fast))
        finally:
            ro.chmod(0o700)


@pytest.mark.parametrize("bad, match", [
    (dict(io="uint16"), "unknown io"),
    (dict(opset=9), "opset must be"),
    (dict(exporter="magic"), "unknown exporter"),
    (dict(min_shape=(8, 8), opt_shape=(4, 4)), "min <= opt <= max"),
    (dict(parity_sizes=()), "at least one parity size"),
    (dict(batch=(2, 1, 4)), "batch must be"),
])
def test_bad_options(fast, bad: dict, match: str, tiny_sr, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=match):
        export_onnx(tiny_sr, tmp_path / "m.onnx", ExportOptions(**{**fast, **bad}))
    assert _leftovers(tmp_path) == []


def test_bad_path_and_below_min_size(fast, tiny_sr, tmp_path: Path) -> None:
    from edgesr.models import create_model

    with pytest.raises(UserInputError, match=r"must end in \.onnx"):
        export_onnx(tiny_sr, tmp_path / "m.pt", ExportOptions(**fast))
    rlfn = create_model("rlfn_ntire", scale=4)  # ESA: inputs must be >= 15
    with pytest.raises(UserInputError, match="minimum input size 15"):
        export_onnx(rlfn, tmp_path / "r.onnx", ExportOptions(**fast, min_shape=(8, 8)))
    with pytest.raises(UserInputError, match="parity size 12x40 is below"):
        export_onnx(rlfn, tmp_path / "r.onnx", ExportOptions(parity_sizes=((12, 40),)))


def test_unknown_model() -> None:
    from edgesr.models import create_model

    with pytest.raises(UnknownModelError, match="Did you mean: rlfn"):
        create_model("rlfm")

