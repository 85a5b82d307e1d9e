"""IMDN's split sizes are config: both pieces of every split (distilled -> fusion conv, remaining -> next conv)
are prunable groups, the pruned sizes go into the config, and the pruned model slices, rebuilds and exports."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgesr.errors import UserInputError
from edgesr.models import create_model, load_model
from edgesr.models.widths import ConfigSplits
from edgesr.prune import MagnitudeImportance, Pruner, Target, fisher_prune, load_pruned, save_pruned, slice_model
from edgesr.prune.slicing import WEIGHTS_NAME
from edgesr.prune.trace import trace_channels

CFG = {"nc": 16, "nb": 2}
SPLIT_CONVS = [f"model.1.sub.{b}.conv{k}.0" for b in range(2) for k in (1, 2, 3)]


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread) -> None:
    """Tiny models: one torch thread (`one_torch_thread` in tests/conftest.py)."""


def _split_widths(config_splits: list) -> list[list[int]]:
    """[d, r] of conv1..conv3 of every block, flattened in SPLIT_CONVS order."""
    return [pair for block in config_splits for pair in block]


@pytest.fixture(scope="module")
def pruned_tiny(random_prune):
    """A tiny IMDN x3 (float64) with 40% of every prunable group's channels masked, and its sliced copy."""
    torch.manual_seed(0)
    model = create_model("imdn", scale=3, **CFG).double().eval()
    pruner = Pruner(model)
    random_prune(pruner, 0.4, seed=3)
    small, config = slice_model(model, pruner)
    return model, pruner, small.eval(), config


def test_split_pieces_are_separate_prunable_groups() -> None:
    graph = trace_channels(create_model("imdn", scale=4, **CFG))
    by_name = {g.name: g for g in graph.groups}
    for b in range(2):
        block = f"model.1.sub.{b}"
        for k in (1, 2, 3):
            conv, nxt = f"{block}.conv{k}.0", f"{block}.conv{k + 1}" + (".0" if k < 3 else "")
            d, r = by_name[f"{conv}[0:4]"], by_name[f"{conv}[4:16]"]
            assert d.index != r.index and (d.width, r.width) == (4, 12)
            assert d.prunable == 4 and r.prunable == 12  # nothing frozen in either piece
            assert [m.describe() for m in d.producers] == [f"{conv}[0:4]"]
            assert [m.describe() for m in d.consumers] == [f"{block}.conv1x1[{4 * (k - 1)}:{4 * k}]"]
            assert [m.describe() for m in r.producers] == [f"{conv}[4:16]"]
            assert [m.describe() for m in r.consumers] == [f"{nxt}[0:12]"]
        assert [m.describe() for m in by_name[f"{block}.conv4"].consumers] == [f"{block}.conv1x1[12:16]"]
    assert len(graph.split_calls) == 6 and {c.index for c in graph.split_calls} == {0, 1, 2}
    # what must stay: the RGB input and the upsampler conv's outputs, nothing else
    assert sorted(g.name for g in graph.groups if g.prunable < g.width) == ["input:x", "model.2"]
    assert len(graph.groups) == 2 + 1 + 2 * (6 + 1)  # in/out, the stream, per block 3 x (d, r) + conv4


def test_default_splits_are_the_paper_layout() -> None:
    paper = create_model("imdn", scale=4)
    explicit = create_model("imdn", scale=4, splits=[[[16, 48]] * 3] * 8)
    assert {k: v.shape for k, v in paper.state_dict().items()} == {k: v.shape for k, v in explicit.state_dict().items()}
    assert sum(p.numel() for p in paper.parameters()) == 893_936
    with pytest.raises(UserInputError, match="one entry per block"):
        create_model("imdn", scale=4, nb=2, splits=[[[16, 48]] * 3])
    with pytest.raises(UserInputError, match="three .distilled, remaining. pairs"):
        create_model("imdn", scale=4, nb=1, splits=[[[16, 48], [0, 64], [16, 48]]])


def test_masking_equals_slicing_float64(pruned_tiny) -> None:
    model, pruner, small, config = pruned_tiny
    x = torch.rand(2, 3, 17, 19, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        full = model(x)
        with pruner.attached():
            masked = model(x)
        sliced = small(x)
    assert sliced.shape == (2, 3, 51, 57)
    assert (masked - full).abs().max().item() > 1e-3  # the masks change the output...
    assert (masked - sliced).abs().max().item() <= 1e-6  # ...exactly as removing the channels does
    # every split lost channels on both sides, and the config says so
    splits = _split_widths(config.base_config["splits"])
    assert all(d < 4 and r < 12 for d, r in splits), splits
    for conv, (d, r) in zip(SPLIT_CONVS, splits):
        assert small.get_submodule(conv).out_channels == d + r
    assert sum(p.numel() for p in small.parameters()) == pruner.complexity()["params"]


def test_save_rebuild_identical_and_weights_alone_detected(pruned_tiny, tmp_path: Path) -> None:
    _, _, small, config = pruned_tiny
    folder = save_pruned(tmp_path / "imdn_pruned", small, config)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["base_config"]["splits"] == config.base_config["splits"]
    rebuilt = load_pruned(folder).double()
    fresh = create_model("imdn", scale=3, **saved["base_config"])  # the config alone gives the split widths
    for conv in SPLIT_CONVS:
        assert fresh.get_submodule(conv).out_channels == small.get_submodule(conv).out_channels
    detected = load_model(folder / WEIGHTS_NAME).double().eval()  # no config.json: splits read from shapes
    assert detected.edgesr_detection.config["splits"] == config.base_config["splits"]
    x = torch.rand(1, 3, 15, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = small(x)
        assert torch.equal(rebuilt(x), ref)
        assert torch.equal(detected(x), ref)


def test_fisher_pruning_thins_the_split_convs() -> None:
    torch.manual_seed(0)
    model = create_model("imdn", scale=2, **CFG)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.rand(2, 3, 12, 12, generator=gen), torch.rand(2, 3, 24, 24, generator=gen)) for _ in range(4)]
    result = fisher_prune(model, None, batches, Target("flops", ratio=0.85), prune_every=1, round_to=2,
                          base_config=CFG, progress=False)
    assert result.target_met
    pieces = {e.name for e in result.history if any(e.name.startswith(c + "[") for c in SPLIT_CONVS)}
    assert len(pieces) >= 3, [e.name for e in result.history]  # distilled or remaining parts of split convs
    splits = _split_widths(result.config.base_config["splits"])
    assert sum(d + r for d, r in splits) < 6 * 16
    assert all(d >= 2 and r >= 2 and d % 2 == 0 and r % 2 == 0 for d, r in splits)  # round_to holds per piece
    x = torch.rand(1, 3, 15, 17)
    assert result.model(x).shape == (1, 3, 30, 34)


def test_magnitude_pruned_imdn_exports_with_dynamic_hw(tmp_path: Path) -> None:
    from edgesr.export import ExportOptions, export_onnx

    model = create_model("imdn", scale=2, **CFG)
    pruner = Pruner(model, round_to=2, normalize="none", importance=MagnitudeImportance())
    events = [pruner.step() for _ in range(10)]
    assert any(e.name.startswith(c) for e in events for c in SPLIT_CONVS)
    small, config = pruner.export()
    result = export_onnx(small.eval(), tmp_path / "imdn_pruned.onnx",
                         ExportOptions(parity_sizes=((24, 20), (31, 17)), threads=1))
    sidecar = json.loads(result.sidecar_path.read_text())
    assert sidecar["inputs"][0]["shape"] == ["batch", 3, "height", "width"]
    assert [(e["height"], e["width"]) for e in sidecar["parity"]["entries"]] == [(24, 20), (31, 17)]
    assert sidecar["parity"]["max_abs_diff"] <= 1e-2  # 8-bit levels, ONNX Runtime vs PyTorch


def test_official_weights_prune_inside_blocks(weights_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    model = create_model("imdn_x4", pretrained=True).double().eval()
    pruner = Pruner(model, example_input=(1, 3, 16, 16), round_to=4, normalize="none",
                    importance=MagnitudeImportance())
    convs = [f"model.1.sub.{b}.conv{k}.0[" for b in range(8) for k in (1, 2, 3)]
    split_groups = [g for g in pruner.groups if any(g.name.startswith(c) for c in convs)]
    assert len(split_groups) == 8 * 3 * 2 and all(g.prunable == g.width for g in split_groups)
    assert sorted(g.name for g in pruner.groups if g.prunable < g.width) == ["input:x", "model.2"]
    for _ in range(6):
        pruner.step()
    x = torch.rand(1, 3, 12, 14, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    small, config = pruner.export(verify=x, atol=1e-9)  # raises if the sliced model differs from the masked one
    assert "splits" in config.base_config and sum(p.numel() for p in small.parameters()) < 893_936


class _ConstantSplit(torch.nn.Module):
    """A split whose sizes are written in the code: its conv's outputs stay frozen."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = (torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(2, 4, 1),
                                  torch.nn.Conv2d(10, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, r = torch.split(self.a(x), (2, 6), dim=1)
        return self.c(torch.cat((self.b(d), r), dim=1))


class _MislabelledSplit(ConfigSplits, _ConstantSplit):
    """Declares configurable splits, but the forward splits at other sizes: still frozen."""

    split_sizes = ((4, 4),)


@pytest.mark.parametrize("cls", [_ConstantSplit, _MislabelledSplit])
def test_splits_that_are_not_config_stay_frozen(cls) -> None:
    graph = trace_channels(cls())
    a = next(g for g in graph.groups if g.name.startswith("a"))
    assert a.is_frozen and any("split with constant sizes" in r for r in a.frozen_reasons)
    assert not graph.split_calls
