"""Safe, strict checkpoint reading, writing and loading, with errors that say what went wrong and what fits.

Checkpoints are untrusted: ``.safetensors`` files are read with safetensors (header and sizes checked, no
code), anything else with `torch.load(weights_only=True)` only, so no code in a file is ever executed.
edgesr writes weights as safetensors (`save_state_dict`); ``.pth`` is still read and, on request, written.
"""
from __future__ import annotations

import logging
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from edgesr.errors import MissingDependencyError, NonFiniteError, WeightsError
from edgesr.models.hub import resolve_weights
from edgesr.models.registry import PretrainedCfg

log = logging.getLogger(__name__)

_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model", "net", "generator")

SAFETENSORS_SUFFIX = ".safetensors"


def is_safetensors(path: str | Path) -> bool:
    return Path(path).suffix.lower() == SAFETENSORS_SUFFIX


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise MissingDependencyError(f"{path} is a safetensors file, which needs the safetensors package: "
                                     "pip install safetensors.") from None

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise WeightsError(
            f"cannot read weights file {path}: it is not a valid safetensors file, probably truncated or an "
            f"incomplete download ({first}). Download or export it again."
        ) from exc


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint file (.safetensors, or a .pth/.pt state_dict) into a flat state_dict on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.stat().st_size == 0:
        raise WeightsError(f"cannot read weights file {path}: the file is empty (corrupt or an incomplete download).")
    if is_safetensors(path):
        return unwrap_state_dict(_read_safetensors(path), source=str(path))
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses anyway
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError) as exc:
        if _looks_like_safetensors(path):  # a safetensors file under another name: read it as what it is
            return unwrap_state_dict(_read_safetensors(path), source=str(path))
        if isinstance(exc, pickle.UnpicklingError):
            raise WeightsError(_refused_pickle_message(path, exc)) from None
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise WeightsError(
            f"cannot read weights file {path}: it is corrupt, truncated or not a PyTorch checkpoint "
            f"({type(exc).__name__}: {first}). Only plain state_dicts "
            "(tensors, loaded with weights_only=True) are accepted."
        ) from exc
    return unwrap_state_dict(obj, source=str(path))


_BLOCKED_GLOBAL = re.compile(r"(?:unsupported )?GLOBAL ([\w.]+)", re.IGNORECASE)


def _refused_pickle_message(path: Path, exc: pickle.UnpicklingError) -> str:
    """What weights_only loading refused, in full: the global the file wanted and that nothing ran."""
    text = str(exc)
    found = _BLOCKED_GLOBAL.search(text)
    if found:
        what = f"it references the Python global {found.group(1)!r}, which is not a tensor type"
    else:
        lines = [ln.strip() for ln in text.splitlines() if "Unsupported" in ln or "error:" in ln.lower()]
        detail = (lines[-1] if lines else text.strip().splitlines()[-1] if text.strip() else "")[:200]
        what = f"it is a pickle that safe loading cannot read, not a plain state_dict ({detail})"
    return (f"refused to load {path}: {what}. It was read with torch.load(weights_only=True), which blocked it: "
            "nothing in the file was executed. Only plain state_dicts of tensors are accepted; re-save the "
            "weights as a state_dict (torch.save(model.state_dict(), ...)) from a trusted source.")


def _looks_like_safetensors(path: Path) -> bool:
    """A safetensors file: 8-byte little-endian header length, then a JSON header."""
    if path.suffix.lower() == ".safetensors":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < (1 << 30)


def save_state_dict(path: str | Path, state: nn.Module | Mapping[str, torch.Tensor], *, force: bool = False,
                    metadata: Mapping[str, str] | None = None) -> Path:
    """Write a module's (or a state_dict's) tensors atomically: safetensors for a ``.safetensors`` path,
    else a plain `torch.save` state_dict. Tensors are copied to contiguous CPU memory first (safetensors
    refuses views that share storage)."""
    from edgesr.utils.atomic import atomic_path

    sd = state.state_dict() if isinstance(state, nn.Module) else state
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
    with atomic_path(path, force=force) as tmp:
        if is_safetensors(path):
            from safetensors.torch import save_file

            save_file(tensors, str(tmp), metadata=dict(metadata or {}) or None)
        else:
            torch.save(tensors, tmp)
    return Path(path)


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Strip BasicSR/Lightning-style wrappers and DataParallel `module.` prefixes."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                log.debug("using the %r entry of %s", key, source)
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{source} holds no state_dict (found {type(obj).__name__}).")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{source} holds no tensors.")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return dict(tensors)


def remap_for_model(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Apply an architecture's own key remapping hook (`remap_state_dict`), if it has one."""
    hook = getattr(model, "remap_state_dict", None)
    return hook(state_dict) if callable(hook) else state_dict


def state_signature(module_or_sd: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    sd = module_or_sd.state_dict() if isinstance(module_or_sd, nn.Module) else module_or_sd
    return {k: tuple(v.shape) for k, v in sd.items()}


def _describe_mismatch(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> str:
    expected = state_signature(model)
    got = state_signature(sd)
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])

    def show(keys: list[str], fmt=lambda k: k) -> str:
        head = ", ".join(fmt(k) for k in keys[:6])
        return head + (f", ... ({len(keys)} in all)" if len(keys) > 6 else "")

    parts = []
    if missing:
        parts.append(f"missing keys: {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {show(unexpected)}")
    if wrong_shape:
        parts.append("shape mismatches: " + show(wrong_shape, lambda k: f"{k} {got[k]} vs model {expected[k]}"))
    return "; ".join(parts)


#: Explains why a state_dict does not fit a model: ``explain(model, state_dict, model_name, scale, source)``.
MismatchExplainer = Callable[[nn.Module, Mapping[str, torch.Tensor], str, "int | None", str], str]


def describe_mismatch(model: nn.Module, sd: Mapping[str, torch.Tensor], model_name: str, scale: int | None,
                      source: str) -> str:
    """'<source> does not match <model>: missing keys ...; unexpected keys ...; shape mismatches ...'."""
    what = f"{model_name} x{scale}" if scale else model_name
    return f"{source} does not match {what}: {_describe_mismatch(model, sd)}."


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *,
                           model_name: str, scale: int | None = None, source: str = "checkpoint",
                           explain: MismatchExplainer = describe_mismatch) -> None:
    """`load_state_dict(strict=True)` whose error says what differs (`explain` may say more: the factory
    passes one that names the architecture the weights are)."""
    sd = remap_for_model(model, dict(state_dict))
    if state_signature(model) != state_signature(sd):
        raise WeightsError(explain(model, sd, model_name, scale, source))
    check_finite_state_dict(sd, source)
    model.load_state_dict(sd, strict=True)


def check_finite_state_dict(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise NonFiniteError naming the first tensor holding NaN/Inf: such weights turn every image black."""
    for key, value in state_dict.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int(value.numel() - torch.isfinite(value).sum())
            raise NonFiniteError(f"{source} holds NaN/Inf values: tensor {key!r} has {bad:,} of {value.numel():,} "
                                 "non-finite; refusing to load it (the file is corrupt or training diverged).")


def load_weights(model: nn.Module, source: str | Path, *, model_name: str, scale: int | None = None,
                 variant: PretrainedCfg | None = None, explain: MismatchExplainer = describe_mismatch) -> nn.Module:
    """Resolve `source` (path, variant name) to a verified local file and load it strictly."""
    path = resolve_weights(source, variant)
    sd = read_checkpoint(path)
    load_state_dict_strict(model, sd, model_name=model_name, scale=scale, source=str(path), explain=explain)
    model.weights_path = str(path)
    log.info("loaded %s into %s", path, model_name)
    return model
