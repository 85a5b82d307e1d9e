"""Channel groups found from the fx graph: golden memberships, frozen channels, errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.errors import UserInputError
from edgesr.models import create_model, get_model_entry, list_models
from edgesr.prune import Pruner, UnsupportedOpError, find_groups, format_groups, trace_channels


def members(groups) -> dict[str, tuple[set[str], set[str]]]:
    """group name -> (producer modules, consumer modules)."""
    return {g.name: (set(g.modules("out")), set(g.modules("in"))) for g in groups}


def test_rlfn_x4_official_layout() -> None:
    groups = find_groups(create_model("rlfn", scale=4))
    got = members(groups)
    want: dict[str, tuple[set[str], set[str]]] = {
        # the long skip: conv_1 + conv_2 (out = conv_2(out) + out_feature) and block_1's local residual
        # (c3_r(...) + x) are one stream; it feeds block_1 (c1_r and, through the residual add, c5)
        "conv_1": ({"conv_1", "block_1.c3_r", "conv_2"}, {"block_1.c1_r", "block_1.c5", "upsampler.0"}),
    }
    for k in range(1, 7):
        b, e = f"block_{k}", f"block_{k}.esa"
        want[f"{b}.c1_r"] = ({f"{b}.c1_r"}, {f"{b}.c2_r"})
        want[f"{b}.c2_r"] = ({f"{b}.c2_r"}, {f"{b}.c3_r"})
        # ESA ends with c5_out * sigmoid(conv4(...)): c5 and conv4 share channels; the next block's local
        # residual adds c3_r to them and the next block's c1_r and c5 read them
        if k < 6:
            want[f"{b}.c5"] = ({f"{b}.c5", f"{e}.conv4", f"block_{k + 1}.c3_r"},
                               {f"{e}.conv1", f"block_{k + 1}.c1_r", f"block_{k + 1}.c5"})
        else:
            want[f"{b}.c5"] = ({f"{b}.c5", f"{e}.conv4"}, {f"{e}.conv1", "conv_2"})
        want[f"{e}.conv1"] = ({f"{e}.conv1"}, {f"{e}.conv2", f"{e}.conv_f"})
        want[f"{e}.conv2"] = ({f"{e}.conv2"}, {f"{e}.conv3"})
        want[f"{e}.conv3"] = ({f"{e}.conv3", f"{e}.conv_f"}, {f"{e}.conv4"})
    prunable = {g.name for g in groups if not g.is_frozen}
    assert prunable == set(want)
    for name, (outs, ins) in want.items():
        assert got[name] == (outs, ins), name
    by_name = {g.name: g for g in groups}
    assert by_name["conv_1"].width == 52 and by_name["block_1.esa.conv1"].width == 16
    frozen = [g for g in groups if g.is_frozen]
    assert [(g.name, g.width) for g in frozen] == [("input:x", 3), ("upsampler.0", 3)]
    # the 48 upsampler outputs are 3 frozen blocks of 16 (PixelShuffle(4))
    ups = by_name["upsampler.0"].producers[0]
    assert [len(c) for c in ups.channels] == [16, 16, 16]
    text = format_groups(groups)
    assert "39 channel groups, 37 prunable" in text
    assert "out: conv_1[0:52], block_1.c3_r[0:52], conv_2[0:52]" in text


def test_rfdn_cat_offsets_and_stream_groups() -> None:
    groups = find_groups(create_model("rfdn", scale=4, nf=8, num_modules=2))
    by_name = {g.name: g for g in groups}
    # in-block `conv(r) + r` pulls c1_r..c3_r into the stream of the block input
    assert set(by_name["fea_conv"].modules("out")) == {"fea_conv", "B1.c1_r", "B1.c2_r", "B1.c3_r", "LR_conv"}
    assert set(by_name["B1.c5"].modules("out")) == {"B1.c5", "B1.esa.conv4", "B2.c1_r", "B2.c2_r", "B2.c3_r"}
    # each distillation branch is its own group, mapped to a slice of c5's input
    for i, name in enumerate(["B1.c1_d", "B1.c2_d", "B1.c3_d", "B1.c4"]):
        g = by_name[name]
        assert g.modules("out") == [name] and g.modules("in") == ["B1.c5"]
        assert [c for chans in g.consumers[0].channels for c in chans] == list(range(4 * i, 4 * i + 4))
    # the final 1x1 `c` reads cat(B1 out, B2 out): two groups at offsets 0 and 8
    c_in = {g.name: [c for m in g.consumers if m.module == "c.0" for chans in m.channels for c in chans]
            for g in groups}
    assert c_in["B1.c5"] == list(range(0, 8)) and c_in["B2.c5"] == list(range(8, 16))
    assert sum(1 for g in groups if not g.is_frozen) == 22


def test_imdn_stream_and_split_pieces() -> None:
    groups = find_groups(create_model("imdn", scale=4, nc=16, nb=1))
    by_name = {g.name: g for g in groups}
    stream = by_name["model.0"]
    assert not stream.is_frozen
    assert set(stream.modules("out")) == {"model.0", "model.1.sub.0.conv1x1", "model.1.sub.1"}
    assert set(stream.modules("in")) == {"model.1.sub.0.conv1.0", "model.1.sub.1", "model.2"}
    for name in ("model.1.sub.0.conv1.0", "model.1.sub.0.conv2.0", "model.1.sub.0.conv3.0"):
        # the split sizes are config: the distilled and remaining parts are groups of their own
        assert by_name[f"{name}[0:4]"].prunable == 4 and by_name[f"{name}[4:16]"].prunable == 12
    assert not by_name["model.1.sub.0.conv4"].is_frozen  # the last distilled branch goes only into the cat


def test_edsr_residual_stream_is_one_group_and_meanshift_frozen() -> None:
    groups = find_groups(create_model("edsr", scale=4, n_resblocks=2, n_feats=8))
    by_name = {g.name: g for g in groups}
    assert set(by_name["head.0"].modules("out")) == {"head.0", "body.0.body.2", "body.1.body.2", "body.2"}
    for name in ("sub_mean", "add_mean", "tail.1"):
        assert by_name[name].is_frozen
    assert any("MeanShift" in r for r in by_name["sub_mean"].frozen_reasons)
    assert [len(c) for c in by_name["tail.0.0"].producers[0].channels] == [4] * 8  # PixelShuffle(2) blocks


def test_frozen_channels_are_never_pruned() -> None:
    model = create_model("edsr", scale=2, n_resblocks=1, n_feats=4)
    pruner = Pruner(model, normalize="none")
    while pruner.step() is not None:
        pass
    for g in pruner.groups:
        keep = pruner.group_keep(g.index)
        assert all(keep[c] for c in range(g.width) if g.frozen[c])
        assert keep.sum() >= 1
    frozen_group = next(g for g in pruner.groups if g.is_frozen)
    with pytest.raises(UserInputError, match="frozen"):
        pruner.prune(frozen_group.index, [0])


TINY: dict[str, dict] = {
    "rlfn": {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4},
    "rlfn_s": {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4},
    "rlfn_ntire": {"feature_channels": 8, "mid_channels": 12, "num_blocks": 1, "esa_channels": 4},
    "rfdn": {"nf": 8, "num_modules": 2},
    "imdn": {"nc": 16, "nb": 1},
}
# training-time re-parameterizable blocks compute with F.conv2d: fold them first (edgesr.transforms)
KNOWN_UNSUPPORTED = {"rlfn_rep", "rfdn_rep", "span_rep", "efdn_rep"}


def tiny(name: str) -> dict:
    return dict(TINY.get(name) or getattr(get_model_entry(name).builder, "tiny_cfg", None) or {})


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_traces_with_frozen_io(name: str) -> None:
    model = create_model(name, scale=2, **tiny(name))
    if name in KNOWN_UNSUPPORTED:
        with pytest.raises(UnsupportedOpError, match="is in its training form: .* fold them first"):
            trace_channels(model)
        return
    graph = trace_channels(model, (2, 3, 20, 20))
    assert any(not g.is_frozen for g in graph.groups)
    first, last = graph.conv_calls[0], graph.conv_calls[-1]
    # the RGB input channels and the output channels are frozen
    for e in first.in_elems:
        assert graph.groups[graph.elem_group[e]].frozen[graph.elem_comp[e]]
    for e in last.out_elems:
        assert graph.groups[graph.elem_group[e]].frozen[graph.elem_comp[e]]


class _Flip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.flip(self.a(x), dims=[1]))


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gate = _Gate()
        self.a = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.a(x))


class _Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:
            return x
        return -x


def test_unknown_op_error_names_op_and_node() -> None:
    with pytest.raises(UnsupportedOpError, match=r"cannot prune through torch\.flip on node 'flip'"):
        trace_channels(_Flip(), (2, 3, 8, 8))


def test_untraceable_control_flow_names_module_and_line() -> None:
    with pytest.raises(UserInputError, match=r"module 'gate' \(_Gate\).*if x.mean\(\) > 0"):
        trace_channels(_Branchy(), (2, 3, 8, 8))


class _ChannelCount(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        y = F.interpolate(y, size=y.shape[-2:]) / y.size(1)  # spatial sizes are fine, the channel count is not
        return self.b(y)


def test_using_the_channel_count_is_an_error() -> None:
    with pytest.raises(UnsupportedOpError, match="channel count"):
        trace_channels(_ChannelCount(), (2, 3, 8, 8))
