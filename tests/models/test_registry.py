"""Every registered model builds at each supported scale, runs forward/backward, keeps its shape."""
from __future__ import annotations

import pytest
import torch

from edgesr.errors import UnknownModelError, UserInputError
from edgesr.models import create_model, get_model_entry, list_models, list_pretrained

# Small hyper-parameters so the whole registry trains a step in seconds. Keys not accepted by a
# builder are simply not listed for it.
TINY: dict[str, dict] = {
    "rlfn": {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4},
    "rlfn_s": {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4},
    "rlfn_ntire": {"feature_channels": 8, "mid_channels": 12, "num_blocks": 1, "esa_channels": 4},
    "rfdn": {"nf": 8, "num_modules": 2},
    "imdn": {"nc": 16, "nb": 1},
}

CASES = [(name, s) for name in list_models() for s in get_model_entry(name).scales]


def _tiny_cfg(name: str) -> dict:
    if name in TINY:
        return TINY[name]
    cfg = getattr(get_model_entry(name).builder, "tiny_cfg", None)
    return dict(cfg) if cfg else {}


@pytest.mark.parametrize("name,scale", CASES, ids=[f"{n}-x{s}" for n, s in CASES])
def test_forward_backward_shape(name: str, scale: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, scale=scale, **_tiny_cfg(name))
    assert model.scale == scale and model.edgesr_name == name
    x = torch.rand(2, 3, 19, 23)
    y = model(x)
    assert y.shape == (2, 3, 19 * scale, 23 * scale)
    loss = (y - torch.rand_like(y)).abs().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_expected_models_registered() -> None:
    names = set(list_models())
    for required in ("rlfn", "rlfn_s", "rlfn_ntire", "rfdn", "imdn", "edsr", "edsr_baseline", "rcan", "rdn", "drn",
                     "span", "span_rep", "efdn", "efdn_rep"):
        assert required in names
    assert {v.name for v in list_pretrained()} >= {"rlfn_x4", "rlfn_x2", "rlfn_s_x4", "rlfn_s_x2",
                                                     "rlfn_ntire_x4", "rfdn_x4", "imdn_x4", "span_ch28_x4",
                                                     "efdn_x4"}


@pytest.mark.parametrize("name,params,cfg", [("rlfn", 543_740, {}), ("rlfn_s", 470_208, {}),
                                             ("rlfn_ntire", 317_218, {}), ("rfdn", 433_448, {}),
                                             ("imdn", 893_936, {}), ("span", 150_688, {"feature_channels": 28}),
                                             ("efdn", 276_192, {})])
def test_official_param_counts(name: str, params: int, cfg: dict) -> None:
    model = create_model(name, scale=4, **cfg)
    assert sum(p.numel() for p in model.parameters()) == params


def test_pretrained_metadata_is_complete() -> None:
    for cfg in list_pretrained():
        # the local file name may differ from the upstream one (SPAN: team38_span_ch28_slim.pth)
        assert cfg.url and cfg.url.startswith("https://") and cfg.url.endswith((".pth", ".safetensors"))
        assert cfg.sha256 and len(cfg.sha256) == 64
        assert cfg.input_range in (1.0, 255.0)
        assert cfg.input_range == get_model_entry(cfg.model).input_range
        assert "Set5" in cfg.expected and cfg.scale in get_model_entry(cfg.model).scales


def test_unknown_model_suggests_names() -> None:
    with pytest.raises(UnknownModelError, match="Did you mean: rlfn"):
        create_model("rlnf")


def test_unsupported_scale_lists_choices() -> None:
    with pytest.raises(UserInputError, match="supported scales: 2, 3, 4"):
        create_model("rlfn", scale=8)


def test_variant_name_implies_scale_and_rejects_conflict() -> None:
    entry = get_model_entry("rlfn_x2")
    assert entry.name == "rlfn"
    with pytest.raises(UserInputError, match="x2 model"):
        create_model("rlfn_x2", scale=4)


def test_no_official_weights_for_scale() -> None:
    with pytest.raises(UserInputError, match="no official weights for rlfn x3"):
        create_model("rlfn", scale=3, pretrained=True)


def test_import_does_not_load_heavy_backends() -> None:
    import subprocess
    import sys

    code = ("import sys, edgesr, edgesr.models; "
            "bad=[m for m in ('tensorrt','openvino','ncnn','executorch','onnxruntime','matplotlib') if m in sys.modules]; "
            "import torch; assert not torch.cuda.is_initialized(); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
