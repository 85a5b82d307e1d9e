"""`reparameterize` on real models: every pass keeps the output, conv counts drop as claimed, idempotent.

Official RLFN x4 / RFDN x4 / IMDN x4 weights on a 32x32 crop of Set5 baby (LR x4); EDSR-baseline random.
Outputs compared on the 0..255 scale: float64 <= 1e-6, float32 <= 1e-3.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from edgesr.analysis.complexity import profile_complexity
from edgesr.data.image_io import read_image, to_tensor
from edgesr.errors import UserInputError
from edgesr.layers.mean_shift import MeanShift
from edgesr.layers.scale import ValueScale
from edgesr.models import create_model
from edgesr.layers import fold_math
from edgesr.transforms import list_passes, reparameterize
from edgesr.transforms.passes.conv_chain import ConvChainPass

TOL = {torch.float64: 1e-6, torch.float32: 1e-3}
SIZE = (64, 64)  # profiling size used in these tests (fast); the report's numbers scale with it

# What each pass must do on each model (changes; passes not listed change nothing).
EXPECTED = {
    "rlfn_x4": {"value_scale": 2},
    "rfdn_x4": {"value_scale": 2, "identity_residual": 12},
    "imdn_x4": {"value_scale": 2},
    "edsr_baseline": {"mean_shift": 1, "value_scale": 2},
}


@pytest.fixture(scope="module")
def crop(datasets_dir: Path) -> torch.Tensor:
    img = read_image(datasets_dir / "Set5" / "LR_bicubic" / "X4" / "baby.png")
    return to_tensor(img)[..., 40:72, 60:92].contiguous()  # 1x3x32x32, 0..1 (a face edge: real detail)


def _model(name: str, weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> nn.Module:
    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    torch.manual_seed(0)
    if name == "edsr_baseline":
        return create_model(name, scale=4, n_resblocks=4).eval()
    return create_model(name).eval()


def _max255(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) * 255


CASES = [("rlfn_x4", torch.float64), ("rlfn_x4", torch.float32), ("rfdn_x4", torch.float64),
         ("rfdn_x4", torch.float32), ("imdn_x4", torch.float64), ("edsr_baseline", torch.float64)]


@pytest.mark.parametrize("name,dtype", CASES, ids=[f"{n}-{str(d)[-7:]}" for n, d in CASES])
def test_each_pass_keeps_output_and_claims_its_conv_count(name: str, dtype: torch.dtype, crop: torch.Tensor,
                                                           weights_dir: Path, monkeypatch) -> None:
    model = _model(name, weights_dir, monkeypatch).to(dtype)
    x = crop.to(dtype)
    with torch.no_grad():
        ref = model(x)
    start = profile_complexity(model, SIZE)
    convs = start.convs
    for pass_name in list_passes():
        state = {k: v.clone() for k, v in model.state_dict().items()}
        entry = reparameterize(model, passes=[pass_name], input_size=SIZE)[pass_name]
        assert entry.changes == EXPECTED[name].get(pass_name, 0), (pass_name, entry.notes)
        # measured (edgesr.analysis.complexity) vs claimed (the pass)
        assert entry.convs_before == convs and entry.convs_before - entry.convs_after == entry.convs_removed
        convs = entry.convs_after
        if not entry.changes:  # nothing claimed: nothing touched
            assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()), pass_name
            continue
        with torch.no_grad():
            diff = _max255(model(x), ref)
        assert diff <= TOL[dtype], (pass_name, diff)
    end = profile_complexity(model, SIZE)
    assert end.convs == convs and end.params == start.params - 12 * (name == "edsr_baseline")
    assert reparameterize(model, input_size=SIZE).changes == 0


def test_full_pipeline_is_idempotent_and_keeps_keys(weights_dir: Path, crop: torch.Tensor, monkeypatch) -> None:
    model = _model("rfdn_x4", weights_dir, monkeypatch).double()
    keys = [(k, v.shape) for k, v in model.state_dict().items()]
    x = crop.double()
    with torch.no_grad():
        ref = model(x)
    first = reparameterize(model, input_size=SIZE)
    assert first.changes == 14 and [(k, v.shape) for k, v in model.state_dict().items()] == keys
    state = {k: v.clone() for k, v in model.state_dict().items()}
    second = reparameterize(model, input_size=SIZE)
    assert second.changes == 0 and all(p.changes == 0 for p in second.passes)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert _max255(model(x), ref) <= 1e-6
    # The rewritten RFDB blocks: GraphModules with the RFDB's children, without the residual adds.
    assert isinstance(model.B1, torch.fx.GraphModule) and type(model).__name__ == "RFDN"
    assert type(model.B1.esa).__name__ == "ESA"
    adds = [n for n in model.B1.graph.nodes if n.op == "call_function" and "add" in str(n.target)]
    assert adds == []
    clone = pickle.loads(pickle.dumps(model))  # torch.save(model) works too
    with torch.no_grad():
        assert _max255(clone(x), ref) <= 1e-6


def test_value_scale_removed_and_folded(weights_dir: Path, monkeypatch) -> None:
    rlfn = _model("rlfn_x4", weights_dir, monkeypatch)
    w = rlfn.conv_1.weight.detach().clone()
    reparameterize(rlfn, passes=["value_scale"], input_size=SIZE)
    assert isinstance(rlfn.to_native, nn.Identity) and isinstance(rlfn.from_native, nn.Identity)
    assert torch.allclose(rlfn.conv_1.weight, 255 * w)
    imdn = _model("imdn_x4", weights_dir, monkeypatch)
    report = reparameterize(imdn, passes=["value_scale"], input_size=SIZE)
    assert not any(isinstance(m, ValueScale) for m in imdn.modules())
    assert all("ValueScale(1) removed" in n for n in report["value_scale"].notes)


def test_skip_and_pass_selection(weights_dir: Path, monkeypatch) -> None:
    model = _model("rlfn_x4", weights_dir, monkeypatch)
    report = reparameterize(model, skip=["value_scale"], input_size=SIZE)
    assert report["value_scale"].skipped and isinstance(model.to_native, ValueScale)
    assert report.changes == 0 and "skipped" in str(report)
    with pytest.raises(UserInputError, match="Valid passes: repconv, conv_bn"):
        reparameterize(model, skip=["value_scales"])
    with pytest.raises(UserInputError, match="Did you mean: conv_chain"):
        reparameterize(model, passes=["conv_chains"])
    with pytest.raises(UserInputError, match="larger input_size"):
        reparameterize(model, input_size=(8, 8))


def test_esa_chain_decision_and_report_text(weights_dir: Path, monkeypatch) -> None:
    model = _model("rlfn_x4", weights_dir, monkeypatch)
    report = reparameterize(model, input_size=(256, 256))
    notes = report["conv_chain"].notes
    c5 = next(n for n in notes if n.startswith("block_1.c5 -> block_1.esa.conv1"))
    assert "not folded" in c5 and "also read by mul" in c5 and "+0.0000 G" in c5  # same MACs, nothing saved
    conv1 = next(n for n in notes if n.startswith("block_1.esa.conv1 -> block_1.esa.conv_f"))
    assert "+0.0377 G" in conv1  # (52 - 16) * 16 MACs per pixel more at 256x256
    assert isinstance(model.block_1.c5, nn.Conv2d) and isinstance(model.block_1.esa.conv1, nn.Conv2d)
    text = str(report)
    for pass_name in list_passes():
        assert pass_name in text
    assert "57 -> 57" in text and "1x3x256x256" in text and "notes:" in text
    data = report.to_dict()
    assert data["changes"] == 2 and [p["name"] for p in data["passes"] if p["changed"]] == ["value_scale"]


def test_edsr_mean_shift_border_and_res_scale() -> None:
    torch.manual_seed(0)
    model = create_model("edsr", scale=2, n_resblocks=2, n_feats=8).double().eval()  # res_scale 0.1
    x = torch.rand(1, 3, 13, 11, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
    head, sub_mean = model.head[0], model.sub_mean
    report = reparameterize(model, input_size=SIZE)
    with torch.no_grad():
        assert _max255(model(x), ref) <= 1e-6
    assert report["mean_shift"].changes == 1 and report["mean_shift"].convs_removed == 1
    assert isinstance(model.add_mean, nn.Identity)
    assert isinstance(model.sub_mean, nn.Conv2d) and not model.sub_mean.weight.requires_grad  # kept, frozen
    assert any("sub_mean not folded into head.0" in n and "border" in n for n in report["mean_shift"].notes)
    assert report["res_scale"].changes == 2
    assert all(block.res_scale == 1.0 for block in model.body[:2])
    # Why sub_mean stays: folding its shift into the zero-padded head conv is right inside, wrong on the border.
    shift = sub_mean.bias.detach()
    forced = fold_math.scale_input(nn.Conv2d(3, 8, 3, padding=0).double(), 1.0, shift)  # exact unpadded
    assert forced is not None and fold_math.scale_input(head, 1.0, shift) is None
    bias = head.bias.detach() + (head.weight.detach() * shift.view(1, 3, 1, 1)).sum((1, 2, 3))
    y = x * 255
    true = head(sub_mean(y))
    folded = nn.functional.conv2d(y, head.weight, bias, padding=1)
    diff = (true - folded).abs()
    diff = diff.detach()
    assert float(diff[..., 1:-1, 1:-1].max()) < 1e-9 and float(diff.max()) > 1.0


class _Block(nn.Module):
    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.c0 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.a, self.b = nn.Conv2d(16, 8, 1), nn.Conv2d(8, 16, 1)  # single use: folds
        self.squeeze = nn.Conv2d(16, 4, 1, bias=bias)  # 1x1 bottleneck before a 3x3: more MACs if folded
        self.wide = nn.Conv2d(4, 16, 3, padding=1)
        self.e, self.f, self.g = nn.Conv2d(16, 64, 1), nn.Conv2d(64, 4, 1), nn.Conv2d(64, 16, 1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn0(self.c0(x)))
        x = self.act(self.b(self.a(x)))
        x = self.act(self.wide(self.squeeze(x)))
        e = self.e(x)  # read twice: g and f read e's input instead, then e goes
        return self.g(e) + self.f(e).mean(1, keepdim=True)


class _Net(nn.Module):
    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.body = _Block(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _toy(bias: bool = False) -> nn.Module:
    torch.manual_seed(0)
    net = _Net(bias).double()
    with torch.no_grad():
        bn = net.body.bn0
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
    return net.eval()


def test_conv_bn_and_conv_chain_cost_decisions() -> None:
    net = _toy()
    x = torch.rand(2, 3, 11, 13, dtype=torch.float64)
    ref = net(x).detach()
    report = reparameterize(net, input_size=(32, 32))
    assert torch.allclose(net(x), ref, atol=1e-10, rtol=0)
    assert report["conv_bn"].changes == 1 and isinstance(net.body.bn0, nn.Identity)
    chain = report["conv_chain"]
    assert chain.changes == 3 and chain.convs_removed == 2 and chain.convs_before - chain.convs_after == 2
    assert isinstance(net.body.a, nn.Identity) and isinstance(net.body.e, nn.Identity)
    assert isinstance(net.body.squeeze, nn.Conv2d)  # bottleneck kept: folding costs MACs
    assert any(n.startswith("body.squeeze -> body.wide not folded") and "more than allowed" in n
               for n in chain.notes)
    assert chain.macs_after < chain.macs_before
    assert reparameterize(net, input_size=(32, 32)).changes == 0
    # A looser budget folds the bottleneck too (more MACs, one conv and its activations fewer).
    loose = _toy()
    r2 = reparameterize(loose, passes=[ConvChainPass(max_mac_increase=10.0)], input_size=(32, 32))
    assert isinstance(loose.body.squeeze, nn.Identity) and r2["conv_chain"].convs_removed == 3
    assert torch.allclose(loose(x), _toy()(x), atol=1e-10, rtol=0)


def test_patterns_in_the_model_forward_are_reported_not_rewritten() -> None:
    class Root(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) + x

    model = Root()
    report = reparameterize(model, input_size=(8, 8), in_channels=4)
    assert report.changes == 0 and type(model) is Root
    assert any("model's own forward" in n for n in report["identity_residual"].notes)


def test_meanshift_is_never_left_half_folded() -> None:
    model = create_model("rcan", scale=3, n_resgroups=1, n_resblocks=1, n_feats=16, reduction=2).double().eval()
    x = torch.rand(1, 3, 9, 10, dtype=torch.float64)
    ref = model(x).detach()
    reparameterize(model, input_size=(16, 16))
    assert not any(isinstance(m, MeanShift) and m.sign == 1 for m in model.modules())
    assert _max255(model(x).detach(), ref) <= 1e-6
