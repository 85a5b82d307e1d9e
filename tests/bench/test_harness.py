"""The benchmark harness end to end on small inputs: records, reports, plots, suites, bad input.
Timing values are never asserted, only their presence and consistency."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from edgesr.bench.harness import BenchConfig, run_benchmark
from edgesr.bench.report import markdown_report, speedups, write_report
from edgesr.bench.suite import load_suite, parse_size
from edgesr.bench.targets import BackendSpec, target_for_artifact, targets_for_model
from edgesr.cli.main import cli
from edgesr.errors import MissingDependencyError, UserInputError
from edgesr.models import create_model

FAST = dict(warmup_s=0.0, min_iters=2, min_seconds=0.0, max_seconds=5.0)


@pytest.fixture(scope="module")
def tiny_rlfn():
    torch.manual_seed(0)
    model = create_model("rlfn", scale=2, feature_channels=8, num_blocks=1, esa_channels=4).eval()
    return model


def test_torch_and_onnxruntime_records(tiny_rlfn, tmp_path: Path, datasets_dir: Path) -> None:
    specs = [BackendSpec.parse("torch"), BackendSpec.parse("torch:channels_last"), BackendSpec.parse("ort")]
    targets = targets_for_model(tiny_rlfn, specs, tmp_path / "work")
    assert targets[2].artifact.suffix == ".onnx" and targets[2].artifact.exists()
    cfg = BenchConfig(sizes=[(32, 32), (24, 40)], threads=[1], psnr_dataset=datasets_dir / "Set5", psnr_limit=1, **FAST)
    report = run_benchmark(targets, cfg)
    assert len(report.records) == 3 * 2
    rec = report.records[0]
    assert rec.input == "32x32" and rec.threads == 1 and rec.latency["iterations"] >= 2
    assert rec.params == sum(p.numel() for p in tiny_rlfn.parameters()) and rec.convs == 2 + 9 + 1
    assert rec.macs_g > 0 and rec.acts_m > 0
    # Same model, same weights: PSNR through ORT equals PSNR through torch.
    assert report.records[4].psnr == pytest.approx(rec.psnr, abs=0.01)
    assert speedups(report.records)[0] == pytest.approx(1.0)
    assert report.env["cpu"]["logical_cpus"] >= 1
    files = write_report(report, json_path=tmp_path / "r.json", csv_path=tmp_path / "r.csv", md_path=tmp_path / "r.md")
    data = json.loads(files[0].read_text())
    assert {"params", "macs", "acts", "latency_ms", "records", "env"} <= set(data)
    assert "| model |" in markdown_report(report) and "vs torch" in files[2].read_text()
    assert files[1].read_text().count("\n") == 7


def test_images_protocol_and_plots(tiny_rlfn, tmp_path: Path, datasets_dir: Path) -> None:
    pytest.importorskip("matplotlib")
    from edgesr.bench.plots import pareto_plot, resolution_plot

    targets = targets_for_model(tiny_rlfn, [BackendSpec.parse("torch")], tmp_path)
    cfg = BenchConfig(sizes=[(16, 16), (32, 32)], threads=[1], images=datasets_dir / "Set5" / "LR_bicubic" / "X2",
                      limit=2, psnr_dataset=datasets_dir / "Set5", psnr_limit=1, **FAST)
    report = run_benchmark(targets, cfg)
    assert report.records[0].input.startswith("2 images") and report.records[0].latency["iterations"] == 2
    assert pareto_plot(report, tmp_path / "p.png").stat().st_size > 1000
    assert resolution_plot(report, tmp_path / "r.png").stat().st_size > 1000


def test_suite_yaml(tiny_rlfn, tmp_path: Path) -> None:
    onnx_path = targets_for_model(tiny_rlfn, [BackendSpec.parse("ort")], tmp_path)[0].artifact
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"title": "t", "settings": {"sizes": ["32x32"], "threads": [1], **FAST},
                                     "entries": [{"artifact": str(onnx_path), "backend": "onnxruntime"}]}))
    title, cfg, targets = load_suite(suite, tmp_path)
    assert title == "t" and cfg.sizes == [(32, 32)] and targets[0].scale == 2
    report = run_benchmark(targets, cfg)
    assert report.records[0].backend == "onnxruntime"


def test_engine_without_tensorrt_names_the_extra(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 64)
    target = target_for_artifact(engine)
    with pytest.raises(MissingDependencyError, match=r"edgesr\[tensorrt\]"):
        run_benchmark([target], BenchConfig(sizes=[(32, 32)], **FAST))


def test_static_onnx_with_other_size_is_clear(tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2)).eval()
    path = tmp_path / "static.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 32, 32),), str(path), dynamo=True, external_data=False)
    target = target_for_artifact(path)
    with pytest.raises(UserInputError, match="32"):
        run_benchmark([target], BenchConfig(sizes=[(48, 48)], **FAST))


def test_bad_inputs() -> None:
    with pytest.raises(UserInputError, match="Did you mean: onnxruntime|unknown backend"):
        BackendSpec.parse("onnxruntme")
    with pytest.raises(UserInputError, match="allowed"):
        BackendSpec.parse("torch:turbo")
    with pytest.raises(UserInputError, match="HEIGHTxWIDTH"):
        parse_size("big")
    with pytest.raises(UserInputError, match="not found"):
        BenchConfig(images=Path("/nonexistent/images")).validate()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgesr.cli.main", *args], capture_output=True, text=True)


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    proc = _cli("bench", "rlfnn")
    assert proc.returncode == 2 and "Did you mean: rlfn" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("bench", "rlfn", "--psnr-dataset", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "not found" in proc.stderr
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    proc = _cli("bench", "--engine", str(engine), "--size", "32x32")
    assert proc.returncode == 2 and "edgesr[tensorrt]" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_json(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    out = tmp_path / "b.json"
    res = CliRunner().invoke(cli, ["bench", "rlfn_ntire_x4", "--size", "32x32", "--min-seconds", "0", "--min-iters", "2",
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["params"] == 317_218 and abs(data["macs"] / 1e9 - 19.70) < 0.2 and data["latency_ms"] > 0
