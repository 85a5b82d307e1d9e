"""Depth pruning: a block's gate at 0 equals deleting the block; block Fisher; drops in the schedule."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgesr.models import create_model
from edgesr.prune import CHECKPOINT_NAME, Pruner, Target, fisher_prune, load_pruned, save_pruned
from edgesr.prune.depth import block_paths, drop_blocks

RLFN_CFG = {"feature_channels": 12, "num_blocks": 3, "esa_channels": 6}
EDSR_CFG = {"n_resblocks": 3, "n_feats": 8}


@pytest.fixture(scope="module")
def rlfn64() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("rlfn", scale=2, **RLFN_CFG).double().eval()


@pytest.mark.parametrize("name,cfg", [("rlfn", RLFN_CFG), ("edsr", EDSR_CFG)])
def test_gate_zero_equals_deleting_the_block_float64(name: str, cfg: dict, random_prune, set_keep) -> None:
    torch.manual_seed(0)
    model = create_model(name, scale=2, **cfg).double().eval()
    x = torch.rand(2, 3, 17, 19, dtype=torch.float64)
    pruner = Pruner(model, depth=True)
    random_prune(pruner, 0.4, seed=0)
    pruned_keep = pruner.keep.copy()
    for block in block_paths(model):
        set_keep(pruner, pruned_keep)
        set_keep(pruner, pruner.equivalent_keep(block))
        pruner.gate_values = {block: 0.0}
        with torch.no_grad(), pruner.attached():
            masked = model(x)
        shallow = pruner.without_blocks([block])
        small, config = shallow.export()
        with torch.no_grad():
            got = small.eval()(x)
        assert (masked - got).abs().max().item() <= 1e-6
        assert len(block_paths(small)) == len(block_paths(model)) - 1
        assert sum(p.numel() for p in small.parameters()) == shallow.complexity()["params"]
        assert pruner.block_metrics(block)["flops"] == shallow.complexity()["flops"]


def test_drop_without_channel_pruning_is_exact(rlfn64: torch.nn.Module) -> None:
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    pruner = Pruner(rlfn64, depth=True)
    pruner.gate_values["block_2"] = 0.0
    with torch.no_grad(), pruner.attached():
        masked = rlfn64(x)
    with torch.no_grad():
        deleted = drop_blocks(rlfn64, ["block_2"]).eval()(x)
    assert (masked - deleted).abs().max().item() == 0.0
    assert drop_blocks(rlfn64, ["block_2"]).edgesr_config["num_blocks"] == 2


def test_block_fisher_is_the_squared_gate_gradient(rlfn64: torch.nn.Module) -> None:
    """Oracle: ∂L_n/∂g = Σ (f(x) - x) · ∂L_n/∂y at the block's output, per sample, squared and summed."""
    model = rlfn64
    pruner = Pruner(model, depth=True)
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    with pruner.attached(), pruner.fisher():
        loss = model(x).pow(2).flatten(1).mean(1)
        loss.mean().backward()
        pruner.accumulate(scale=3.0)
    block = model.get_submodule("block_2")
    seen = {}
    h_in = block.register_forward_hook(lambda m, a, out: seen.update(x=a[0], out=out))
    try:
        model.zero_grad()
        y = model(x)
    finally:
        h_in.remove()
    want = 0.0
    for n in range(3):
        grad_out, = torch.autograd.grad(y[n].pow(2).mean(), seen["out"], retain_graph=True)
        want += float(((seen["out"][n] - seen["x"][n]) * grad_out[n]).sum().detach()) ** 2
    got = pruner.block_scores[pruner.blocks.index("block_2")]
    assert got == pytest.approx(want, rel=1e-9)


def test_step_drops_a_block_when_cheaper_and_the_artifact_rebuilds(tmp_path: Path, random_prune) -> None:
    torch.manual_seed(0)
    model = create_model("rlfn", scale=2, **RLFN_CFG)
    pruner = Pruner(model, depth=True)
    x = torch.rand(2, 3, 16, 16)
    with pruner.attached(), pruner.fisher():
        model(x).abs().mean().backward()
        pruner.accumulate(scale=2.0)
    pruner.block_scores[:] = [1.0, 1e-30, 1.0]  # block_2 almost free to remove
    event = pruner.step()
    assert event is not None and event.block == "block_2" and event.metrics["flops"] < pruner.metric("flops")
    shallow = pruner.without_blocks([event.block])
    random_prune(shallow, 0.3, seed=1)
    small, config = shallow.export(verify=x)
    assert config.base_config["num_blocks"] == 2
    save_pruned(tmp_path / "p", small, config)
    again = load_pruned(tmp_path / "p")
    with torch.no_grad():
        assert torch.equal(small.eval()(x), again(x))


def test_block_floor_keeps_the_target(rlfn64: torch.nn.Module) -> None:
    pruner = Pruner(rlfn64, depth=True)
    pruner.block_scores[:] = 1e-30
    pruner.block_floor = ("flops", pruner.metric("flops") * 0.99)  # no block is that cheap
    assert pruner.select_block() is None
    pruner.block_floor = ("flops", pruner.metric("flops") * 0.5)
    assert pruner.select_block() is not None


@pytest.mark.slow
def test_fisher_prune_with_depth_drops_resumes_and_rebuilds(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("rlfn", scale=2, **RLFN_CFG)
    with torch.no_grad():  # block_3 outputs 0: nothing before it matters, so blocks 1-2 score 0 and a block goes
        model.block_3.esa.conv4.weight.zero_()
        model.block_3.esa.conv4.bias.fill_(-1e4)
        model.block_3.c5.weight.zero_()
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 32, 32, generator=gen)) for _ in range(3)]
    kwargs = dict(prune_every=2, round_to=2, progress=False, depth=True, checkpoint_dir=tmp_path / "ck",
                  checkpoint_every=1)
    result = fisher_prune(model, None, batches, Target("flops", ratio=0.6), **kwargs)
    assert result.target_met
    assert result.history[0].block is not None and result.config.blocks_removed
    assert result.config.base_config["num_blocks"] < 3
    save_pruned(tmp_path / "out", result.model, result.config)
    x = torch.rand(1, 3, 15, 17)
    with torch.no_grad():
        assert torch.equal(result.model.eval()(x), load_pruned(tmp_path / "out")(x))
    assert (tmp_path / "ck" / CHECKPOINT_NAME).is_file()
    # resuming from the last checkpoint replays the block removal and gives the same artifact
    torch.manual_seed(0)
    fresh = create_model("rlfn", scale=2, **RLFN_CFG)
    again = fisher_prune(fresh, None, batches, Target("flops", ratio=0.6), **kwargs)
    assert again.config.to_dict()["layers"] == result.config.to_dict()["layers"]
    assert again.config.blocks_removed == result.config.blocks_removed


def test_training_form_is_refused_with_the_reason_and_folding_lets_it_through() -> None:
    from edgesr.prune import UnsupportedOpError, trace_channels
    from edgesr.transforms import reparameterize

    model = create_model("rlfn_rep", scale=2, feature_channels=8, num_blocks=1, esa_channels=4)
    with pytest.raises(UnsupportedOpError, match=r"rlfn_rep is in its training form: .*RepConv.* fold them first"):
        Pruner(model)
    reparameterize(model, passes=["repconv"])
    assert any(not g.is_frozen for g in trace_channels(model).groups)


def test_depth_with_a_latency_target_is_refused_with_the_reason() -> None:
    from edgesr.errors import UserInputError

    model = create_model("rlfn", scale=2, **RLFN_CFG)
    table = {g.name: 0.1 for g in Pruner(model).groups}
    batches = [(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 32, 32))]
    with pytest.raises(UserInputError, match="latency table prices channels, not whole blocks"):
        fisher_prune(model, None, batches, Target("latency", ratio=0.8), latency_table=table, depth=True,
                     progress=False)
