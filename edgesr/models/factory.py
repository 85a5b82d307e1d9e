"""`create_model`: build a registered architecture and, if asked, load its weights; `load_model`: build
whatever architecture a checkpoint holds (detected from its key names and shapes) and load it.

The one place that joins the registry (plain data), the weight loaders (`weights`), the weight finder
(`hub`) and checkpoint detection (`detect`), so none of those needs to import another one back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from edgesr.errors import UserInputError, WeightsError
from edgesr.models.detect import Detection, detect_architecture, explain_mismatch, scale_contradiction
from edgesr.models.hub import resolve_weights
from edgesr.models.registry import PretrainedCfg, get_pretrained_cfg, resolve_name_and_scale, scale_of_weights
from edgesr.models.weights import load_state_dict_strict, load_weights, read_checkpoint
from edgesr.models.widths import resize_convs

__all__ = ["build_detected", "create_model", "load_model"]


def create_model(name: str, scale: int | None = None, pretrained: bool | str | Path = False,
                 **cfg: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: model name (`list_models()`) or a pretrained variant name such as ``rlfn_x4``.
        scale: upscaling factor; defaults to the variant's scale, else 4.
        pretrained: False (random init), True (the official weights for this scale), a variant
            name, or a path to a checkpoint. Loading is strict.
        **cfg: architecture hyper-parameters overriding the registered defaults.

    The returned module takes and returns float RGB in 0..1 (NCHW); `model.scale`,
    `model.edgesr_name`, `model.edgesr_config` (the builder overrides, so the model can be rebuilt)
    and `model.pretrained_cfg` describe it.
    """
    entry, scale, implied = resolve_name_and_scale(name, scale_of_weights(scale, pretrained))
    if implied is not None and pretrained is False:
        pretrained = True
    variant: PretrainedCfg | None = None
    if pretrained is True:
        variant = implied or entry.variant_for_scale(scale)
        if variant is None:
            have = ", ".join(f"{c.name} (x{c.scale})" for c in entry.pretrained) or "none"
            raise UserInputError(
                f"no official weights for {entry.name} x{scale}; available: {have}. "
                "Pass a checkpoint path with --weights instead."
            )
    elif isinstance(pretrained, str) and not Path(pretrained).suffix:
        variant = get_pretrained_cfg(pretrained)
        if variant.model != entry.name:
            raise UserInputError(f"weights {variant.name} belong to model {variant.model}, not {entry.name}.")
        if variant.scale != scale:
            raise UserInputError(f"weights {variant.name} are x{variant.scale}, but scale {scale} was asked for.")
    build_cfg = dict(variant.config) if variant else {}
    build_cfg.update(cfg)
    try:
        model = entry.builder(scale=scale, **build_cfg)
    except TypeError as exc:
        raise UserInputError(f"bad configuration for {entry.name}: {exc}") from exc
    model.scale = scale
    model.edgesr_name = entry.name
    model.edgesr_config = dict(build_cfg)
    model.pretrained_cfg = variant
    if pretrained is not False:
        source = variant.name if variant is not None else str(pretrained)
        load_weights(model, source, model_name=entry.name, scale=scale, variant=variant, explain=explain_mismatch)
    return model


def build_detected(detection: Detection) -> nn.Module:
    """A model of the detected architecture (random init; a pruned model's layers at their widths)."""
    model = create_model(detection.model, scale=detection.scale, **detection.config)
    resize_convs(model, detection.layers)
    model.edgesr_detection = detection
    return model


def load_model(weights: str | Path, scale: int | None = None) -> nn.Module:
    """The model a checkpoint holds, built and loaded strictly: no model name needed.

    Args:
        weights: a ``.safetensors`` / ``.pth`` file (a plain, BasicSR ``params`` / ``params_ema`` or
            ``module.``-prefixed state_dict), or a pretrained name such as ``rlfn_x4``.
        scale: the expected scale; an error if the weights are of another one.

    The architecture, scale and hyper-parameters (and a pruned model's per-layer widths) are read from the
    weights' key names and shapes (`edgesr.models.detect`); ``model.edgesr_detection`` says what was found.
    """
    path = resolve_weights(weights)
    sd = read_checkpoint(path)
    found = detect_architecture(sd, source=str(path))
    if scale is not None and scale != found.scale:
        raise WeightsError(scale_contradiction(str(path), found, scale))
    model = build_detected(found)
    load_state_dict_strict(model, sd, model_name=found.model, scale=found.scale, source=str(path))
    model.weights_path = str(path)
    return model
