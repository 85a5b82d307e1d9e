"""EDSR (baseline and full), RCAN, RDN and DRN: shapes, gradients, sizes, keys, fx tracing."""
from __future__ import annotations

import pytest
import torch
import torch.fx
from torch import nn

from edgesr.errors import UserInputError
from edgesr.layers.mean_shift import DIV2K_RGB_MEAN, MeanShift
from edgesr.layers.scale import ValueScale
from edgesr.models import create_model, get_model_entry

# Each builder carries `tiny_cfg`: every architectural feature present, a few thousand weights.
MODELS = ["drn", "edsr", "edsr_baseline", "rcan", "rdn"]
TINY = {name: dict(get_model_entry(name).builder.tiny_cfg) for name in MODELS}
SCALES = (2, 3, 4)

# Trainable parameters (MeanShift excluded) of the default x4 builds, computed from the layer shapes
# (e.g. EDSR baseline: head 1,792 + 16 ResBlocks x 73,856 + body conv 36,928 + upsampler 295,424
# + tail conv 1,731), and the figures the papers publish.
PARAMS_X4 = {
    "edsr_baseline": 1_517_571,
    "edsr": 43_089_923,
    "rcan": 15_592_355,
    "rdn": 22_271_107,
    "drn": 1_453_059,
}
PUBLISHED_X4 = {"edsr_baseline": 1.5e6, "edsr": 43e6, "rcan": 16e6, "rdn": 22e6}
MEANSHIFT_PARAMS = 2 * (3 * 3 + 3)  # sub_mean + add_mean, frozen


def _tiny(name: str, scale: int) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, scale=scale, **TINY[name])


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_gradients(name: str, scale: int) -> None:
    model = _tiny(name, scale)
    assert model.scale == scale and model.edgesr_name == name
    x = torch.rand(1, 3, 17, 23)
    y = model(x)
    assert y.shape == (1, 3, 17 * scale, 23 * scale)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()

    nn.functional.l1_loss(y, torch.rand_like(y)).backward()
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    for module in model.modules():
        if isinstance(module, MeanShift):
            assert module.weight.grad is None and module.bias.grad is None
    # Only MeanShift parameters are frozen.
    assert all(n.startswith(("sub_mean.", "add_mean.")) for n in frozen), frozen


@pytest.mark.parametrize("name", MODELS)
def test_default_size_matches_published(name: str) -> None:
    model = create_model(name, scale=4)
    entry = get_model_entry(name)
    assert entry.scales == SCALES and entry.pretrained == ()
    n_frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert _trainable(model) == PARAMS_X4[name]
    assert n_frozen == (MEANSHIFT_PARAMS if name in ("edsr_baseline", "edsr", "rcan") else 0)
    if name in PUBLISHED_X4:
        assert _trainable(model) == pytest.approx(PUBLISHED_X4[name], rel=0.05)
    else:  # DRN is meant to be light: at most EDSR-baseline's size.
        assert _trainable(model) <= PARAMS_X4["edsr_baseline"]
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_unsupported_scale_lists_supported() -> None:
    with pytest.raises(UserInputError, match="supported scales: 2, 3, 4"):
        create_model("edsr_baseline", scale=5)


def test_unknown_hyperparameter_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="bad configuration for rcan"):
        create_model("rcan", scale=2, n_blocks=3)


@pytest.mark.parametrize("name", MODELS)
def test_fx_traceable_and_no_inplace(name: str) -> None:
    model = _tiny(name, 4).eval()
    gm = torch.fx.symbolic_trace(model)
    x = torch.rand(2, 3, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=0, atol=0)
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op == "call_method":
            assert not node.target.endswith("_"), f"{name}: in-place {node.target} in the graph"
        if node.op == "call_module":
            assert not getattr(modules[node.target], "inplace", False), f"{name}: in-place {node.target}"
        if node.op == "call_function" and "conv" in getattr(node.target, "__name__", ""):
            # Convolutions are modules. The one exception: the default tracer only keeps torch.nn
            # classes as leaves, so MeanShift (an nn.Conv2d subclass) is traced into F.conv2d.
            assert str(node.args[1].target) in {"sub_mean.weight", "add_mean.weight"}, f"{name}: {node}"

    class MeanShiftLeaf(torch.fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, MeanShift) or super().is_leaf_module(m, qualname)

    graph = MeanShiftLeaf().trace(model)
    assert not [n for n in graph.nodes if n.op == "call_function" and "conv" in str(n.target)]


@pytest.mark.parametrize("name", MODELS)
def test_value_range_convention(name: str) -> None:
    model = _tiny(name, 2)
    native = get_model_entry(name).input_range
    if native == 255.0:
        first, last = next(iter(model.named_children())), list(model.named_children())[-1]
        assert first[0] == "to_native" and isinstance(first[1], ValueScale) and first[1].factor == 255.0
        assert last[0] == "from_native" and isinstance(last[1], ValueScale)
        assert last[1].factor == pytest.approx(1 / 255.0)
    else:
        assert name == "drn" and native == 1.0
    assert model.default_loss == "l1"
    sd = model.state_dict()
    assert type(model).remap_state_dict(sd).keys() == sd.keys()


def _edsr_pytorch_keys(n_resblocks: int, scale: int) -> set[str]:
    """State-dict keys of sanghyun-son/EDSR-PyTorch's EDSR (no BN)."""
    convs = ["head.0"]
    for i in range(n_resblocks):
        convs += [f"body.{i}.body.0", f"body.{i}.body.2"]
    convs.append(f"body.{n_resblocks}")
    convs += [f"tail.0.{2 * k}" for k in range({2: 1, 3: 1, 4: 2}[scale])]
    convs += ["tail.1", "sub_mean", "add_mean"]
    return {f"{c}.{w}" for c in convs for w in ("weight", "bias")}


@pytest.mark.parametrize("scale", SCALES)
def test_edsr_state_dict_follows_edsr_pytorch(scale: int) -> None:
    model = create_model("edsr_baseline", scale=scale)
    sd = model.state_dict()
    assert set(sd) == _edsr_pytorch_keys(16, scale)
    assert sd["body.16.weight"].shape == (64, 64, 3, 3)
    assert sd["tail.0.0.weight"].shape == ((4 if scale != 3 else 9) * 64, 64, 3, 3)
    assert sd["tail.1.weight"].shape == (3, 64, 3, 3)
    assert [b.res_scale for b in model.body[:-1]] == [1.0] * 16
    full = _tiny("edsr", scale)
    assert all(type(b.res_scale) is float and b.res_scale == 0.1 for b in full.body[:-1])


def test_meanshift_matches_edsr_pytorch() -> None:
    model = _tiny("edsr_baseline", 4)
    sub, add = model.sub_mean, model.add_mean
    assert isinstance(sub, MeanShift) and isinstance(add, MeanShift)
    assert not sub.weight.requires_grad and not sub.bias.requires_grad
    torch.testing.assert_close(sub.weight, torch.eye(3).view(3, 3, 1, 1))
    torch.testing.assert_close(sub.bias, -255.0 * torch.tensor(DIV2K_RGB_MEAN))
    torch.testing.assert_close(add.bias, 255.0 * torch.tensor(DIV2K_RGB_MEAN))
    x = torch.rand(1, 3, 4, 5) * 255
    torch.testing.assert_close(add(sub(x)), x)
    sub.weight.data.zero_()  # a generic re-initialisation restores the fixed values
    sub.reset_parameters()
    torch.testing.assert_close(sub.weight, torch.eye(3).view(3, 3, 1, 1))


def test_rcan_and_rdn_keys_follow_edsr_pytorch() -> None:
    rcan = _tiny("rcan", 4).state_dict()
    for key in ("sub_mean.weight", "head.0.weight", "body.1.body.0.body.0.weight",
                "body.1.body.1.body.2.bias", "body.0.body.1.body.3.conv_du.0.weight",
                "body.0.body.1.body.3.conv_du.2.bias", "body.0.body.2.weight", "body.2.weight",
                "tail.0.0.weight", "tail.0.2.weight", "tail.1.weight", "add_mean.bias"):
        assert key in rcan, key
    assert rcan["body.0.body.1.body.3.conv_du.0.weight"].shape == (8, 16, 1, 1)

    rdn = _tiny("rdn", 4).state_dict()
    for key in ("SFENet1.weight", "SFENet2.weight", "RDBs.1.convs.1.conv.0.weight", "RDBs.0.LFF.weight",
                "GFF.0.weight", "GFF.1.weight", "UPNet.0.weight", "UPNet.2.weight", "UPNet.4.weight"):
        assert key in rdn, key
    assert rdn["RDBs.0.convs.1.conv.0.weight"].shape == (4, 8 + 4, 3, 3)
    assert rdn["RDBs.0.LFF.weight"].shape == (8, 8 + 2 * 4, 1, 1)
    assert rdn["GFF.0.weight"].shape == (8, 2 * 8, 1, 1)
    assert set(k.rsplit(".", 1)[0] for k in _tiny("rdn", 3).state_dict() if k.startswith("UPNet")) == {
        "UPNet.0", "UPNet.2"}
