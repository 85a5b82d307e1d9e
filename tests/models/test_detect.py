"""Checkpoint auto-detection: every registered model x scale round-trips through a weights file, the official
checkpoints are recognised as their variants, wrapped / prefixed / pruned layouts are detected, and weights that
fit nothing (or fit another form or scale) get a one-line error that says why."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgesr.errors import WeightsError
from edgesr.models import create_model, detect_architecture, get_model_entry, list_models, list_pretrained, load_model
from edgesr.models.weights import read_checkpoint, save_state_dict

# Registered defaults where they are small; the big ones shrink, keeping what detection must read back.
SMALL: dict[str, dict] = {
    "edsr": {"n_resblocks": 1},  # 256 features kept: res_scale 0.1 is implied by the width
    "rcan": dict(get_model_entry("rcan").builder.tiny_cfg),
    "rdn": dict(get_model_entry("rdn").builder.tiny_cfg),
}
CASES = [(name, s) for name in list_models() for s in get_model_entry(name).scales]


def _input(model: torch.nn.Module) -> torch.Tensor:
    side = max(16, int(getattr(model, "min_input_size", 1) or 1))
    return torch.rand(1, 3, side, side + 3, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name,scale", CASES, ids=[f"{n}-x{s}" for n, s in CASES])
def test_round_trip_build_save_detect(name: str, scale: int, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = SMALL.get(name, {})
    model = create_model(name, scale=scale, **cfg).eval()
    path = save_state_dict(tmp_path / f"{name}_x{scale}.safetensors", model)
    loaded = load_model(path).eval()
    found = loaded.edgesr_detection
    assert (found.model, found.scale, found.config, found.layers) == (name, scale, cfg, {})
    assert (loaded.edgesr_name, loaded.scale) == (name, scale)
    x = _input(model)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("variant", list_pretrained(), ids=lambda v: v.name)
def test_official_checkpoints_are_detected_as_their_variant(variant, weights_dir: Path) -> None:
    path = weights_dir / variant.filename
    if not path.is_file():
        pytest.fail(f"{path} is missing from the shared weights")
    found = detect_architecture(read_checkpoint(path), source=str(path))
    assert (found.model, found.scale, found.config, found.layers) == (variant.model, variant.scale,
                                                                      dict(variant.config), {})


def test_every_shared_checkpoint_is_a_registered_variant(weights_dir: Path) -> None:
    by_file = {v.filename: v for v in list_pretrained()}
    files = sorted(p.name for p in weights_dir.glob("*.pth"))
    unknown = [f for f in files if f not in by_file]
    assert not unknown, f"shared checkpoints that no registered variant names: {unknown}"
    detected = {f: detect_architecture(read_checkpoint(weights_dir / f)) for f in files}
    assert len(files) == 9  # the official checkpoints in shared/weights
    assert {f: (d.model, d.scale) for f, d in detected.items()} == {
        f: (by_file[f].model, by_file[f].scale) for f in files}


@pytest.fixture(scope="session")
def rlfn_x4_sd(weights_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(weights_dir / "rlfn_x4.pth")


@pytest.mark.parametrize("layout", ["params_ema", "params", "module", "params_ema+module"])
def test_basicsr_wrappers_and_module_prefix(layout: str, rlfn_x4_sd, tmp_path: Path) -> None:
    sd = dict(rlfn_x4_sd)
    if "module" in layout:
        sd = {f"module.{k}": v for k, v in sd.items()}
    if layout.startswith("params_ema"):  # BasicSR keeps both; the EMA weights are the ones to use
        obj = {"params": {k: torch.zeros_like(v) for k, v in sd.items()}, "params_ema": sd}
    elif layout == "params":
        obj = {"params": sd}
    else:
        obj = sd
    path = tmp_path / "net_g_latest.pth"
    torch.save(obj, path)
    model = load_model(path)
    assert (model.edgesr_name, model.scale, model.edgesr_config) == ("rlfn", 4, {})
    for k, v in model.state_dict().items():
        assert torch.equal(v, rlfn_x4_sd[k])


def test_training_form_is_detected_as_such(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("rlfn_rep", scale=2, feature_channels=16, num_blocks=2, esa_channels=8,
                         expand_ratio=1).eval()
    found = detect_architecture(model.state_dict())
    assert (found.model, found.scale) == ("rlfn_rep", 2)
    assert found.config == {"feature_channels": 16, "num_blocks": 2, "esa_channels": 8, "expand_ratio": 1}
    model.reparameterize()  # folded: plain RLFN's keys, so plain RLFN
    folded = detect_architecture(model.state_dict())
    assert (folded.model, folded.scale, folded.config) == ("rlfn", 2, {"feature_channels": 16, "num_blocks": 2,
                                                                      "esa_channels": 8})


@pytest.fixture(scope="session")
def pruned_rlfn(tmp_path_factory) -> Path:
    """A real `edgesr prune` artifact (config.json + weights.safetensors) of a small RLFN."""
    from edgesr.prune import fisher_prune, save_pruned

    torch.manual_seed(0)
    cfg = {"feature_channels": 12, "num_blocks": 2, "esa_channels": 8}
    model = create_model("rlfn", scale=2, **cfg)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.rand(2, 3, 16, 16, generator=gen) for _ in range(4)]
    result = fisher_prune(model, None, batches, "params=0.8", prune_every=1, round_to=2, base_config=cfg, steps=3,
                          progress=False)
    return save_pruned(tmp_path_factory.mktemp("pruned") / "rlfn_pruned", result.model, result.config)


def test_pruned_weights_are_detected_with_their_widths(pruned_rlfn: Path) -> None:
    from edgesr.prune import load_pruned
    from edgesr.prune.slicing import WEIGHTS_NAME

    reference = load_pruned(pruned_rlfn)
    assert (pruned_rlfn / WEIGHTS_NAME).suffix == ".safetensors"
    model = load_model(pruned_rlfn / WEIGHTS_NAME).eval()  # the weights alone, no config.json
    found = model.edgesr_detection
    assert found.pruned and (found.model, found.scale) == ("rlfn", 2)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    for path, spec in reference.pruned_config.layers.items():  # every resized conv has the recorded widths
        conv = model.get_submodule(path)
        assert (conv.in_channels, conv.out_channels, conv.groups) == \
            (spec["in_channels"], spec["out_channels"], spec["groups"])
    x = torch.rand(1, 3, 17, 19)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_truncated_safetensors_is_a_clear_error(rlfn_x4_sd, tmp_path: Path) -> None:
    good = save_state_dict(tmp_path / "rlfn.safetensors", rlfn_x4_sd)
    data = good.read_bytes()
    for cut in (len(data) // 2, 6):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(WeightsError, match="not a valid safetensors file, probably truncated"):
            read_checkpoint(bad)


def test_unknown_architecture_names_the_closest_and_the_first_misfit(rlfn_x4_sd) -> None:
    sd = dict(rlfn_x4_sd)
    sd["block_1.extra.weight"] = torch.zeros(4, 52, 1, 1)  # an RLFN someone added a layer to
    with pytest.raises(WeightsError) as err:
        detect_architecture(sd, source="mine.pth")
    msg = str(err.value)
    assert "mine.pth is not a checkpoint of any registered architecture" in msg
    assert "Closest: rlfn," in msg and "block_1.extra.weight (4, 52, 1, 1), which the model lacks" in msg
    alien = {"encoder.0.weight": torch.zeros(8, 3, 3, 3), "decoder.weight": torch.zeros(3, 8, 3, 3)}
    with pytest.raises(WeightsError, match="no registered architecture has any of its key names. Closest by "
                                           r"tensor shapes: \w+"):
        detect_architecture(alien)


def test_deploy_weights_into_a_training_form_model(weights_dir: Path) -> None:
    with pytest.raises(WeightsError, match="holds deploy-form .folded. weights, but rlfn_rep x4 was built in its "
                                           "training-time form. Use the deploy form .* or fold the training model"):
        create_model("rlfn_rep", scale=4, pretrained=str(weights_dir / "rlfn_x4.pth"))


def test_scale_that_contradicts_the_weights(weights_dir: Path) -> None:
    path = weights_dir / "rlfn_x4.pth"
    for attempt in (lambda: create_model("rlfn", scale=2, pretrained=str(path)),
                    lambda: load_model(path, scale=2)):
        with pytest.raises(WeightsError, match=r"holds x4 weights \(rlfn x4\), but scale 2 was asked for. Drop "
                                               "--scale"):
            attempt()
