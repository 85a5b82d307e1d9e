"""SPAN's Conv3XC and EFDN's EDBB: the training-time forms fold (pass ``repconv``) into exactly the deploy
forms that load the official checkpoints, with the same function."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgesr.analysis.complexity import profile_complexity
from edgesr.layers.conv3xc import Conv3XC
from edgesr.layers.edbb import EDBB
from edgesr.layers.reparam import ReparamConv
from edgesr.models import create_model
from edgesr.layers import fold_math

# (training form, deploy form, official hyper-parameters, re-parameterizable blocks, convs each)
FORMS = [("span_rep", "span", {"feature_channels": 28}, 20, 4), ("efdn_rep", "efdn", {}, 8, 8)]


@pytest.mark.parametrize("rep_name,plain_name,cfg,n_rep,convs_each", FORMS, ids=[f[0] for f in FORMS])
def test_training_form_folds_to_the_deploy_form(rep_name: str, plain_name: str, cfg: dict, n_rep: int,
                                                convs_each: int, adam_steps) -> None:
    torch.manual_seed(0)
    model = create_model(rep_name, scale=4, **cfg)
    blocks = [m for m in model.modules() if isinstance(m, ReparamConv)]
    assert len(blocks) == n_rep and not model.deploy
    first = blocks[0]
    before = {k: v.detach().clone() for k, v in first.state_dict().items()}
    adam_steps(model)
    assert all(not torch.equal(before[k], v) for k, v in first.state_dict().items())  # every branch trained
    model.double().eval()
    x = torch.rand(1, 3, 17, 23, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
    if plain_name == "efdn":  # the output is clamped to 0..1: the comparison must see unclamped values
        assert float(((ref > 0) & (ref < 1)).double().mean()) > 0.5

    report = model.reparameterize()
    entry = report["repconv"]
    assert entry.changes == n_rep and entry.convs_removed == (convs_each - 1) * n_rep
    assert entry.convs_before - entry.convs_after == entry.convs_removed
    assert model.deploy and not any(isinstance(m, ReparamConv) for m in model.modules())

    plain = create_model(plain_name, scale=4, **cfg).double().eval()
    sd = model.state_dict()
    assert list(sd) == list(plain.state_dict())
    assert {k: v.shape for k, v in sd.items()} == {k: v.shape for k, v in plain.state_dict().items()}
    plain.load_state_dict(sd, strict=True)
    with torch.no_grad():
        for out in (model(x), plain(x)):
            assert float((out - ref).abs().max() / ref.abs().max()) <= 1e-6
    assert entry.convs_after == profile_complexity(plain, (32, 32)).convs
    assert model.reparameterize().changes == 0  # idempotent

    deployed = create_model(rep_name, scale=4, deploy=True, **cfg)
    assert {k: v.shape for k, v in deployed.state_dict().items()} == {k: v.shape for k, v in sd.items()}


@pytest.mark.parametrize("rep_name,cfg", [("span_rep", {"feature_channels": 28}), ("efdn_rep", {})])
def test_deploy_form_of_the_training_model_loads_the_official_weights(rep_name: str, cfg: dict, monkeypatch) -> None:
    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    official = create_model({"span_rep": "span_ch28_x4", "efdn_rep": "efdn_x4"}[rep_name]).eval()
    deployed = create_model(rep_name, scale=4, deploy=True, **cfg).eval()
    deployed.load_state_dict(official.state_dict(), strict=True)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(deployed(x), official(x))
    assert deployed.deploy and deployed.reparameterize().changes == 0


@pytest.mark.parametrize("scale", [2, 3])
def test_other_scales_fold(scale: int) -> None:
    torch.manual_seed(0)
    for name, cfg in (("span_rep", {"feature_channels": 8, "num_blocks": 2}),
                      ("efdn_rep", {"feature_channels": 8, "esa_channels": 4})):
        model = create_model(name, scale=scale, **cfg).double().eval()
        x = torch.rand(1, 3, 16, 15, dtype=torch.float64)
        with torch.no_grad():
            ref = model(x)
            model.reparameterize()
            out = model(x)
        assert out.shape == (1, 3, 16 * scale, 15 * scale)
        assert float((out - ref).abs().max()) * 255 <= 1e-9


def _trained(block: ReparamConv) -> ReparamConv:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return block.double().eval()


@pytest.mark.parametrize("block", [
    lambda: Conv3XC(5, 7, gain=2), lambda: Conv3XC(6, 6, gain=3, stride=2), lambda: EDBB(6, 6),
    lambda: EDBB(6, 6, identity=True, expand_ratio=2), lambda: EDBB(4, 9, expand_ratio=1)],
    ids=["conv3xc", "conv3xc-stride2", "edbb", "edbb-identity-expand", "edbb-widen"])
def test_block_folds_in_place_and_to_a_conv(block) -> None:
    rep = _trained(block())
    x = torch.rand(2, rep.in_channels, 13, 10, dtype=torch.float64)
    with torch.no_grad():
        ref = rep(x)
        conv = rep.to_conv()
        assert isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
        assert float((conv(x) - ref).abs().max()) <= 1e-12
        rep.reparameterize()
        assert rep.deploy and set(dict(rep.named_parameters())) == {"weight", "bias"}
        assert not list(rep.children()) and not list(rep.buffers())
        assert float((rep(x) - ref).abs().max()) <= 1e-12
        assert rep.num_convs() == 1


def test_conv3xc_chain_matches_the_official_zero_padded_input() -> None:
    """Conv3XC's chain runs on the zero-padded input (1x1 of a zero = its bias): the same as padding the
    1x1 output with that bias, which is what makes the fold exact."""
    rep = _trained(Conv3XC(3, 4))
    x = torch.rand(1, 3, 9, 8, dtype=torch.float64)
    mid = F.conv2d(F.pad(x, (1, 1, 1, 1)), rep.expand.weight, rep.expand.bias)
    chain = F.conv2d(F.conv2d(mid, rep.conv.weight, rep.conv.bias), rep.squeeze.weight, rep.squeeze.bias)
    with torch.no_grad():
        assert torch.allclose(rep(x), chain + rep.skip(x), atol=1e-12)


def test_edge_filters_and_ungroup() -> None:
    edbb = _trained(EDBB(3, 3))
    sobel_x = edbb.sobel_x.mask[0, 0]
    assert sobel_x.tolist() == [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    assert edbb.laplacian.mask[0, 0].sum() == 0 and edbb.laplacian.mask[0, 0, 1, 1] == -4
    assert "sobel_x.mask" not in edbb.state_dict()  # fixed filters are not weights
    dw = edbb.sobel_y.depthwise_conv().double()
    dense = fold_math.ungroup(dw)
    x = torch.rand(1, 3, 7, 6, dtype=torch.float64)
    with torch.no_grad():
        assert dense.groups == 1 and torch.allclose(dense(x), dw(x), atol=1e-12)
