"""`edgesr optimize`: candidates and their skip reasons, the decision, the resumable state, bad input, and a real
(tiny) search whose chosen artifact runs through `upscale`, `bench` and `eval --artifact`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgesr.cli.main import main
from edgesr.optimize.candidates import enumerate_candidates, parse_backends
from edgesr.optimize.decide import decide
from edgesr.optimize.state import STATE_NAME, CandidateResult
from edgesr.optimize.targets import Machine, get_target

AMX = Machine(cpu="test", arch="x86_64", cpus=2, isa={"amx_bf16": True, "avx512_bf16": True, "amx_tile": True})
PLAIN = Machine(cpu="test", arch="x86_64", cpus=2, isa={"avx2": True})
TINY = {"feature_channels": 12, "esa_channels": 4, "num_blocks": 2}


# ---- candidates -------------------------------------------------------------------------------------------------
def test_candidates_cover_runtimes_and_precisions_with_reasons():
    cands, skipped = enumerate_candidates(["m"], get_target("cpu"), AMX)
    keys = {c.key for c in cands}
    assert {"m:torch:fp32", "m:torch.compile:fp32", "m:openvino:bf16", "m:onnxruntime:int8"} <= keys
    assert cands[0].key == "m:torch:fp32"  # the baseline is built first, INT8 (slowest exports) last
    assert all(c.precision == "int8" for c in cands[-3:])
    reasons = {s.key: s.reason for s in skipped}
    assert "--target cuda" in reasons["m:tensorrt:fp16"]
    assert "amx_fp16" in reasons["m:torch:fp16"]  # no fp16 matrix unit: skipped, and said why


def test_no_bf16_without_the_isa_nor_on_mobile_cpu():
    cands, skipped = enumerate_candidates(["m"], get_target("cpu"), PLAIN)
    assert not [c for c in cands if c.precision == "bf16"]
    assert "avx512_bf16" in {s.key: s.reason for s in skipped}["m:openvino:bf16"]
    cands, skipped = enumerate_candidates(["m"], get_target("mobile-cpu"), AMX)
    assert not [c for c in cands if c.precision in ("bf16", "fp16")]
    assert "no bf16/AMX" in {s.key: s.reason for s in skipped}["m:openvino:bf16"]
    mobile = get_target("mobile-cpu")
    assert mobile.thread_count(AMX) == 1 and mobile.size_labels == ["128x128", "360x640"]


def test_missing_backend_is_skipped_naming_its_extra(monkeypatch):
    from edgesr.runtimes import get_backend

    info = get_backend("ncnn")
    monkeypatch.setattr(type(info), "is_available", lambda self: self.name != "ncnn")
    cands, skipped = enumerate_candidates(["m"], get_target("cpu"), AMX, parse_backends(["ncnn,onnxruntime"]))
    assert {c.runtime for c in cands} == {"torch", "onnxruntime"}  # eager FP32 always: the baseline
    assert "pip install edgesr[mobile]" in {s.key: s.reason for s in skipped}["m:ncnn:fp32"]


def test_backend_names_are_checked():
    from edgesr.errors import UserInputError

    assert parse_backends(["ov", "eager,trt", "ort"]) == ["openvino", "torch", "tensorrt", "ort"]
    with pytest.raises(UserInputError, match="openvino"):
        parse_backends(["openvinoo"])


# ---- decision ---------------------------------------------------------------------------------------------------
def _result(key: str, fmt: str | None, psnr: float, ms: float) -> CandidateResult:
    variant, runtime, precision = key.split(":")
    return CandidateResult(key=key, variant=variant, runtime=runtime, backend=runtime, precision=precision, fmt=fmt,
                           psnr=psnr, latency={"64x64": {"median_ms": ms, "p90_ms": ms * 1.1}})


RESULTS = [_result("m:torch:fp32", None, 32.0, 100.0), _result("m:torch:bf16", None, 31.99, 20.0),
           _result("m:onnxruntime:fp32", "onnx", 32.0, 50.0), _result("m:openvino:bf16", "onnx", 31.996, 25.0),
           _result("m:onnxruntime:int8", "onnx-int8", 31.8, 10.0)]


def test_decision_is_the_fastest_deployable_within_budget():
    d = decide(RESULTS, "m:torch:fp32", "64x64", 0.05)
    assert d.chosen.result.key == "m:openvino:bf16" and d.chosen.speedup == pytest.approx(4.0)
    assert d.chosen.drop_db == pytest.approx(0.004)
    assert "m:torch:bf16" in d.notes[0]  # a faster torch row is reported, never chosen (no file to ship)
    front = [r.result.key for r in d.rows if r.on_front]
    assert front == ["m:onnxruntime:int8", "m:torch:bf16", "m:openvino:bf16", "m:onnxruntime:fp32"]


def test_budget_no_candidate_meets_names_the_closest():
    from edgesr.optimize.report import summary_line
    from edgesr.optimize.search import OptimizeResult

    d = decide(RESULTS, "m:torch:fp32", "64x64", 0.05)
    strict = decide([r for r in RESULTS if r.key != "m:onnxruntime:fp32"], "m:torch:fp32", "64x64", 0.001)
    assert strict.chosen is None and strict.closest.result.key == "m:openvino:bf16"
    line = summary_line(OptimizeResult(strict, RESULTS, [], get_target("cpu"), AMX, 2, "Set5", 1.0), None)
    assert "closest is openvino bf16 at -0.004 dB" in line
    assert d.ok


# ---- bad input --------------------------------------------------------------------------------------------------
def test_missing_validation_set_is_one_error_line(run_edgesr, tmp_path):
    code, _, err = run_edgesr("optimize", "rlfn", "--val", str(tmp_path / "nope"), "-o", str(tmp_path / "o"))
    assert code == 2 and err.startswith("Error: dataset") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_bad_options_are_refused(run_edgesr, tmp_path):
    code, _, err = run_edgesr("optimize", "rlfn", "--max-drop", "-1", "-o", str(tmp_path / "o"))
    assert code == 2 and "--max-drop" in err
    code, _, err = run_edgesr("optimize", "rlfn", "-b", "tensorflow", "-o", str(tmp_path / "o"))
    assert code == 2 and "unknown runtime" in err


# ---- a real tiny search -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_val(tmp_path_factory) -> Path:
    """Two small HR images (LR made with MATLAB bicubic at x2)."""
    from edgesr.data import write_image

    folder = tmp_path_factory.mktemp("tinyval") / "HR"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        base = np.linspace(0, 255, 48, dtype=np.float32)
        img = (base[None, :, None] * 0.5 + base[:, None, None] * 0.4 + rng.random((48, 48, 3)) * 25)
        write_image(folder / f"img{i}.png", np.clip(img, 0, 255).astype(np.uint8))
    return folder.parent


def _tiny(seed: int = 0):
    import torch

    from edgesr.models import create_model

    torch.manual_seed(seed)
    return create_model("rlfn", scale=2, **TINY).eval()


def _config(out: Path, val: Path, **kw):
    from edgesr.optimize import OptimizeConfig

    base = dict(out_dir=out, val=val, sizes=[(24, 24)], memory=False, progress=False, backends=["torch"],
                precisions=["fp32"], target="mobile-cpu")
    base.update(kw)
    return OptimizeConfig(**base)


def test_interrupted_run_is_resumed(tmp_path, tiny_val, monkeypatch):
    """A search stopped after its first candidate keeps it in the state file; --resume builds only the rest."""
    import edgesr.optimize.search as search
    from edgesr.errors import UserInputError

    real = search.build_candidate
    calls: list[str] = []

    def interrupted(cand, ctx, cache):
        if calls:
            raise KeyboardInterrupt
        calls.append(cand.key)
        return real(cand, ctx, cache)

    monkeypatch.setattr(search, "build_candidate", interrupted)
    monkeypatch.setattr(search, "fold", lambda m: m)  # the tiny models have nothing to fold; skip its profiling
    model, pruned = _tiny(0), {"p": _tiny(1)}
    with pytest.raises(KeyboardInterrupt):
        search.run_optimize(model, _config(tmp_path, tiny_val), pruned)
    state = json.loads((tmp_path / STATE_NAME).read_text())
    assert list(state["results"]) == ["rlfn_x2:torch:fp32"] and not state["latency_done"]
    with pytest.raises(UserInputError, match="--resume"):
        search.run_optimize(model, _config(tmp_path, tiny_val), pruned)

    built: list[str] = []
    monkeypatch.setattr(search, "build_candidate", lambda c, ctx, cache: (built.append(c.key), real(c, ctx, cache))[1])
    result = search.run_optimize(model, _config(tmp_path, tiny_val, resume=True), pruned)
    assert built == ["rlfn_x2_p:torch:fp32"]
    assert {r.key for r in result.results} == {"rlfn_x2:torch:fp32", "rlfn_x2_p:torch:fp32"}
    assert all(r.latency["24x24"]["iterations"] >= 10 for r in result.results)
    with pytest.raises(UserInputError, match="another setup"):
        search.run_optimize(_tiny(2), _config(tmp_path, tiny_val, resume=True), pruned)


@pytest.fixture(scope="module")
def tiny_search(tmp_path_factory, tiny_val) -> tuple[Path, Path]:
    """A real search of a tiny RLFN x2 over eager PyTorch and ONNX Runtime; (output folder, weights file)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tinysearch")
    weights = folder / "tiny_rlfn_x2.safetensors"
    save_file(_tiny(0).state_dict(), str(weights))
    code = 0
    try:
        main(["optimize", "--weights", str(weights), "--val", str(tiny_val), "--size", "24x24", "-b", "onnxruntime",
              "--precision", "fp32", "--no-memory", "-q", "-o", str(folder / "out")])
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 0
    return folder / "out", weights


@pytest.mark.slow
def test_search_writes_table_plot_and_chosen_artifact_with_its_decision(tiny_search):
    out, _ = tiny_search
    chosen = out / "rlfn_x2.onnx"
    side = json.loads((out / "rlfn_x2.onnx.json").read_text())["optimize"]
    assert side["chosen"] == "rlfn_x2:onnxruntime:fp32" and side["runtime"]["backend"] == "onnxruntime"
    ev = side["evidence"]
    assert abs(ev["drop_db"]) < 0.01 and ev["speedup_vs_eager"] > 0 and ev["iterations"] >= 10
    md = next(out.glob("optimize_rlfn_x2_*.md")).read_text()
    assert "**best: onnxruntime fp32 —" in md and "(chosen)" in md and "| 24x24 median ms |" in md
    assert next(out.glob("optimize_rlfn_x2_*.png")).stat().st_size > 1000
    rows = json.loads(next(out.glob("optimize_rlfn_x2_*.json")).read_text())["rows"]
    assert {r["candidate"] for r in rows} == {"rlfn_x2:torch:fp32", "rlfn_x2:onnxruntime:fp32"}
    from edgesr.artifacts import Sidecar, load_schema
    import jsonschema

    jsonschema.Draft202012Validator(load_schema()).validate(json.loads((out / "rlfn_x2.onnx.json").read_text()))
    assert Sidecar.for_artifact(chosen).recommended_runtime() == ("onnxruntime", {})


@pytest.mark.slow
def test_chosen_artifact_runs_through_upscale_bench_and_eval(tiny_search, tiny_val, run_edgesr, tmp_path):
    out, _ = tiny_search
    chosen = out / "rlfn_x2.onnx"
    lr = next((tiny_val / "HR").glob("*.png"))
    code, _, err = run_edgesr("upscale", "--artifact", str(chosen), str(lr), str(tmp_path / "sr.png"))
    assert code == 0, err
    from edgesr.data import read_image

    assert read_image(tmp_path / "sr.png").shape == (96, 96, 3)
    code, outp, err = run_edgesr("bench", "--artifact", str(chosen), "--size", "24x24", "--min-iters", "2",
                                "--min-seconds", "0")
    assert code == 0, err
    assert "onnxruntime" in outp
    code, outp, err = run_edgesr("eval", "--artifact", str(chosen), "-d", str(tiny_val))
    assert code == 0, err
    assert "PSNR" in outp or "psnr" in outp.lower()


@pytest.mark.slow
def test_existing_search_needs_resume_or_force(tiny_search, run_edgesr):
    out, weights = tiny_search
    code, _, err = run_edgesr("optimize", "--weights", str(weights), "--val", "Set5", "-o", str(out))
    assert code == 2 and "--resume" in err


@pytest.mark.slow
def test_budget_no_candidate_meets_exits_1_naming_the_closest(run_edgesr, tmp_path, datasets_dir):
    """Official RLFN x4 on OpenVINO bf16 loses a little Y-PSNR (about 0.004 dB on Set5): a zero budget is met by
    no deployable candidate, and the error names the closest one with its drop."""
    from edgesr.optimize.targets import detect_machine

    code, _, err = run_edgesr("optimize", "rlfn", "--scale", "4", "--val", str(datasets_dir / "Set5"),
                              "--size", "32x32", "-b", "openvino", "--precision", "bf16",
                              "--max-drop", "0", "--no-memory", "-q", "-o", str(tmp_path / "out"))
    assert code == 1, err
    assert err.startswith("Error: no ") and len(err.strip().splitlines()) == 1
    if detect_machine().bf16:
        assert "Error: no candidate within --max-drop 0 dB Set5: the closest is openvino bf16 at -0.0" in err
    else:
        assert "no deployable candidate was measured" in err


# ---- the decision in the sidecar steers the runners -------------------------------------------------------------
def test_sidecar_decision_sets_the_runtime_of_bench_and_create_runner(tmp_path, monkeypatch):
    import edgesr.runtimes.registry as registry
    from edgesr.artifacts import Sidecar
    from edgesr.bench.targets import target_for_artifact

    art = tmp_path / "m.onnx"
    art.write_bytes(b"not really onnx")
    side = Sidecar.minimal(art, scale=2)
    side.blocks["optimize"] = {"chosen": "m:openvino:bf16", "runtime": {"backend": "openvino",
                                                                        "options": {"precision": "bf16"}}}
    side.save(tmp_path)
    assert Sidecar.for_artifact(art).recommended_runtime() == ("openvino", {"precision": "bf16"})
    assert target_for_artifact(art).spec.label == "openvino:bf16"
    assert target_for_artifact(art, "onnxruntime").spec.label == "onnxruntime"  # a named backend wins
    assert registry._recommended(art, {"threads": 1}) == ("openvino", {"precision": "bf16", "threads": 1})
    assert registry._recommended(art, {"precision": "f32"})[1] == {"precision": "f32"}  # the caller's options win


def test_interleaved_timing_rotates_and_counts_rounds():
    from edgesr.bench.latency import measure_interleaved

    now = [0.0]
    order: list[str] = []

    def work(name: str, cost: float):
        def call() -> None:
            order.append(name)
            now[0] += cost
        return call

    stats = measure_interleaved({"a": work("a", 0.01), "b": work("b", 0.03)}, warmup_iters=1, min_iters=10,
                                clock=lambda: now[0])
    assert stats["a"].iterations == stats["b"].iterations == 10
    assert stats["a"].median_ms == pytest.approx(10.0) and stats["b"].median_ms == pytest.approx(30.0)
    assert order[2:6] == ["a", "b", "b", "a"]  # warm-up a, b; then rounds a-b, b-a, ...


def test_time_bound_estimates_the_slow_builds():
    from edgesr.optimize.search import _build_estimate_s
    from edgesr.optimize.state import SearchState

    cands, _ = enumerate_candidates(["m"], get_target("cpu"), AMX)
    by_key = {c.key: c for c in cands}
    state = SearchState(fingerprint={})
    state.results["m:torch:fp32"] = CandidateResult("m:torch:fp32", "m", "torch", "torch", "fp32", build_s=40.0)
    state.results["m:onnxruntime:fp32"] = CandidateResult("m:onnxruntime:fp32", "m", "onnxruntime", "onnxruntime",
                                                          "fp32", fmt="onnx", build_s=26.0)
    assert _build_estimate_s(by_key["m:torch.compile:fp32"], state) == pytest.approx(360.0)
    assert _build_estimate_s(by_key["m:onnxruntime:int8"], state) == pytest.approx(416.0)
    assert _build_estimate_s(by_key["m:ncnn:fp32"], state) == 0.0
    from edgesr.optimize.search import OptimizeConfig, _latency_reserve_s

    r = CandidateResult("m:ncnn:fp32", "m", "ncnn", "ncnn", "fp32", fmt="ncnn", call_ms={"64x64": 2000.0})
    config = OptimizeConfig(out_dir=Path("."))
    assert _latency_reserve_s([r], config) == pytest.approx(2.0 * 11 * 1.25)
    r.latency["64x64"] = {"median_ms": 1000.0, "p90_ms": 1100.0}  # a resumed search: its last timing run
    assert _latency_reserve_s([r], config) == pytest.approx(1.0 * 11 * 1.25)
