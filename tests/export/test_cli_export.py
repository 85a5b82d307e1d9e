"""`edgesr export` through click's CliRunner: outputs, report, and bad input without tracebacks or files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgesr.cli.main import cli, main
from edgesr.errors import OutputExistsError, UnknownModelError, UserInputError


def run(*args: str):
    return CliRunner().invoke(cli, ["export", *args])


def run_main(capsys, *args: str) -> tuple[int, str]:
    """The real entry point: user errors print one line and exit 2."""
    with pytest.raises(SystemExit) as info:
        main(["export", *args])
    return info.value.code, capsys.readouterr().err


def test_export_rlfn_ntire_cli(tmp_path: Path) -> None:
    out = tmp_path / "art"
    res = run("rlfn_ntire", "-o", str(out), "--parity-size", "32x48", "--parity-size", "17x15",
              "--opset", "17", "--exporter", "torchscript", "--io", "float255")
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["rlfn_ntire_x4_float255.onnx", "rlfn_ntire_x4_float255.onnx.json"]
    side = json.loads((out / "rlfn_ntire_x4_float255.onnx.json").read_text())
    assert side["export"]["opset"] == 17 and side["export"]["io"] == "float255"
    assert side["inputs"][0]["value_range"] == [0.0, 255.0]
    assert [(e["height"], e["width"]) for e in side["parity"]["entries"]] == [(32, 48), (17, 15)]
    assert side["model"]["variant"] == "rlfn_ntire_x4" and side["scale"] == 4
    # the report: model, folding, exporter, node counts, parity, file size
    assert "rlfn_ntire x4" in res.output and "reparam:" in res.output
    assert "exporter: torchscript, opset 17, io float255" in res.output
    assert "graph:" in res.output and "Conv 39" in res.output
    assert "parity 32x48: vs PyTorch max|d|" in res.output and " MiB, sha256 " in res.output

    again = run("rlfn_ntire", "-o", str(out), "--parity-size", "32x48", "--io", "float255")
    assert again.exit_code != 0 and isinstance(again.exception, OutputExistsError)
    forced = run("rlfn_ntire", "-o", str(out), "--parity-size", "32x48", "--io", "float255", "--force",
                 "--name", "custom", "--no-reparam", "--exporter", "torchscript")
    assert forced.exit_code == 0, forced.output
    assert (out / "custom.onnx").is_file() and "reparam: not applied (disabled" in forced.output


def test_existing_output_refused_before_loading_weights(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "rlfn_x4_fp16.onnx").write_bytes(b"keep")

    def no_load(*args, **kwargs):
        raise AssertionError("weights loaded although the output exists")

    monkeypatch.setattr("edgesr.cli.export_cmd.load_model", no_load)
    code, err = run_main(capsys, "rlfn", "--fp16", "-o", str(tmp_path))
    assert code == 2 and "already exists; pass --force" in err and "Traceback" not in err
    assert (tmp_path / "rlfn_x4_fp16.onnx").read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rlfn_x4_fp16.onnx"]


def test_unknown_model_and_bad_options(tmp_path: Path, capsys) -> None:
    code, err = run_main(capsys, "rlfnn", "-o", str(tmp_path))
    assert code == 2 and "unknown model 'rlfnn'" in err and "Did you mean: rlfn" in err
    res = run("rlfnn", "-o", str(tmp_path))
    assert isinstance(res.exception, UnknownModelError)
    res = run("rlfn", "--min-shape", "big", "-o", str(tmp_path))
    assert res.exit_code == 2 and "HEIGHTxWIDTH" in res.output
    res = run("rlfn", "--io", "int4")
    assert res.exit_code == 2 and "float01" in res.output
    res = run("rlfn", "--format", "tflite")
    assert res.exit_code == 2
    res = run("rlfn", "--scale", "8", "-o", str(tmp_path))
    assert isinstance(res.exception, UserInputError) and "supported scales" in str(res.exception)
    res = run("rlfn", "--name", "../escape", "-o", str(tmp_path))
    assert isinstance(res.exception, UserInputError) and "plain file name" in str(res.exception)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run_main(capsys, "rlfn", "-o", str(blocker / "sub"))
    assert code == 2 and "cannot create output folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_export_error_is_reported_without_traceback(tmp_path: Path, monkeypatch) -> None:
    from edgesr.errors import ExportError

    def fail(*args, **kwargs):
        raise ExportError("the model cannot be exported: module 'gate' (X) uses Python control flow")

    monkeypatch.setattr("edgesr.export.onnx_export.export_onnx", fail)
    res = run("rlfn_ntire", "-o", str(tmp_path), "--parity-size", "32x32")
    assert res.exit_code == 1 and "Error: export failed: the model cannot be exported" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert list(tmp_path.iterdir()) == []
