"""Checkpoint auto-detection: which registered architecture, scale and hyper-parameters a state_dict is.

Each model family declares, beside its model file, how to read its configuration from key names and
shapes (`register_detector`). A detector proposes `Candidate`s (model name, scale, `create_model` keyword
arguments, fewest overrides first); `detect_architecture` builds each proposal on the meta device and keeps
the first whose state_dict keys and shapes equal the checkpoint's exactly. So a detector may guess: it is
never trusted, only checked.

When nothing matches exactly, a checkpoint with exactly a candidate's keys whose only differences are
the channel counts of plain convolutions is an edgesr-pruned model: the detection then carries the
per-layer widths (`Detection.layers`, the shape part of a pruned-model config). Anything else gets an
error naming the closest registered architectures and the first key/shape that did not fit.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
from torch import nn

from edgesr.errors import WeightsError
from edgesr.models.registry import get_model_entry, list_models
from edgesr.models.weights import describe_mismatch, state_signature, unwrap_state_dict

__all__ = ["Candidate", "Detection", "Shapes", "detect_architecture", "explain_mismatch", "list_detectors",
           "overrides", "pixel_shuffle_scale", "ranked", "register_detector", "scale_contradiction"]

Signature = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Candidate:
    """A guess: ``create_model(model, scale=scale, **config)`` may have these weights."""

    model: str
    scale: int
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Detection:
    """What a checkpoint is. `layers` is non-empty for an edgesr-pruned model: module path ->
    ``{"type": "Conv2d", "in_channels", "out_channels", "groups"}`` applied after building."""

    model: str
    scale: int
    config: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def pruned(self) -> bool:
        return bool(self.layers)

    def describe(self) -> str:
        text = f"{self.model} x{self.scale}"
        if self.config:
            text += " (" + ", ".join(f"{k}={v}" for k, v in self.config.items()) + ")"
        if self.layers:
            text += f", pruned: {len(self.layers)} layer(s) resized"
        return text


class Shapes(Mapping[str, tuple[int, ...]]):
    """A checkpoint's key -> shape map, with the look-ups detectors need."""

    def __init__(self, signature: Mapping[str, tuple[int, ...]]) -> None:
        self._sig = dict(signature)

    def __getitem__(self, key: str) -> tuple[int, ...]:
        return self._sig[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sig)

    def __len__(self) -> int:
        return len(self._sig)

    def dim(self, key: str, axis: int) -> int | None:
        """Size of `axis` of `key`'s tensor; None if the key is absent or has fewer dims."""
        shape = self._sig.get(key)
        return shape[axis] if shape is not None and len(shape) > axis else None

    def count(self, pattern: str, start: int = 0) -> int:
        """How many consecutive indices i = start, start+1, ... make ``pattern.format(i)`` a key."""
        n = 0
        while pattern.format(start + n) in self._sig:
            n += 1
        return n

    def indices(self, regex: str) -> list[int]:
        """Sorted distinct integers captured by `regex` (one group, full match) over the keys."""
        rx = re.compile(regex)
        return sorted({int(m.group(1)) for k in self._sig if (m := rx.fullmatch(k))})


Detector = Callable[[Shapes], Iterable[Candidate]]
_DETECTORS: dict[str, Detector] = {}


def register_detector(family: str) -> Callable[[Detector], Detector]:
    """Decorator: `fn(shapes) -> candidates` proposes configurations of the models in `family`."""

    def wrap(fn: Detector) -> Detector:
        if family in _DETECTORS:
            raise ValueError(f"detector {family!r} registered twice")
        _DETECTORS[family] = fn
        return fn

    return wrap


def list_detectors() -> list[str]:
    return list(_DETECTORS)


def overrides(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `config` that differ from a builder's `defaults` (what `create_model` needs)."""
    return {k: v for k, v in config.items() if k not in defaults or defaults[k] != v}


def ranked(config: Mapping[str, Any], scale: int, defaults: Mapping[str, Mapping[str, Any]]) -> list[Candidate]:
    """One candidate per model name of a family, the one needing the fewest overrides first."""
    cands = [Candidate(name, scale, overrides(config, d)) for name, d in defaults.items()]
    return sorted(cands, key=lambda c: len(c.config))


def pixel_shuffle_scale(out_channels: int | None, per_pixel: int = 3) -> int | None:
    """r such that ``out_channels == per_pixel * r**2`` (a PixelShuffle(r) conv), else None."""
    if not out_channels or out_channels % per_pixel:
        return None
    r = math.isqrt(out_channels // per_pixel)
    return r if r > 1 and r * r * per_pixel == out_channels else None


# --------------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------------

def build_on_meta(candidate: Candidate) -> nn.Module | None:
    """The candidate's model with meta tensors (no memory, no init cost); None if it cannot be built."""
    try:
        entry = get_model_entry(candidate.model)
        if candidate.scale not in entry.scales:
            return None
        with torch.device("meta"):
            return entry.builder(scale=candidate.scale, **candidate.config)
    except Exception:  # noqa: BLE001 - a guess that does not build is simply not this checkpoint
        return None


def candidates_for(shapes: Shapes) -> list[Candidate]:
    """Every registered family's proposals, in registration order."""
    out: list[Candidate] = []
    for fn in _DETECTORS.values():
        try:
            out.extend(fn(shapes))
        except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
            continue  # a detector reading a checkpoint that is not of its family
    return out


def detect_architecture(state_dict: Mapping[str, Any], *, source: str = "checkpoint") -> Detection:
    """The registered model, scale and configuration whose state_dict these weights are.

    Accepts BasicSR ``params`` / ``params_ema`` wrappers and DataParallel ``module.`` prefixes. Raises
    WeightsError naming the closest registered architectures when nothing fits.
    """
    sig = state_signature(unwrap_state_dict(state_dict, source=source))
    shapes = Shapes(sig)
    candidates = candidates_for(shapes)
    built: list[tuple[Candidate, nn.Module]] = []
    for cand in candidates:
        model = build_on_meta(cand)
        if model is None:
            continue
        if state_signature(model) == sig:
            return Detection(cand.model, cand.scale, dict(cand.config))
        built.append((cand, model))
    pruned = _as_pruned(sig, built)
    if pruned is not None:
        return pruned
    raise WeightsError(unknown_message(sig, built, source))


def _as_pruned(sig: Signature, built: list[tuple[Candidate, nn.Module]]) -> Detection | None:
    """The candidate these weights are a channel-pruned copy of (same keys, plain convs resized)."""
    best: tuple[int, int, Detection] | None = None
    for order, (cand, model) in enumerate(built):
        if set(state_signature(model)) != set(sig):
            continue
        layers = conv_widths(model, sig)
        if layers is None:
            continue
        key = (len(layers), order)
        if best is None or key < best[:2]:
            best = (*key, Detection(cand.model, cand.scale, dict(cand.config), layers))
    return best[2] if best else None


def conv_widths(model: nn.Module, sig: Signature) -> dict[str, dict[str, Any]] | None:
    """Per-conv new widths turning `model`'s shapes into `sig`; None if anything else differs."""
    want = state_signature(model)
    changed = {k.rpartition(".")[0] for k in want if want[k] != sig[k]}
    modules = dict(model.named_modules())
    layers: dict[str, dict[str, Any]] = {}
    for path in sorted(changed):
        conv = modules.get(path)
        if type(conv) is not nn.Conv2d:
            return None
        shape = sig.get(f"{path}.weight")
        if shape is None or len(shape) != 4 or shape[2:] != tuple(conv.kernel_size):
            return None
        out_ch = shape[0]
        depthwise = conv.groups > 1 and conv.groups == conv.in_channels
        groups = out_ch if depthwise else conv.groups
        in_ch = shape[1] * groups
        if conv.bias is not None and sig.get(f"{path}.bias") != (out_ch,):
            return None
        layers[path] = {"type": "Conv2d", "in_channels": in_ch, "out_channels": out_ch, "groups": groups}
    return layers


def scale_contradiction(source: str, found: Detection, scale: int) -> str:
    return (f"{source} holds x{found.scale} weights ({found.describe()}), but scale {scale} was asked for. "
            f"Drop --scale (it is read from the weights) or pass --scale {found.scale}.")


def first_misfit(model_sig: Signature, sig: Signature) -> str:
    """The first key (in the model's order) whose presence or shape disagrees, as a phrase."""
    for key, shape in model_sig.items():
        if key not in sig:
            return f"the checkpoint lacks {key} {shape}"
        if sig[key] != shape:
            return f"{key} is {sig[key]} in the checkpoint but {shape} in the model"
    for key in sig:
        if key not in model_sig:
            return f"the checkpoint has {key} {sig[key]}, which the model lacks"
    return "nothing (they match)"


def _closeness(model_sig: Signature, sig: Signature) -> tuple[float, float]:
    """(key names and shapes in common, tensor shapes in common regardless of names), each 0..1."""
    from collections import Counter

    n = max(len(model_sig), len(sig), 1)
    same = sum(1 for k, s in model_sig.items() if sig.get(k) == s)
    names = len(set(model_sig) & set(sig))
    shapes = sum((Counter(model_sig.values()) & Counter(sig.values())).values())
    return (same + 0.5 * names) / n, shapes / n


def unknown_message(sig: Signature, built: list[tuple[Candidate, nn.Module]], source: str) -> str:
    """'<source> is no registered architecture; closest: ...; first misfit ...'."""
    pool = list(built)
    seen = {c.model for c, _ in built}
    for name in list_models():
        if name in seen:
            continue
        entry = get_model_entry(name)
        scale = 4 if 4 in entry.scales else entry.scales[0]
        model = build_on_meta(Candidate(name, scale))
        if model is not None:
            pool.append((Candidate(name, scale), model))
    scored = sorted(((_closeness(state_signature(m), sig), i, c, m) for i, (c, m) in enumerate(pool)),
                    key=lambda t: (-t[0][0], -t[0][1], t[1]))
    names: list[str] = []
    for _, _, cand, _ in scored:
        if cand.model not in names:
            names.append(cand.model)
        if len(names) == 3:
            break
    if not scored:
        return f"{source} matches no registered architecture."
    score, _, best, model = scored[0]
    first_key = next(iter(sig), "?")
    head = (f"{source} is not a checkpoint of any registered architecture ({len(sig)} tensors, first {first_key} "
            f"{sig.get(first_key)})")
    if score[0] == 0:
        return (f"{head}: no registered architecture has any of its key names. Closest by tensor shapes: "
                f"{', '.join(names)}; against {best.model} x{best.scale}, {first_misfit(state_signature(model), sig)}.")
    return (f"{head}. Closest: {', '.join(names)}; against {best.model} x{best.scale}"
            f"{' ' + str(best.config) if best.config else ''}, {first_misfit(state_signature(model), sig)}.")


def explain_mismatch(model: nn.Module, sd: Mapping[str, torch.Tensor], model_name: str, scale: int | None,
                     source: str) -> str:
    """Why `sd` does not load into `model`, led by the likeliest cause: folded weights for a training-time
    model, a scale that contradicts the weights, or another architecture (then: which one it is)."""
    what = f"{model_name} x{scale}" if scale else model_name
    if getattr(model, "deploy", None) is False:  # a training-time (re-parameterizable) model
        folded = build_on_meta(Candidate(model_name, scale or getattr(model, "scale", 4),
                                         {**getattr(model, "edgesr_config", {}), "deploy": True}))
        if folded is not None and state_signature(folded) == state_signature(sd):
            return (f"{source} holds deploy-form (folded) weights, but {what} was built in its training-time form. "
                    "Use the deploy form (the plain architecture: omit MODEL and edgesr detects it; in Python "
                    f"create_model('{model_name}', deploy=True)) or fold the training model first "
                    "(edgesr.transforms.reparameterize) and save its weights.")
    try:
        found = detect_architecture(sd, source=source)
    except WeightsError:
        found = None
    if found is not None and scale and found.scale != scale and found.model == model_name:
        return scale_contradiction(source, found, scale)
    hint = (f" These weights are {found.describe()}: pass that model, or omit MODEL and let edgesr detect it."
            if found is not None else " No registered model fits them.")
    return describe_mismatch(model, sd, model_name, scale, source) + hint
