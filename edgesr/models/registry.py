"""Model registry: one entry point, `create_model`, over every registered architecture.

Architectures register a small builder with `@register_model(...)`; pretrained variants are
typed `PretrainedCfg` records. A variant name (e.g. ``rlfn_x4``) can stand in for a model
name and implies its scale and weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from torch import nn

from edgesr.errors import UnknownModelError, UserInputError, suggest


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a variant's official weights come from and what they are known to score.

    `expected` maps a dataset name to (PSNR, SSIM) on the Y channel with crop = scale,
    as computed by the official code on the data in shared/ (see models/*.md cards).
    """

    name: str
    model: str
    scale: int
    filename: str
    url: str | None
    sha256: str | None
    input_range: float
    expected: dict[str, tuple[float, float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    source: str = ""
    paper: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: builder, supported scales and pretrained variants."""

    name: str
    builder: Callable[..., nn.Module]
    scales: tuple[int, ...]
    description: str
    input_range: float
    pretrained: tuple[PretrainedCfg, ...] = ()
    paper: str = ""

    def variant_for_scale(self, scale: int) -> PretrainedCfg | None:
        for cfg in self.pretrained:
            if cfg.scale == scale:
                return cfg
        return None


_MODELS: dict[str, ModelEntry] = {}
_VARIANTS: dict[str, PretrainedCfg] = {}


def register_model(name: str, *, scales: Iterable[int], description: str, input_range: float = 1.0,
                   pretrained: Iterable[PretrainedCfg] = (), paper: str = "") -> Callable:
    """Decorator registering `builder(scale=..., **cfg) -> nn.Module` under `name`."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        variants = tuple(pretrained)
        for cfg in variants:
            if cfg.model != name:
                raise ValueError(f"variant {cfg.name} names model {cfg.model}, registered under {name}")
            if cfg.name in _VARIANTS or cfg.name in _MODELS:
                raise ValueError(f"variant name {cfg.name!r} is taken")
            _VARIANTS[cfg.name] = cfg
        _MODELS[name] = ModelEntry(name, builder, tuple(scales), description, float(input_range),
                                   variants, paper)
        return builder

    return wrap


def list_models(pretrained_only: bool = False) -> list[str]:
    """Registered model names (sorted)."""
    return sorted(n for n, e in _MODELS.items() if e.pretrained or not pretrained_only)


def list_pretrained() -> list[PretrainedCfg]:
    return [_VARIANTS[k] for k in sorted(_VARIANTS)]


def get_model_entry(name: str) -> ModelEntry:
    """Look up a model by name or by one of its pretrained variant names."""
    key = name.strip().lower().replace("-", "_")
    if key in _MODELS:
        return _MODELS[key]
    if key in _VARIANTS:
        return _MODELS[_VARIANTS[key].model]
    choices = list(_MODELS) + list(_VARIANTS)
    raise UnknownModelError(
        f"unknown model {name!r}.{suggest(key, choices)} Registered models: {', '.join(sorted(_MODELS))}."
    )


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """A pretrained variant by its name (e.g. 'rlfn_x4') or its file name (e.g. 'rlfn_x4.pth')."""
    key = name.strip().lower().replace("-", "_")
    if key in _VARIANTS:
        return _VARIANTS[key]
    for cfg in _VARIANTS.values():
        if name.strip().lower() in (cfg.filename.lower(), Path(cfg.filename).stem.lower()):
            return cfg
    raise UnknownModelError(
        f"unknown pretrained weights {name!r}.{suggest(key, list(_VARIANTS))} "
        f"Known: {', '.join(sorted(_VARIANTS))}, or pass a path to a .pth file."
    )


def resolve_name_and_scale(name: str, scale: int | None) -> tuple[ModelEntry, int, PretrainedCfg | None]:
    """Return (entry, scale, implied variant). A variant name implies its scale."""
    entry = get_model_entry(name)
    key = name.strip().lower().replace("-", "_")
    implied = _VARIANTS.get(key)
    if implied is not None:
        if scale is not None and scale != implied.scale:
            raise UserInputError(f"{implied.name} is a x{implied.scale} model, but scale {scale} was asked for.")
        scale = implied.scale
    if scale is None:
        scale = 4 if 4 in entry.scales else entry.scales[0]
    if scale not in entry.scales:
        raise UserInputError(
            f"{entry.name} does not support scale {scale}; supported scales: "
            f"{', '.join(str(s) for s in entry.scales)}."
        )
    return entry, scale, implied


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
    entry, scale, implied = resolve_name_and_scale(name, scale)
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
        from edgesr.models.weights import load_weights

        source = variant.name if variant is not None else str(pretrained)
        load_weights(model, source, model_name=entry.name, scale=scale, variant=variant)
    return model
