"""Depth pruning of RFDN, whose blocks all feed one concat: a removed block's slice of the concat conv
is merged into the slice of the block before it, which is exact because at gate 0 both read one tensor."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from edgesr.errors import UserInputError
from edgesr.models import create_model
from edgesr.prune import Pruner, Target, fisher_prune, load_pruned, save_pruned
from edgesr.prune.depth import block_paths, concat_positions, drop_blocks, droppable_paths

CFG = {"nf": 8, "num_modules": 4}


def _gate_zero_vs_removed(pruner: Pruner, block: str, x: torch.Tensor, set_keep: Callable
                          ) -> tuple[float, torch.nn.Module, Pruner]:
    """max |gate-0 masked model - physically depth+width pruned model| on `x` (keep-state carried over)."""
    set_keep(pruner, pruner.equivalent_keep(block))
    pruner.gate_values = {block: 0.0}
    try:
        with torch.no_grad(), pruner.attached():
            masked = pruner.model(x)
    finally:
        pruner.gate_values = {}
    shallow = pruner.without_blocks([block])
    small, _ = shallow.export()
    with torch.no_grad():
        got = small.eval()(x)
    return (masked - got).abs().max().item(), small, shallow


@pytest.fixture(scope="module")
def rfdn64() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("rfdn", scale=2, **CFG).double().eval()


def test_gate_zero_equals_removing_each_block_with_random_channel_pruning(rfdn64: torch.nn.Module, random_prune,
                                                                          set_keep) -> None:
    x = torch.rand(2, 3, 17, 19, dtype=torch.float64)
    pruner = Pruner(rfdn64, depth=True)
    assert pruner.blocks == ["B2", "B3", "B4"]
    random_prune(pruner, 0.4, seed=0)
    pruned_keep = pruner.keep.copy()
    for block in pruner.blocks:
        set_keep(pruner, pruned_keep)
        assert (pruner.equivalent_keep(block) != pruned_keep).any()  # the merged masks do intersect
        diff, small, shallow = _gate_zero_vs_removed(pruner, block, x, set_keep)
        assert diff <= 1e-6, block
        assert small.edgesr_config["num_modules"] == 3 and small.c[0].in_channels < 3 * CFG["nf"]
        assert sum(p.numel() for p in small.parameters()) == shallow.complexity()["params"]
        assert pruner.block_metrics(block)["flops"] == shallow.complexity()["flops"]


def test_concat_slices_of_removed_blocks_are_summed(rfdn64: torch.nn.Module) -> None:
    nf = CFG["nf"]
    name, positions = concat_positions(rfdn64, ["B3", "B4"])
    assert name == "c.0"
    assert positions.tolist() == list(range(nf)) + list(range(nf, 2 * nf)) * 3
    w = rfdn64.c[0].weight
    new = drop_blocks(rfdn64, ["B3"])
    want = torch.cat([w[:, :nf], w[:, nf:2 * nf] + w[:, 2 * nf:3 * nf], w[:, 3 * nf:]], dim=1)
    assert torch.equal(new.c[0].weight, want)
    assert torch.equal(new.B3.c5.weight, rfdn64.B4.c5.weight)  # renumbered
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    pruner = Pruner(rfdn64, depth=True)
    pruner.gate_values = {"B3": 0.0}
    with torch.no_grad(), pruner.attached():
        masked = rfdn64(x)
    with torch.no_grad():
        assert (masked - new.eval()(x)).abs().max().item() <= 1e-9


def test_first_block_is_not_removable(rfdn64: torch.nn.Module) -> None:
    assert block_paths(rfdn64) == ["B1", "B2", "B3", "B4"]
    assert droppable_paths(rfdn64) == ["B2", "B3", "B4"]
    for call in (lambda: drop_blocks(rfdn64, ["B1"]), lambda: concat_positions(rfdn64, ["B2", "B1"]),
                 lambda: Pruner(rfdn64, depth=True).equivalent_keep("B1")):
        with pytest.raises(UserInputError, match=r"block B1 of RFDN cannot be removed .*c\.0.*removable: B2, B3"):
            call()
    pruner = Pruner(rfdn64, depth=True)
    pruner.block_scores[:] = 1e-30
    assert pruner.select_block()[0] in ("B2", "B3", "B4")


def test_a_block_whose_merged_group_would_be_empty_is_skipped(rfdn64: torch.nn.Module) -> None:
    pruner = Pruner(rfdn64, depth=True)
    pruner.prune("B2.c5", range(4))  # B2's and B3's outputs keep disjoint channels: merged, nothing stays
    pruner.prune("B3.c5", range(4, 8))
    with pytest.raises(UserInputError, match="block B3 cannot be removed at the current widths"):
        pruner.equivalent_keep("B3")
    pruner.block_scores[:] = [1e-20, 1e-30, 1e-20]
    assert pruner.select_block()[0] != "B3"


def test_depth_and_width_pruned_rfdn_saves_and_rebuilds(tmp_path: Path, random_prune) -> None:
    torch.manual_seed(1)
    model = create_model("rfdn", scale=3, nf=12, num_modules=3)
    pruner = Pruner(model, depth=True, round_to=2)
    random_prune(pruner, 0.3, seed=2)
    shallow = pruner.without_blocks(["B2"])
    random_prune(shallow, 0.2, seed=3)
    x = torch.rand(2, 3, 16, 18)
    small, config = shallow.export(verify=x)
    assert config.base_config["num_modules"] == 2
    save_pruned(tmp_path / "p", small, config)
    again = load_pruned(tmp_path / "p")
    assert again.pruned_config.base_config == {"nf": 12, "num_modules": 2}
    with torch.no_grad():
        assert torch.equal(small.eval()(x), again(x))


def test_official_rfdn_gate_zero_equals_removal(weights_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                random_prune, set_keep) -> None:
    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    model = create_model("rfdn_x4", pretrained=True).double().eval()
    pruner = Pruner(model, depth=True)
    random_prune(pruner, 0.3, seed=4)
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    diff, small, _ = _gate_zero_vs_removed(pruner, "B3", x, set_keep)
    assert small.edgesr_config["num_modules"] == 3
    assert diff <= 1e-6


def test_fisher_prune_drops_a_zeroed_block_and_exports(tmp_path: Path, datasets_dir: Path) -> None:
    from edgesr.export import ExportOptions, export_onnx

    torch.manual_seed(0)
    nf = 8
    model = create_model("rfdn", scale=2, nf=nf, num_modules=3)
    with torch.no_grad():  # B3's output reaches nothing (and stays so): its gate's Fisher score is exactly 0
        model.c[0].weight[:, 2 * nf:].zero_()
    model.c[0].weight.requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 32, 32, generator=gen)) for _ in range(2)]
    result = fisher_prune(model, None, batches, Target("flops", ratio=0.5), prune_every=2, round_to=2, steps=2,
                          progress=False, depth=True)  # one pruning step: the drop
    assert [e.block for e in result.history] == ["B3"] and result.config.blocks_removed == ["B3"]
    assert result.config.base_config["num_modules"] == 2
    assert result.config.complexity["after"]["flops"] < result.config.complexity["before"]["flops"]
    small = result.model.eval()
    with torch.no_grad():
        assert small(torch.rand(1, 3, 15, 17)).shape == (1, 3, 30, 34)
    out = export_onnx(small, tmp_path / "rfdn_depth.onnx", ExportOptions(parity_sizes=((24, 20), (31, 17)), threads=1))
    assert [(e.height, e.width) for e in out.sidecar.parity.entries] == [(24, 20), (31, 17)]  # one graph, two sizes
    assert out.sidecar.parity.max_abs_diff < 0.1
