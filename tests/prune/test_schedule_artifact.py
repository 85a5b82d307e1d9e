"""fisher_prune end to end, targets, checkpoints/resume, the saved artifact, ONNX parity."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgesr.errors import OutputExistsError, UserInputError
from edgesr.models import create_model
from edgesr.models.weights import read_checkpoint
from edgesr.prune import (
    CHECKPOINT_NAME,
    Pruner,
    Target,
    fisher_prune,
    load_pruned,
    rebuild,
    save_pruned,
)
from edgesr.prune.slicing import WEIGHTS_NAME

CFG = {"feature_channels": 12, "num_blocks": 2, "esa_channels": 8}


def model_and_batches(n: int = 4, hr: bool = False):
    torch.manual_seed(0)
    model = create_model("rlfn", scale=2, **CFG)
    gen = torch.Generator().manual_seed(1)
    lrs = [torch.rand(2, 3, 16, 16, generator=gen) for _ in range(n)]
    if hr:
        return model, [(x, torch.rand(2, 3, 32, 32, generator=gen)) for x in lrs]
    return model, lrs


def test_fisher_prune_meets_target_and_slices() -> None:
    model, batches = model_and_batches(hr=True)
    events = []
    result = fisher_prune(model, None, batches, Target("flops", ratio=0.8), prune_every=2, round_to=2,
                          base_config=CFG, progress=False, finetune_steps=2, on_prune=events.append)
    assert result.target_met and result.after["flops"] <= 0.8 * result.before["flops"]
    assert len(events) == len(result.history) > 0 and result.steps == 2 * len(events)
    assert all(len(e.channels) == 2 for e in result.history)
    widths = {name: g["kept"] for name, g in result.config.groups.items()}
    assert all(w % 2 == 0 and w >= 2 for w in widths.values())
    small = result.model
    assert sum(p.numel() for p in small.parameters()) == result.after["params"]
    assert result.config.complexity["after"]["flops"] == result.after["flops"]
    assert small(torch.rand(1, 3, 15, 17)).shape == (1, 3, 30, 34)
    assert "flops" in result.summary() and "met" in result.summary()


def test_save_rebuild_load_identical(tmp_path: Path) -> None:
    model, batches = model_and_batches()
    result = fisher_prune(model, None, batches, "params=0.85", prune_every=1, round_to=2, base_config=CFG,
                          progress=False)
    x = torch.rand(2, 3, 19, 16)
    with torch.no_grad():
        ref = result.model.eval()(x)
    out = save_pruned(tmp_path / "pruned", result.model, result.config)
    data = json.loads((out / "config.json").read_text())
    assert data["model"] == "rlfn" and data["scale"] == 2 and data["base_config"] == CFG
    some = next(iter(data["layers"].values()))
    assert {"out", "in", "out_channels", "in_channels"} <= set(some)
    loaded = load_pruned(out)
    assert (out / WEIGHTS_NAME).name == "weights.safetensors"
    rebuilt = rebuild(data, read_checkpoint(out / WEIGHTS_NAME))
    with torch.no_grad():
        assert torch.equal(loaded(x), ref) and torch.equal(rebuilt(x), ref)
    assert loaded.pruned_config.layers == result.config.layers
    with pytest.raises(OutputExistsError):
        save_pruned(out, result.model, result.config)
    bad = dict(data, layers={**data["layers"], "block_1.c1_r": {**data["layers"].get("block_1.c1_r", some),
                                                                   "out_channels": 1}})
    with pytest.raises(UserInputError):
        rebuild(bad, read_checkpoint(out / WEIGHTS_NAME))


def test_base_config_is_checked_before_pruning() -> None:
    model, batches = model_and_batches()
    assert model.edgesr_config == CFG  # the registry records the builder overrides ...
    del model.edgesr_config  # ... without them the guessed architecture does not fit
    with pytest.raises(UserInputError, match="base_config"):
        fisher_prune(model, None, batches, Target("flops", ratio=0.9), progress=False)


def test_impossible_target_states_smallest_reachable_value() -> None:
    model, batches = model_and_batches()
    pruner = Pruner(model, round_to=4)
    floor = pruner.metric("params", pruner.minimal_keep())
    with pytest.raises(UserInputError, match=f"smallest reachable params is {floor:,.0f}"):
        fisher_prune(model, None, batches, Target("params", value=1000), round_to=4, base_config=CFG,
                     progress=False)
    with pytest.raises(UserInputError, match="smallest reachable flops"):
        fisher_prune(model, None, batches, Target("flops", ratio=0.01), base_config=CFG, progress=False)
    with pytest.raises(UserInputError, match="latency_table"):
        fisher_prune(model, None, batches, Target("latency", ratio=0.5), base_config=CFG, progress=False)


def test_target_parsing_and_validation() -> None:
    assert Target.parse("flops=0.9") == Target("flops", ratio=0.9)
    assert Target.parse("params=300k") == Target("params", value=300_000)
    assert Target.parse("acts:80M") == Target("acts", value=80e6)
    assert Target.parse("macs=20G").kind == "flops"
    for bad in ("flops", "speed=0.5"):
        with pytest.raises(UserInputError):
            Target.parse(bad)
    with pytest.raises(UserInputError):
        Target("flops", ratio=1.5)
    with pytest.raises(UserInputError):
        Target("flops")


def test_checkpoint_and_resume(tmp_path: Path) -> None:
    model, batches = model_and_batches()

    def crashing(n: int):
        for i in range(n):
            yield batches[i % len(batches)]
        raise KeyboardInterrupt  # the run dies after n batches

    kw = dict(prune_every=2, round_to=2, base_config=CFG, progress=False, checkpoint_dir=tmp_path,
              checkpoint_every=4)
    target = Target("flops", ratio=0.75)
    with pytest.raises(KeyboardInterrupt):
        fisher_prune(model, None, crashing(6), target, **kw)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert state["phase"] == "prune" and state["step"] == 4 and len(state["history"]) == 2
    # resume with the same unpruned model (and so the same teacher) and a fresh batch stream
    model2, _ = model_and_batches()
    resumed = fisher_prune(model2, None, batches, target, **kw)
    assert resumed.target_met and resumed.steps > 6
    assert [e.to_dict() for e in resumed.history[:2]] == state["history"]
    assert [e.step for e in resumed.history] == list(range(2, resumed.steps + 1, 2))
    # a finished run leaves a fine-tune-phase checkpoint: calling again rebuilds the same result
    model3, _ = model_and_batches()
    again = fisher_prune(model3, None, batches, target, **kw)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(again.model(x), resumed.model(x))
    other = create_model("rlfn", scale=2, feature_channels=8, num_blocks=1, esa_channels=4)
    with pytest.raises(UserInputError, match="different model"):
        fisher_prune(other, None, batches, Target("flops", ratio=0.9), prune_every=2, progress=False,
                     base_config={"feature_channels": 8, "num_blocks": 1, "esa_channels": 4},
                     checkpoint_dir=tmp_path)


def _export_onnx(model: torch.nn.Module, path: Path) -> None:
    """edgesr's exporter when it is there (it checks parity itself), else torch.onnx with dynamic H/W."""
    try:
        from edgesr.export import ExportOptions, export_onnx
    except ImportError:
        export_onnx = None
    if export_onnx is not None:
        export_onnx(model, path, ExportOptions(parity_sizes=((24, 20), (31, 17)), threads=1))
        return
    dim_h = torch.export.Dim("h", min=16, max=1024)
    dim_w = torch.export.Dim("w", min=16, max=1024)
    torch.onnx.export(model, (torch.rand(1, 3, 24, 20),), str(path), dynamo=True, external_data=False,
                      input_names=["x"], output_names=["y"], dynamic_shapes={"x": {2: dim_h, 3: dim_w}})


def test_pruned_rlfn_onnx_dynamic_hw_matches_onnxruntime(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model, _ = model_and_batches()
    pruner = Pruner(model, round_to=2, importance=lambda m, g: torch.rand(g.width, dtype=torch.float64))
    for _ in range(8):
        pruner.step()
    small, _ = pruner.export(CFG)
    small.eval()
    path = tmp_path / "pruned.onnx"
    _export_onnx(small, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for h, w in ((24, 20), (31, 17), (40, 52)):  # odd sizes too
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            ref = small(x).numpy() * 255.0
        got = session.run(None, {name: x.numpy()})[0] * 255.0
        assert got.shape == ref.shape == (1, 3, 2 * h, 2 * w)
        assert np.abs(got - ref).max() <= 1e-3


def test_crop_batches_lr_only_and_paired(datasets_dir: Path) -> None:
    from edgesr.data import open_eval_dataset
    from edgesr.prune import crop_batches

    lr_only = crop_batches(datasets_dir / "Set5" / "LR_bicubic" / "X4", crop_size=24, batch_size=3, seed=0)
    x = next(lr_only)
    assert x.shape == (3, 3, 24, 24) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    paired = crop_batches(open_eval_dataset(datasets_dir / "Set5", 4), crop_size=12, batch_size=2, seed=0)
    lr, hr = next(paired)
    assert lr.shape == (2, 3, 12, 12) and hr.shape == (2, 3, 48, 48)
    # the HR crop is the LR crop's footprint: its bicubic-like average is close to the LR crop
    down = torch.nn.functional.avg_pool2d(hr, 4)
    assert (down - lr).abs().mean() < 0.05


def test_group_report_is_json_friendly() -> None:
    from edgesr.prune import find_groups

    groups = find_groups(create_model("rlfn", scale=2, **CFG))
    data = json.loads(json.dumps([g.to_dict() for g in groups]))
    assert data[1]["name"] == "conv_1" and data[1]["producers"][0]["module"] == "conv_1"
