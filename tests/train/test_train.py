"""The training loop: fine-tuning does no harm, exact resume, warm-start stages, bad input leaves nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgesr.errors import ImageError, OutputExistsError, UserInputError, WeightsError
from edgesr.models import create_model
from edgesr.models.weights import read_checkpoint
from edgesr.train import TrainConfig, train

RLFN_X4_SET5 = 32.2130  # reference PSNR of the official weights (shared/docs/reference.md)


def tiny_config(hr: Path, out: Path, tiny: dict, **kw) -> TrainConfig:
    base = dict(model="rlfn_s", hr_dir=hr, output_dir=out, scale=2, model_cfg=tiny, patch=16, batch=2, steps=6,
                lr=1e-3, progress=False, log_every=1, val_every=0)
    base.update(kw)
    return TrainConfig(**base)


def test_finetuning_official_rlfn_x4_does_no_harm(bsd68_hr: Path, set5: Path, tmp_path: Path) -> None:
    cfg = TrainConfig("rlfn_x4", hr_dir=bsd68_hr, limit=8, output_dir=tmp_path / "ft", patch=32, batch=4,
                      steps=10, lr=1e-5, loss="l1", val_dir=set5, val_every=0, progress=False)
    result = train(cfg)
    assert result.init["mode"] == "strict" and result.init["source"].endswith("rlfn_x4.pth")
    assert result.steps == 10 and len(result.val_history) == 1
    assert abs(result.final_psnr - RLFN_X4_SET5) < 0.05, result.final_psnr
    # the written weights load back into the registry model
    again = create_model("rlfn", scale=4, pretrained=result.final_weights)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), result.model.state_dict().values()))
    events = [json.loads(line)["event"] for line in (tmp_path / "ft" / "log.jsonl").read_text().splitlines()]
    assert events[:2] == ["init", "stage"] and "train" in events and "val" in events and events[-1] == "done"


class Interrupt:
    """Callback raising KeyboardInterrupt after global step `at` (as Ctrl-C would)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def __call__(self, event: str, info: dict) -> None:
        if event == "step" and info["step"] == self.at:
            raise KeyboardInterrupt


def _state(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.pt", weights_only=True)


def _assert_same(a, b, path: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.allclose(a.double(), b.double(), rtol=0, atol=1e-6), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.mark.parametrize("stages,interrupt_at", [(1, 3), (2, 4)])
def test_resume_after_interruption_is_exact(set5_hr: Path, tmp_path: Path, tiny: dict, stages: int,
                                            interrupt_at: int) -> None:
    steps = 6 // stages
    kw = dict(stages=stages, steps=steps, ema=0.9, contrastive=0.1, save_every=100)
    straight = train(tiny_config(set5_hr, tmp_path / "straight", tiny, **kw))
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(set5_hr, tmp_path / "split", tiny, **kw), callback=Interrupt(interrupt_at))
    assert _state(tmp_path / "split")["step"] == interrupt_at
    with pytest.raises(OutputExistsError, match="--resume"):
        train(tiny_config(set5_hr, tmp_path / "split", tiny, **kw))
    resumed = train(tiny_config(set5_hr, tmp_path / "split", tiny, resume=True, **kw))
    assert resumed.resumed_from == interrupt_at and resumed.steps == straight.steps == 6
    a, b = _state(tmp_path / "straight"), _state(tmp_path / "split")
    counters = [(s["step"], s["stage"], s["stage_step"]) for s in (a, b)]
    assert counters[0] == counters[1] == (6, stages - 1, steps)
    for key in ("model", "optimizer", "scheduler", "ema", "extractor"):
        _assert_same(a[key], b[key], key)
    assert b["optimizer"]["state"][0]["step"] == steps  # Adam's own counter continued, not restarted
    for x, y in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.allclose(x, y, rtol=0, atol=1e-6)


def test_resume_refuses_a_changed_recipe(set5_hr: Path, tmp_path: Path, tiny: dict) -> None:
    train(tiny_config(set5_hr, tmp_path / "r", tiny, steps=2))
    with pytest.raises(UserInputError, match=r"configuration changed \(lr: checkpoint 0.001, now 0.002\)"):
        train(tiny_config(set5_hr, tmp_path / "r", tiny, steps=2, lr=2e-3, resume=True))


def test_warm_start_stages_reload_weights_and_reset_the_optimizer(set5_hr: Path, tmp_path: Path,
                                                                   tiny: dict) -> None:
    out = tmp_path / "stages"
    seen: list[dict] = []

    def watch(event: str, info: dict) -> None:
        if event == "stage_start":
            opt = info["optimizer"]
            seen.append({
                "stage": info["stage"], "step": info["step"], "optimizer": id(opt), "state": len(opt.state),
                "lr": opt.param_groups[0]["lr"], "sched_epoch": info["scheduler"].last_epoch,
                "weights": {k: v.clone() for k, v in info["model"].state_dict().items()},
            })

    cfg = tiny_config(set5_hr, out, tiny, stages=3, steps=2, ema=0.5,
                      stage_overrides=[{}, {}, {"loss": "mse", "lr": 1e-4}])
    result = train(cfg, callback=watch)
    assert [s["stage"] for s in seen] == [0, 1, 2] and [s["step"] for s in seen] == [0, 2, 4]
    assert len({s["optimizer"] for s in seen}) == 3  # a fresh optimizer per stage ...
    assert all(s["state"] == 0 and s["sched_epoch"] == 0 for s in seen)  # ... with no Adam moments
    assert [s["lr"] for s in seen] == [1e-3, 1e-3, 1e-4]  # the schedule restarts (and stage 3 overrides it)
    for k in (1, 2):  # stage k+1 starts from stage k's final (EMA) weights, as saved in stage{k}.safetensors
        saved = read_checkpoint(out / f"stage{k}.safetensors")
        for name, value in seen[k]["weights"].items():
            assert torch.equal(value, saved[name]), name
        assert any(not torch.equal(seen[k]["weights"][n], seen[k - 1]["weights"][n]) for n in saved)
    final = read_checkpoint(out / "stage3.safetensors")
    assert all(torch.equal(v, final[k]) for k, v in result.model.state_dict().items())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["loss"] for e in log if e["event"] == "stage"] == ["l1", "l1", "mse"]
    assert sum(e["event"] == "warm_start" for e in log) == 2


@pytest.mark.parametrize("case", ["empty", "unreadable", "patch", "init-scale"])
def test_bad_input_leaves_no_output(case: str, set5_hr: Path, weights_dir: Path, tmp_path: Path,
                                    tiny: dict) -> None:
    out = tmp_path / "run"
    kw: dict = {}
    hr = set5_hr
    if case == "empty":
        hr = tmp_path / "empty"
        hr.mkdir()
        err, match = UserInputError, "contains no images"
    elif case == "unreadable":
        hr = tmp_path / "bad"
        hr.mkdir()
        (hr / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
        err, match = ImageError, "cannot read image"
    elif case == "patch":
        kw = {"patch": 150}
        err, match = UserInputError, "needs HR images of at least 300x300"
    else:
        kw = {"model": "rlfn", "model_cfg": {}, "init": str(weights_dir / "rlfn_x4.pth")}
        err, match = WeightsError, r"(?s)holds x4 weights \(rlfn x4\), but scale 2 was asked for.*--init-cross-scale"
    with pytest.raises(err, match=match):
        train(tiny_config(hr, out, tiny, **kw))
    assert not out.exists()
    out.mkdir()  # an existing empty folder stays empty
    with pytest.raises(err):
        train(tiny_config(hr, out, tiny, **kw))
    assert list(out.iterdir()) == []


def test_force_clears_only_run_files(set5_hr: Path, tmp_path: Path, tiny: dict) -> None:
    out = tmp_path / "r"
    train(tiny_config(set5_hr, out, tiny, steps=2, stages=2))
    (out / "notes.txt").write_text("mine")
    again = train(tiny_config(set5_hr, out, tiny, steps=1, force=True))
    assert again.steps == 1 and (out / "notes.txt").read_text() == "mine"
    assert not (out / "stage1.safetensors").exists()
    assert json.loads((out / "result.json").read_text())["steps"] == 1


def test_rep_model_is_folded_at_the_end(set5: Path, tmp_path: Path, tiny: dict) -> None:
    from edgesr.layers.repconv import RepConv

    out = tmp_path / "rep"
    result = train(tiny_config(set5 / "HR", out, tiny, model="rlfn_rep", steps=3, val_dir=set5))
    assert any(isinstance(m, RepConv) for m in result.model.modules())  # model_final: trainable form
    assert result.folded_weights == out / "model_folded.safetensors"
    assert not any(isinstance(m, RepConv) for m in result.folded_model.modules())
    assert result.fold["max_abs_diff"] < 1e-4
    assert result.fold["params_after"] < result.fold["params_before"]
    assert abs(result.fold["psnr"] - result.final_psnr) < 1e-3
    plain = create_model("rlfn", scale=2, pretrained=result.folded_weights, **tiny)  # folds to plain RLFN
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert torch.allclose(plain(x), result.model.eval()(x), atol=1e-4)
    fold_events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()
                   if '"fold"' in line]
    assert fold_events and fold_events[0]["folded"] is True


def test_distillation_to_the_official_teacher(set5_hr: Path, tmp_path: Path, tiny: dict) -> None:
    out = tmp_path / "kd"
    result = train(tiny_config(set5_hr, out, tiny, scale=4, steps=2, teacher="rlfn_x4", distill=1.0,
                               loss="mse"))
    assert result.steps == 2
    rec = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"train"' in line][-1]
    assert rec["distill"] > 0 and rec["loss"] == pytest.approx(rec["mse"] + rec["distill"], rel=1e-5)
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert not any(k.startswith("teacher") for k in ckpt["model"])  # the teacher is not saved with the run
    with pytest.raises(UserInputError, match="--teacher rlfn_x4: rlfn_x4 is a x4 model, but scale 2"):
        train(tiny_config(set5_hr, tmp_path / "kd2", tiny, teacher="rlfn_x4", distill=1.0))
