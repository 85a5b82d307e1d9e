"""RepConv folds exactly (borders included) and rlfn_rep / rfdn_rep fold to plain RLFN / RFDN."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.analysis.complexity import profile_complexity
from edgesr.layers.repconv import RepConv
from edgesr.models import create_model, get_model_entry
from edgesr.layers import fold_math
from edgesr.transforms import reparameterize


def _randomize_bn(module: nn.Module) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.3, 2)
                m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-1, 1)


@pytest.mark.parametrize("cfg,convs", [
    ({}, 4),
    ({"use_bn": True}, 4),
    ({"stride": 2}, 4),
    ({"kernel_size": 5, "expand_ratio": 1.5}, 4),
    ({"expand_ratio": 0, "use_1x1": False}, 1),
    ({"out_channels": 6, "use_bn": True, "stride": 2}, 4),
], ids=["default", "bn", "stride2", "k5", "kxk+identity", "no-identity-bn-stride2"])
def test_repconv_folds_exactly_with_borders(cfg: dict, convs: int) -> None:
    torch.manual_seed(0)
    cfg = {"in_channels": 5, "out_channels": 5, **cfg}
    rep = RepConv(**cfg).double()
    _randomize_bn(rep)
    rep.eval()
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64)  # odd sizes: every border case
    with torch.no_grad():
        ref = rep(x)
        assert profile_complexity(rep, (7, 9), in_channels=5).convs == convs
        conv = rep.to_conv()
        assert isinstance(conv, nn.Conv2d) and float((conv(x) - ref).abs().max()) < 1e-10
        rep.reparameterize()
        rep.reparameterize()  # idempotent
        assert rep.deploy and list(rep.state_dict()) == ["weight", "bias"]
        assert float((rep(x) - ref).abs().max()) < 1e-10
        assert profile_complexity(rep, (7, 9), in_channels=5).convs == 1


def test_repconv_deploy_constructor_and_identity_rules() -> None:
    folded = RepConv(4, 4, deploy=True)
    shapes = {k: v.shape for k, v in folded.state_dict().items()}
    assert shapes == {k: v.shape for k, v in nn.Conv2d(4, 4, 3, padding=1).state_dict().items()}
    assert RepConv(4, 4).has_identity and not RepConv(4, 6).has_identity
    assert not RepConv(4, 4, stride=2).has_identity and not RepConv(4, 4, identity=False).has_identity
    with pytest.raises(ValueError, match="identity"):
        RepConv(4, 6, identity=True)
    with pytest.raises(ValueError, match="odd"):
        RepConv(4, 4, kernel_size=2)


def test_expand_squeeze_needs_the_bias_padding() -> None:
    """ECB's detail: with a zero-padded intermediate the expand-squeeze branch would not fold exactly."""
    torch.manual_seed(0)
    rep = RepConv(4, 4, expand_ratio=2).double()
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    expand, squeeze = rep.expand, rep.squeeze
    assert fold_math.compose_convs(expand, squeeze) is None  # zero padding: refused
    zero_padded = F.conv2d(expand(x), squeeze.weight, squeeze.bias, padding=1)
    folded = fold_math.compose_convs(expand, squeeze, pad_with_bias=True)(x)
    with torch.no_grad():
        assert float((rep._expand_squeeze(x) - folded).abs().max()) < 1e-10
        diff = (zero_padded - folded).abs()
        assert float(diff[..., 1:-1, 1:-1].max()) < 1e-10 and float(diff.max()) > 1e-3


def _train(model: nn.Module, scale: int, steps: int = 3) -> None:
    """A few Adam steps (float32, small patches): weights move away from their init, branches differ."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        lr = torch.rand(2, 3, 16, 16)
        loss = F.l1_loss(model(lr), torch.rand(2, 3, 16 * scale, 16 * scale))
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("rep_name,plain_name,n_rep", [("rlfn_rep", "rlfn", 20), ("rfdn_rep", "rfdn", 18)])
def test_rep_model_folds_to_the_plain_model(rep_name: str, plain_name: str, n_rep: int) -> None:
    torch.manual_seed(0)
    model = create_model(rep_name, scale=4)
    init = model.conv_1.conv_kxk.weight.detach().clone() if rep_name == "rlfn_rep" else None
    _train(model, 4)
    if init is not None:
        assert not torch.equal(init, model.conv_1.conv_kxk.weight)
    model.double().eval()
    x = torch.rand(1, 3, 17, 23, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
    report = model.reparameterize()
    entry = report["repconv"]
    assert entry.changes == n_rep and entry.convs_removed == 3 * n_rep
    assert entry.convs_before - entry.convs_after == entry.convs_removed
    assert not any(isinstance(m, RepConv) for m in model.modules()) and model.deploy

    plain = create_model(plain_name, scale=4).double().eval()
    sd = model.state_dict()
    assert {k: v.shape for k, v in sd.items()} == {k: v.shape for k, v in plain.state_dict().items()}
    assert list(sd) == list(plain.state_dict())
    plain.load_state_dict(sd, strict=True)
    with torch.no_grad():
        for out in (model(x), plain(x)):
            assert float((out - ref).abs().max() / ref.abs().max()) <= 1e-6
    assert entry.convs_after == profile_complexity(plain, (64, 64)).convs
    assert model.reparameterize().changes == 0  # idempotent

    deployed = create_model(rep_name, scale=4, deploy=True)
    assert {k: v.shape for k, v in deployed.state_dict().items()} == {k: v.shape for k, v in sd.items()}
    assert not any(isinstance(m, RepConv) for m in deployed.modules())


@pytest.mark.parametrize("scale", [2, 3])
def test_rep_models_other_scales_fold(scale: int) -> None:
    torch.manual_seed(0)
    for name in ("rlfn_rep", "rfdn_rep"):
        cfg = get_model_entry(name).builder.tiny_cfg
        model = create_model(name, scale=scale, **cfg).double().eval()
        x = torch.rand(1, 3, 16, 15, dtype=torch.float64)
        with torch.no_grad():
            ref = model(x)
            reparameterize(model, input_size=(32, 32))  # every pass, repconv first
            out = model(x)
        assert out.shape == (1, 3, 16 * scale, 15 * scale)
        assert float((out - ref).abs().max()) * 255 <= 1e-6


def test_deploy_form_loads_official_rlfn_weights(weights_dir, monkeypatch) -> None:
    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    deployed = create_model("rlfn_rep", scale=4, deploy=True, pretrained=str(weights_dir / "rlfn_x4.pth")).eval()
    official = create_model("rlfn_x4").eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(deployed(x), official(x))
    assert deployed.deploy and deployed.reparameterize().changes == 0
