"""Initial weights for training: strict loads, and EDSR's x2 -> x3/x4 initialisation.

EDSR (Lim et al., 2017, sec. 4.2) trains its x3/x4 models starting from the trained x2 model. The
upsampler depends on the scale, so it cannot come along: `load_init_weights(..., cross_scale=True)`
loads everything except the scale-specific upsampler strictly (missing, unexpected or mis-shaped keys
outside it are still errors) and reports which checkpoint tensors were skipped and which model tensors
keep their fresh initialisation. The upsampler is found, not named: the parameters whose presence or
shape changes across the architecture's supported scales, grouped under their common parent module
(``upsampler.0`` for RLFN, ``tail.0`` for EDSR, whose final ``tail.1`` conv is scale-independent and
so is loaded).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from edgesr.errors import UnknownModelError, WeightsError
from edgesr.models.registry import ModelEntry, get_pretrained_cfg
from edgesr.models.detect import explain_mismatch
from edgesr.models.weights import state_signature, load_state_dict_strict, read_checkpoint, remap_for_model

log = logging.getLogger(__name__)


@dataclass
class InitReport:
    """What `load_init_weights` did."""

    source: str
    mode: str  # "strict", "cross-scale" or "pruned" (a pruned-model folder: its architecture and weights)
    source_scale: int | None = None
    upsampler: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # checkpoint keys not loaded
    fresh: list[str] = field(default_factory=list)  # model keys left at their initialisation
    loaded: int = 0

    def summary(self) -> str:
        if self.mode == "strict":
            return f"initialised from {self.source} ({self.loaded} tensors, strict)"
        if self.mode == "pruned":
            return f"initialised from the pruned model {self.source} ({self.loaded} tensors, its own widths)"
        return (f"initialised from {self.source} (x{self.source_scale} weights): {self.loaded} tensors loaded, "
                f"scale-specific upsampler {', '.join(self.upsampler)} skipped "
                f"({len(self.skipped)} checkpoint tensors not used: {', '.join(self.skipped)}; "
                f"{len(self.fresh)} fresh: {', '.join(self.fresh)})")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resolve_init_source(source: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """A checkpoint path or a pretrained variant name -> (state_dict, path it came from)."""
    from edgesr.models.hub import resolve_weights

    text = str(source)
    path = Path(text)
    if path.suffix or path.exists() or "/" in text or "\\" in text:
        return read_checkpoint(path), str(path)
    try:
        variant = get_pretrained_cfg(text)
    except UnknownModelError as exc:
        raise WeightsError(f"--init {text!r}: no such file, and {exc}") from None
    path = resolve_weights(variant.name, variant)
    return read_checkpoint(path), str(path)


def _build_meta(entry: ModelEntry, scale: int, cfg: Mapping[str, Any]) -> nn.Module | None:
    try:
        with torch.device("meta"):
            return entry.builder(scale=scale, **cfg)
    except Exception:  # noqa: BLE001 - a scale the builder refuses only means "not comparable"
        return None


def _parent(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else ""


def _common_prefix(modules: list[str]) -> str:
    parts = [m.split(".") for m in modules]
    out: list[str] = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        out.append(level[0])
    return ".".join(out)


def scale_specific_modules(entry: ModelEntry, cfg: Mapping[str, Any]) -> tuple[list[str], dict[int, dict]]:
    """The module path(s) holding the scale-dependent parameters, and each scale's signature."""
    sigs: dict[int, dict] = {}
    for s in entry.scales:
        model = _build_meta(entry, s, cfg)
        if model is not None:
            sigs[s] = state_signature(model)
    differing: set[str] = set()
    scales = sorted(sigs)
    for a in scales:
        for b in scales:
            if a < b:
                sa, sb = sigs[a], sigs[b]
                differing |= {k for k in set(sa) | set(sb) if sa.get(k) != sb.get(k)}
    parents = sorted({_parent(k) for k in differing})
    if not parents:
        return [], sigs
    common = _common_prefix(parents)
    return ([common] if common else parents), sigs


def _under(key: str, modules: list[str]) -> bool:
    return any(key == m or key.startswith(m + ".") for m in modules)


def load_init_weights(model: nn.Module, source: str | Path, *, entry: ModelEntry, scale: int,
                      cfg: Mapping[str, Any] | None = None, cross_scale: bool = False) -> InitReport:
    """Load `source` into `model` (strictly), or with `cross_scale` from another scale of the same
    architecture skipping only the scale-specific upsampler. Raises WeightsError on any mismatch."""
    state, where = resolve_init_source(source)
    state = remap_for_model(model, dict(state))
    if state_signature(model) == state_signature(state):
        load_state_dict_strict(model, state, model_name=entry.name, scale=scale, source=where,
                               explain=explain_mismatch)
        return InitReport(source=where, mode="strict", source_scale=scale, loaded=len(state))
    if not cross_scale:
        try:
            load_state_dict_strict(model, state, model_name=entry.name, scale=scale, source=where,
                               explain=explain_mismatch)
        except WeightsError as exc:
            raise WeightsError(
                f"{exc} To start an x{scale} model from another scale's weights of {entry.name} "
                "(EDSR's x2 -> x4 initialisation, upsampler skipped), pass --init-cross-scale."
            ) from None
        raise AssertionError("unreachable: signatures differ but the strict load succeeded")  # pragma: no cover
    cfg = dict(cfg or {})
    upsampler, sigs = scale_specific_modules(entry, cfg)
    state_sig = state_signature(state)
    source_scale = next((s for s, sig in sigs.items() if sig == state_sig), None)
    if source_scale is None or not upsampler:
        try:
            load_state_dict_strict(model, state, model_name=entry.name, scale=scale, source=where,
                               explain=explain_mismatch)
        except WeightsError as exc:
            raise WeightsError(f"{exc} (--init-cross-scale needs weights of {entry.name} at another scale "
                               f"with the same configuration.)") from None
    own = model.state_dict()
    body = {k: v for k, v in state.items() if not _under(k, upsampler)}
    skipped = sorted(k for k in state if _under(k, upsampler))
    fresh = sorted(k for k in own if _under(k, upsampler))
    missing = sorted(k for k in own if not _under(k, upsampler) and k not in body)
    bad = sorted(k for k in body if k not in own or tuple(own[k].shape) != tuple(body[k].shape))
    if missing or bad:  # pragma: no cover - the signatures above make this a broken builder
        raise WeightsError(f"{where}: cannot initialise {entry.name} x{scale} outside the upsampler: "
                           f"missing {missing[:6]}, mismatched {bad[:6]}.")
    model.load_state_dict(body, strict=False)
    report = InitReport(source=where, mode="cross-scale", source_scale=source_scale, upsampler=upsampler,
                        skipped=skipped, fresh=fresh, loaded=len(body))
    log.info("%s", report.summary())
    return report
