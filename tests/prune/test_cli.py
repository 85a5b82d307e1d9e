"""`edgesr prune` through the real entry point: groups report, a tiny end-to-end run whose folder loads,
benchmarks, exports (ONNX Runtime == PyTorch), user errors (exit 2, one line, nothing written), the
shared report helpers, and the pruning benchmark's quick mode (slow)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch


MODEL = "rlfn_ntire_x4"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lr_images(lr_crops) -> Path:
    """Three DIV2K test LR images (cropped to 96x96 so that loading them is instant)."""
    return lr_crops(3, 96)


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory, lr_images: Path, weights_dir: Path) -> tuple[Path, str]:
    """One tiny pruning run: rlfn_ntire_x4 to 95% of its conv MACs, 2 fine-tune steps (latency: see the
    export test, which times the exported file; the benchmark's quick mode runs the full path)."""
    from click.testing import CliRunner

    from edgesr.cli.main import cli

    out = tmp_path_factory.mktemp("runs") / "pruned"
    res = CliRunner().invoke(cli, ["prune", MODEL, "--target", "flops=0.95", "--images", str(lr_images),
                                   "--steps", "60", "--prune-every", "1", "--crop", "16", "--batch", "2",
                                   "--finetune-steps", "2", "--eval-limit", "1", "--no-latency",
                                   "--threads", "1", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out, res.output


def test_show_groups(run_edgesr, weights_dir: Path) -> None:
    code, out, err = run_edgesr("prune", MODEL, "--show-groups")
    assert code == 0, err
    assert "27 channel groups, 25 prunable" in out
    assert "[1] conv_1: 46 ch, 46 prunable" in out and "out: conv_1[0:46], block_1.c3_r[0:46], conv_2[0:46]" in out
    assert "frozen by:" in out and "model output" in out


def test_end_to_end_folder_and_report(pruned_run: tuple[Path, str]) -> None:
    from edgesr.prune import load_pruned

    out, stdout = pruned_run
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "report.json", "weights.safetensors"]
    assert not (out.parent / f".{out.name}.partial").exists()  # the staging folder was renamed into place
    report = json.loads((out / "report.json").read_text())
    before, after = report["before"], report["after"]
    for key in ("params", "flops", "macs", "ntire_flops", "acts", "convs", "psnr", "ssim"):
        assert before[key] is not None and after[key] is not None, key
    assert before["latency_ms"] is None and after["latency_ms"] is None  # --no-latency
    assert report["target"]["met"] and after["flops"] <= 0.95 * before["flops"] < before["flops"]
    assert after["params"] < before["params"] and after["acts"] <= before["acts"]
    assert before["params"] == 317_218 and before["flops"] == 19_658_082_304  # docs/reference.md, conv MACs
    assert set(before["quality"]) == {"Set5"} and before["quality"]["Set5"]["images"] == 1
    assert 25 < after["psnr"] < 40 and abs(after["psnr"] - before["psnr"]) < 1.0
    assert report["ratios"]["macs"] <= 0.95 and report["ratios"]["latency"] is None
    assert report["prune"]["prunes"] == len(report["prune"]["history"]) > 0
    assert report["settings"]["round_to"] == 4
    changed = [w for w in report["prune"]["widths"].values() if w["kept"] != w["width"]]
    assert changed and all(w["kept"] % 4 == 0 and w["kept"] >= 4 for w in changed)
    # what the command printed: the summary, the before/after table and the ratios
    assert "met after" in stdout and "NTIRE FLOPs (G)" in stdout and "rlfn_ntire x4 pruned" in stdout
    assert "pruned / unpruned: params x" in stdout and f"wrote {out}" in stdout
    model = load_pruned(out)
    assert sum(p.numel() for p in model.parameters()) == after["params"]
    with torch.no_grad():
        assert model(torch.rand(1, 3, 25, 23)).shape == (1, 3, 100, 92)


def test_pruned_folder_exports_and_matches_in_onnxruntime(pruned_run, lr_images: Path, tmp_path: Path,
                                                           run_edgesr) -> None:
    import onnxruntime as ort

    from edgesr.data import find_images, read_image
    from edgesr.prune import load_pruned
    from edgesr.bench.prune_report import ModelMeasurement, measure_latencies

    out, _ = pruned_run
    code, stdout, err = run_edgesr("export", MODEL, "--pruned", str(out), "-o", str(tmp_path),
                                 "--parity-size", "24x24", "--threads", "2")
    assert code == 0, err
    onnx_path = tmp_path / "rlfn_ntire_x4_pruned.onnx"
    assert onnx_path.is_file() and (tmp_path / "rlfn_ntire_x4_pruned.onnx.json").is_file()
    assert "pruned" in stdout and "parity 24x24" in stdout
    img = read_image(find_images(lr_images)[0])[:40, :36]
    x = np.ascontiguousarray((img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
    with torch.no_grad():
        ref = load_pruned(out)(torch.from_numpy(x)).numpy()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert got.shape == ref.shape == (1, 3, 160, 144)
    assert np.abs(got - ref).max() * 255.0 <= 1e-3
    # the latency helper times exported files alike: same threads, interleaved rounds, >= min_runs each
    report = json.loads((out / "report.json").read_text())
    runs = [ModelMeasurement.from_dict(report["before"]), ModelMeasurement.from_dict(report["after"])]
    measure_latencies(runs, [onnx_path, onnx_path], threads=1, input_size=32, min_runs=3, round_size=2)
    for m in runs:
        assert m.latency_ms > 0 and m.latency["threads"] == 1 and m.latency["iterations"] == 4
        assert m.latency["input"] == "1x3x32x32" and m.latency["min_ms"] <= m.latency_ms
    # a folder of another model is refused with the model to use
    code, _, err = run_edgesr("export", "rlfn_x4", "--pruned", str(out), "-o", str(tmp_path / "other"))
    assert code == 2 and "holds a pruned rlfn_ntire x4" in err


def test_pruned_folder_benchmarks(pruned_run, tmp_path: Path, run_edgesr) -> None:
    out, _ = pruned_run
    code, stdout, err = run_edgesr("bench", MODEL, "--stage", "pruned", "--pruned", str(out), "--size", "32x32",
                                 "--threads", "1", "--min-iters", "2", "--min-seconds", "0",
                                 "--json", str(tmp_path / "b.json"))
    assert code == 0, err
    rec = json.loads((tmp_path / "b.json").read_text())["records"][0]
    report = json.loads((out / "report.json").read_text())
    assert rec["stage"] == "pruned" and rec["params"] == report["after"]["params"]


# -------------------------------------------------------------------------------------------------- errors

def _expect_user_error(run_edgesr, out: Path, *args: str, match: str) -> str:
    code, stdout, err = run_edgesr("prune", *args, "-o", str(out))
    assert code == 2, (stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and match in lines[0], err
    assert "Traceback" not in err
    assert not (out.parent / f".{out.name}.partial").exists()
    return lines[0]


def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, lr_images: Path, run_edgesr,
                                                             weights_dir: Path) -> None:
    out = tmp_path / "out"
    base = ("--target", "flops=0.9", "--images")
    _expect_user_error(run_edgesr, out, MODEL, *base, str(tmp_path / "missing"), match="does not exist")
    (tmp_path / "empty").mkdir()
    _expect_user_error(run_edgesr, out, MODEL, *base, str(tmp_path / "empty"), match="contains no images")
    _expect_user_error(run_edgesr, out, MODEL, "--target", "flops=0.9", match="pass --images")
    _expect_user_error(run_edgesr, out, "nosuchnet", *base, str(lr_images), match="unknown model 'nosuchnet'")
    _expect_user_error(run_edgesr, out, MODEL, "--target", "speed=2", "--images", str(lr_images), match="target kind")
    line = _expect_user_error(run_edgesr, out, MODEL, "--target", "flops=0.001", "--images", str(lr_images),
                              "-q", match="cannot be reached")
    assert "smallest reachable flops is" in line
    # a model whose graph the channel analysis cannot see through names the op and the module
    code, stdout, err = run_edgesr("prune", "rlfn_rep", "--show-groups")
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert "rlfn_rep is in its training form" in err and "RepConv" in err and "fold them first" in err
    assert not out.exists()


def test_existing_output_is_refused_before_any_work(tmp_path: Path, lr_images: Path, run_edgesr, monkeypatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("keep")

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded although the output exists")

    monkeypatch.setattr("edgesr.cli.common.load_model", no_load)
    _expect_user_error(run_edgesr, out, MODEL, "--target", "flops=0.9", "--images", str(lr_images),
                       match="already exists and is not empty; pass --force")
    assert sorted(p.name for p in out.iterdir()) == ["config.json"] and (out / "config.json").read_text() == "keep"
    # an interrupted run's staging folder needs --resume (continue) or --force (start over)
    shutil.rmtree(out)
    staging = tmp_path / ".out.partial"
    staging.mkdir()
    code, _, err = run_edgesr("prune", MODEL, "--target", "flops=0.9", "--images", str(lr_images),
                            "-o", str(out))
    assert code == 2 and "--resume" in err and staging.is_dir() and not out.exists()


def test_force_replaces_an_existing_result(tmp_path: Path, lr_images: Path, run_edgesr, weights_dir: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    code, stdout, err = run_edgesr("prune", MODEL, "--target", "flops=0.99", "--images", str(lr_images),
                                 "--prune-every", "1", "--crop", "16", "--batch", "2", "--no-eval", "--no-latency",
                                 "--threads", "1", "-q", "--force", "-o", str(out))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "report.json", "weights.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or replaced folder left behind
    report = json.loads((out / "report.json").read_text())
    assert report["target"]["met"] and report["before"]["psnr"] is None and report["settings"]["eval_datasets"] == []


# -------------------------------------------------------------------------------------------------- report helpers

def test_report_table_and_ratios() -> None:
    from edgesr.bench.prune_report import ModelMeasurement, format_table, ratios

    a = ModelMeasurement("big", params=1000, macs=2_000_000_000, ntire_flops=2_100_000_000, acts=5_000_000, convs=4,
                         quality={"Set5": {"psnr": 32.0, "ssim": 0.9, "images": 5}}, latency_ms=10.0,
                         latency={"threads": 2})
    b = ModelMeasurement("small", params=500, macs=1_000_000_000, ntire_flops=1_050_000_000, acts=4_000_000, convs=4,
                         quality={"Set5": {"psnr": 31.5, "ssim": 0.89, "images": 5}}, latency_ms=6.0,
                         latency={"threads": 2})
    r = ratios(a, b)
    assert r["params"] == 0.5 and r["macs"] == 0.5 and r["acts"] == 0.8 and r["latency"] == 0.6
    assert r["Set5_psnr_delta_db"] == pytest.approx(-0.5)
    md = format_table([a, b], markdown=True).splitlines()
    assert md[0].startswith("| model | params | conv MACs (G) | NTIRE FLOPs (G)") and "ORT CPU ms (2t)" in md[0]
    assert md[3] == "| small | 500 | 1.000 | 1.050 | 4.000 | 4 | 6.0 | 31.5000 / 0.89000 |"
    d = b.to_dict()
    assert d["flops"] == d["macs"] and d["psnr"] == 31.5
    assert ModelMeasurement.from_dict(json.loads(json.dumps(d))) == b


# -------------------------------------------------------------------------------------------------- benchmark

@pytest.mark.slow
def test_benchmark_quick_mode(tmp_path: Path, datasets_dir: Path, weights_dir: Path) -> None:
    results = tmp_path / "quick.md"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "prune_rlfn_to_ntire.py"), "--quick",
                           "--results", str(results), "--output", str(tmp_path / "pruned")],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={**__import__("os").environ, "EDGESR_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = results.read_text()
    for row in ("| RLFN x4 (official) | 543,740 | 33.931 |", "| RLFN-NTIRE x4 (hand-pruned, official) | 317,218 |",
                "| RLFN x4 pruned by edgesr"):
        assert row in text
    assert "How far from RLFN-NTIRE at equal size" in text and "What a longer (GPU) run would need" in text
    summary = json.loads((tmp_path / "pruned" / "benchmark.json").read_text())
    assert summary["target_met"] and summary["models"][1]["macs"] <= summary["models"][2]["macs"]
