"""Model registry: plain data about every registered architecture and its pretrained variants.

Architectures register a small builder with `@register_model(...)`; pretrained variants are
typed `PretrainedCfg` records. A variant name (e.g. ``rlfn_x4``) can stand in for a model
name and implies its scale and weights. Building a model (and loading its weights) is
`edgesr.models.factory.create_model`'s job: this module imports neither torch nor the weight
loaders, so the loaders can look models up here without an import cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from edgesr.errors import UnknownModelError, UserInputError, suggest

if TYPE_CHECKING:
    from torch import nn


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


def model_entries() -> Iterator[ModelEntry]:
    """Every registered architecture, by name."""
    for name in sorted(_MODELS):
        yield _MODELS[name]


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


def scale_of_weights(scale: int | None, weights: object) -> int | None:
    """`scale` when given, else the scale of the named pretrained `weights` (e.g. ``rlfn_x2`` -> 2), else None:
    weights named without --scale decide it."""
    if scale is not None or not isinstance(weights, str) or Path(weights).suffix:
        return scale
    try:
        return get_pretrained_cfg(weights).scale
    except UnknownModelError:
        return None
