"""Measured latency tables for latency-normalised pruning.

The arithmetic (ms per channel, clipping, noise, the constant part, JSON round trip) runs on a fake runner and a
fake clock whose times are a known function of each model; no test asserts a measured time. One real run on a
tiny RLFN in ONNX Runtime checks the structure only, and the CLI runs `--latency-table auto` end to end with real
exports and runners while the clock is controlled, so that its pruning steps are deterministic."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from edgesr.bench.latency import LatencyStats
from edgesr.bench.latency_table import (
    check_backend,
    measure_latency_table,
    read_latency_table,
    saving_per_channel,
    thinned_models,
)
from edgesr.errors import MissingDependencyError, UserInputError
from edgesr.models import create_model
from edgesr.prune import Pruner, trace_channels

TINY = {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4}
BASE_S = 1e-3  # the fake runner's fixed cost per call (1 ms)
PER_PARAM_S = 1e-7  # ... plus 0.1 µs per parameter
SLOW_S = 5e-4  # ... plus 0.5 ms when block_1.c1_r lost channels (a thinning that makes the model slower)


def tiny_rlfn() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("rlfn", scale=2, **TINY).eval()


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def call_seconds(model: torch.nn.Module) -> float:
    slow = model.block_1.c1_r.out_channels < TINY["feature_channels"]
    return BASE_S + PER_PARAM_S * n_params(model) + (SLOW_S if slow else 0.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeRunner:
    """Each call moves the fake clock by `call_seconds(model)`."""

    def __init__(self, model: torch.nn.Module, clock: FakeClock) -> None:
        self.model, self.clock, self.seconds = model, clock, call_seconds(model)
        self.calls = 0
        self.active = False

    def activate(self) -> "FakeRunner":
        self.active = True
        return self

    def deactivate(self) -> None:
        self.active = False

    def infer(self, x: np.ndarray) -> None:
        assert self.active
        self.calls += 1
        self.clock.now += self.seconds


@pytest.fixture(scope="module")
def faked():
    """A table measured on the fake runner (round_to 2: every group of the tiny RLFN can lose 2 channels)."""
    clock = FakeClock()
    runners: dict[str, FakeRunner] = {}
    lines: list[str] = []

    def make_runner(model, label):
        runners[label] = FakeRunner(model, clock)
        return runners[label]

    model = tiny_rlfn()
    table = measure_latency_table(model, input_size=(32, 32), threads=1, round_to=2, runs=3, warmup=1,
                                  progress=lines.append, make_runner=make_runner, clock=clock)
    return model, table, runners, lines


def prunable_names(model: torch.nn.Module) -> list[str]:
    return [g.name for g in trace_channels(model).groups if not g.is_frozen]


def test_ms_per_channel_is_the_median_difference_over_removed_channels(faked) -> None:
    model, table, runners, _ = faked
    base_s = call_seconds(model)
    assert table.base_ms == pytest.approx(base_s * 1e3, rel=1e-9)
    assert list(table.groups) == prunable_names(model)  # the Pruner's group names, in its order
    index = {g.name: g.index for g in trace_channels(model).groups}
    for name, d in table.details.items():
        label = f"group_{index[name]}"
        assert _thinned_group(model, runners[label].model) == name
        expected = (base_s - call_seconds(runners[label].model)) * 1e3 / d.removed
        assert d.removed == 2 and d.width == table.widths[name]
        assert d.raw_ms_per_channel == pytest.approx(expected, rel=1e-6)
        assert d.spread_ms == pytest.approx(0.0, abs=1e-9)  # every fake call takes the same time
        assert runners[label].calls == 1 + 3  # warm-up + runs, interleaved with the base model
    assert runners["base"].calls == len(table.details) * (1 + 3)


def test_a_thinning_that_is_slower_is_clipped_to_zero(faked) -> None:
    _, table, _, _ = faked
    assert table.clipped == ["block_1.c1_r"]
    slow = table.details["block_1.c1_r"]
    assert slow.raw_ms_per_channel < 0 and slow.ms_per_channel == 0.0 and table.groups["block_1.c1_r"] == 0.0
    others = [n for n in table.groups if n != "block_1.c1_r"]
    assert all(table.groups[n] > 0 and table.groups[n] == table.details[n].raw_ms_per_channel for n in others)
    assert table.noisy == [] and not table.skipped
    assert "1 clipped" in table.summary()


def test_progress_says_group_total_and_eta(faked) -> None:
    _, table, _, lines = faked
    n = len(table.details)
    assert len(lines) == n
    for i, (line, name) in enumerate(zip(lines, table.details), start=1):
        assert line.startswith(f"latency table [{i}/{n}] {name}:") and "ETA" in line


def _thinned_group(model: torch.nn.Module, thinned: torch.nn.Module) -> str:
    """The one group whose width differs between the two models (by name)."""
    before = {g.name: g.width for g in trace_channels(model).groups}
    after = {g.name: g.width for g in trace_channels(thinned).groups}
    assert set(before) == set(after)
    (changed,) = [n for n in before if before[n] != after[n]]
    return changed


@pytest.mark.parametrize("round_to", [2, 4])
def test_thinned_models_lose_round_to_channels_in_their_group_alone(round_to: int) -> None:
    model = tiny_rlfn()
    before = {g.name: g.width for g in trace_channels(model).groups}
    seen = []
    for name, removed, thinned in thinned_models(model, round_to):
        after = {g.name: g.width for g in trace_channels(thinned).groups}
        assert removed == round_to
        assert after == {**before, name: before[name] - round_to}, name
        assert n_params(thinned) < n_params(model)
        seen.append(name)
    # the ESA groups are 4 wide: they cannot lose 4 channels and keep 4
    wide = [n for n in prunable_names(model) if before[n] - round_to >= round_to]
    assert seen == wide


def test_a_group_too_narrow_to_thin_is_skipped_with_zero() -> None:
    clock = FakeClock()
    table = measure_latency_table(tiny_rlfn(), input_size=(32, 32), threads=1, round_to=4, runs=2, warmup=0,
                                  make_runner=lambda m, label: FakeRunner(m, clock), clock=clock)
    esa = ["block_1.esa.conv1", "block_1.esa.conv2", "block_1.esa.conv3"]
    assert sorted(table.skipped) == esa and all(table.groups[n] == 0.0 for n in esa)
    assert set(table.details) == set(table.groups) - set(esa)
    assert "3 skipped" in table.summary()


def test_noise_and_spread_from_the_statistics() -> None:
    base = LatencyStats.from_samples([0.010, 0.012, 0.011, 0.013])  # median 11.5 ms
    thin = LatencyStats.from_samples([0.0105, 0.0115, 0.0110, 0.0120])  # median 11.25 ms
    d = saving_per_channel(base, thin, width=16, removed=4)
    assert d.raw_ms_per_channel == pytest.approx(0.25 / 4)
    se = 1.2533 * math.hypot(base.std_ms / 2, thin.std_ms / 2)
    assert d.spread_ms == pytest.approx(se)
    assert d.noisy and not d.clipped  # 0.25 ms saved < 2 standard errors (0.52 ms)
    clear = saving_per_channel(base, LatencyStats.from_samples([0.005] * 4), width=16, removed=4)
    assert not clear.noisy and clear.ms_per_channel == pytest.approx(6.5 / 4)
    slower = saving_per_channel(thin, base, width=16, removed=4)
    assert slower.clipped and slower.ms_per_channel == 0.0 and slower.raw_ms_per_channel == pytest.approx(-0.0625)


def test_json_round_trip_and_the_pruner_takes_it(faked, tmp_path: Path) -> None:
    model, table, _, _ = faked
    path = table.write(tmp_path / "table.json")
    data = json.loads(path.read_text())
    for key in ("backend", "threads", "input", "base_ms", "groups", "runs", "env"):
        assert key in data, key
    assert data["backend"] == "onnxruntime" and data["input"] == "1x3x32x32" and data["runs"] == 3
    back = read_latency_table(path)
    assert back.to_dict() == table.to_dict()
    with pytest.raises(UserInputError, match="exists"):
        table.write(path)
    # the estimate of the unpruned model is the measured median: base = constant + Σ width x ms/channel
    pruner = Pruner(model, normalize="latency", **back.pruner_options())
    assert pruner.complexity()["latency"] == pytest.approx(table.base_ms, rel=1e-9)
    assert [c.max() for c in pruner.costs()][1] == pytest.approx(table.groups["conv_1"])


def test_the_plain_form_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"conv_1": 0.5, "block_1.c1_r": 0}))
    table = read_latency_table(path)
    assert table.groups == {"conv_1": 0.5, "block_1.c1_r": 0.0} and table.base_ms is None
    assert table.pruner_options() == {"latency_table": table.groups, "latency_base_ms": 0.0}
    for bad, match in (("[1, 2]", "JSON object"), ('{"conv_1": "fast"}', "finite number"),
                       ('{"conv_1": NaN}', "finite number"), ("{", "cannot read")):
        path.write_text(bad)
        with pytest.raises(UserInputError, match=match):
            read_latency_table(path)


def test_backends(monkeypatch) -> None:
    assert check_backend("ort") == "onnxruntime" and check_backend("openvino") == "openvino"
    with pytest.raises(UserInputError, match="unknown backend 'tensorrtx'"):
        check_backend("tensorrtx")
    with pytest.raises(UserInputError, match="onnxruntime or openvino, not torch"):
        check_backend("torch")
    from edgesr.runtimes.registry import BackendInfo

    monkeypatch.setattr(BackendInfo, "is_available", lambda self: False)
    with pytest.raises(MissingDependencyError, match="pip install"):
        measure_latency_table(tiny_rlfn(), backend="openvino")


@pytest.mark.parametrize("backend, round_to", [("onnxruntime", 2), ("openvino", 4)])
def test_real_run_on_a_tiny_rlfn(backend: str, round_to: int) -> None:
    """Structure only: real exports and runtime calls, no timing asserted (round_to 4 skips the 4-wide ESA)."""
    model = tiny_rlfn()
    table = measure_latency_table(model, backend=backend, input_size=(32, 32), threads=1, round_to=round_to, runs=2)
    assert list(table.groups) == prunable_names(model)
    assert set(table.details) | set(table.skipped) == set(table.groups)
    assert len(table.skipped) == (3 if round_to == 4 else 0)
    assert all(math.isfinite(v) and v >= 0 for v in table.groups.values())
    assert math.isfinite(table.base_ms) and table.base_ms > 0
    assert table.backend == backend and table.threads == 1 and table.env["threads"] == 1
    assert all(d.removed == round_to and math.isfinite(d.spread_ms) for d in table.details.values())


# ---- the CLI -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("weights") / "tiny_rlfn_x2.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_rlfn().state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def lr_folder(lr_crops) -> Path:
    return lr_crops(2, 64)


def test_cli_measures_the_table_and_prunes_with_it(tiny_weights: Path, lr_folder: Path, tmp_path: Path, run_edgesr,
                                                   monkeypatch) -> None:
    """Real exports and ONNX Runtime runners; the clock moves 1 ms per base call and 0.9 ms per thinned call, so
    every 8-wide group saves 0.1 ms per 4 channels (the 4-wide ESA groups are skipped: 0) and a 0.95 x latency
    target needs exactly one prune."""
    import edgesr.bench.latency_table as lt

    clock = FakeClock()
    real = lt.measure_interleaved

    def controlled(fns, **kwargs):
        def tick(fn, seconds):
            return lambda: (fn(), setattr(clock, "now", clock.now + seconds))

        timed = {"base": tick(fns["base"], 1e-3), "thinned": tick(fns["thinned"], 0.9e-3)}
        return real(timed, **{**kwargs, "clock": clock})

    monkeypatch.setattr(lt, "measure_interleaved", controlled)
    out = tmp_path / "pruned"
    code, stdout, err = run_edgesr("prune", "-w", str(tiny_weights), "--target", "latency=0.95", "--normalize",
                                   "latency", "--latency-table", "auto", "--latency-runs", "2", "--images",
                                   str(lr_folder), "--prune-every", "2", "--round-to", "4", "--crop", "16",
                                   "--batch", "2", "--no-eval", "--no-latency", "--threads", "1", "-o", str(out))
    assert code == 0, err
    saved = read_latency_table(out / "latency_table.json")
    assert list(saved.groups) == prunable_names(tiny_rlfn())
    esa = {n for n in saved.groups if ".esa." in n}
    assert set(saved.skipped) == esa and all(saved.groups[n] == 0.0 for n in esa)
    assert all(v == pytest.approx(0.025) for n, v in saved.groups.items() if n not in esa)
    assert saved.base_ms == pytest.approx(1.0) and saved.constant_ms() == pytest.approx(1.0 - 4 * 8 * 0.025)
    assert saved.backend == "onnxruntime" and saved.threads == 1 and saved.runs == 2 and saved.round_to == 4
    assert sum("latency table [" in line for line in err.splitlines()) == len(saved.groups) - len(esa)
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["normalize"] == "latency" and report["settings"]["latency_table"] == "auto"
    history = report["prune"]["history"]
    assert len(history) == 1 and report["target"]["met"]
    assert history[0]["metrics"]["latency"] == pytest.approx(0.9)  # 1.0 ms - 4 channels x 0.025 ms
    assert report["target"]["resolved"] == pytest.approx(0.95)

    # the saved table is taken back as a file
    again = tmp_path / "again"
    code, stdout, err = run_edgesr("prune", "-w", str(tiny_weights), "--target", "latency=0.85", "--normalize",
                                   "latency", "--latency-table", str(out / "latency_table.json"), "--images",
                                   str(lr_folder), "--prune-every", "2", "--round-to", "4", "--crop", "16",
                                   "--batch", "2", "--no-eval", "--no-latency", "--threads", "1", "-q", "-o",
                                   str(again))
    assert code == 0, err
    report = json.loads((again / "report.json").read_text())
    assert len(report["prune"]["history"]) == 2 and report["target"]["met"]
    assert not (again / "latency_table.json").exists()


@pytest.mark.parametrize("extra, message", [
    (["--latency-backend", "onnxruntim"], "unknown backend 'onnxruntim'"),
    (["--latency-backend", "torch"], "onnxruntime or openvino, not torch"),
])
def test_cli_bad_backend_is_one_line(extra, message, tiny_weights: Path, lr_folder: Path, tmp_path: Path,
                                     run_edgesr) -> None:
    code, stdout, err = run_edgesr("prune", "-w", str(tiny_weights), "--target", "latency=0.9", "--normalize",
                                   "latency", "--latency-table", "auto", *extra, "--images", str(lr_folder),
                                   "-o", str(tmp_path / "p"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("Error:") and message in err, err
    assert not (tmp_path / "p").exists()


def test_cli_missing_runtime_is_one_line(tiny_weights: Path, lr_folder: Path, tmp_path: Path, run_edgesr,
                                         monkeypatch) -> None:
    from edgesr.runtimes.registry import BackendInfo

    monkeypatch.setattr(BackendInfo, "is_available", lambda self: False)
    code, stdout, err = run_edgesr("prune", "-w", str(tiny_weights), "--target", "flops=0.9", "--latency-table",
                                   "auto", "--latency-backend", "openvino", "--images", str(lr_folder),
                                   "-o", str(tmp_path / "p"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "openvino" in err and "pip install" in err, err


def test_cli_bad_table_file_is_one_line(tiny_weights: Path, lr_folder: Path, tmp_path: Path, run_edgesr) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"conv_1": "fast"}')
    code, stdout, err = run_edgesr("prune", "-w", str(tiny_weights), "--target", "latency=0.9", "--normalize",
                                   "latency", "--latency-table", str(bad), "--images", str(lr_folder),
                                   "-o", str(tmp_path / "p"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "finite number" in err, err
