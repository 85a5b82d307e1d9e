"""Physical slicing, the pruned-model artifact (JSON config + state_dict), rebuild, save and load.

The artifact is ``config.json`` (model name, scale, the `create_model` keyword arguments, and per
sliced layer its kept output/input channel indices and new widths) plus ``weights.safetensors`` (the sliced
state_dict; folders written before safetensors hold ``weights.pth`` and still load). `rebuild` builds the
registered model, replaces each recorded layer with one of the recorded shape (weights come only from the
state_dict) and loads strictly.
"""
from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch
from torch import nn

from edgesr.errors import OutputExistsError, UserInputError, WeightsError
from edgesr.models.widths import conv_like, set_module, set_split_sizes, split_config

if TYPE_CHECKING:
    from edgesr.prune.pruner import Pruner

log = logging.getLogger(__name__)

__all__ = ["CONFIG_NAME", "FORMAT", "WEIGHTS_NAME", "PrunedConfig", "load_pruned", "read_pruned_config", "rebuild",
           "resolve_base_config", "save_pruned", "slice_model"]

FORMAT = "edgesr.prune/1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.safetensors"
LEGACY_WEIGHTS_NAME = "weights.pth"


@dataclass
class PrunedConfig:
    """What `rebuild` needs besides the weights, plus a record of what pruning did.

    `base_config` holds the `create_model` keyword arguments, including the pruned sizes of channel splits
    that are config (IMDN's ``splits``: `edgesr.models.widths.ConfigSplits`).
    `layers` maps a module path to its new shape: for a Conv2d ``{"type": "Conv2d", "out": kept output
    indices, "in": kept input indices, "out_channels", "in_channels", "groups"}``; for a BatchNorm2d or
    PReLU ``{"type": ..., "keep": kept indices, "num_features" | "num_parameters"}``. Indices refer to
    the unpruned layer. `groups` maps a group name to its kept channel indices and widths;
    `complexity` holds params / flops (conv MACs) / acts before and after at `input_size`.
    """

    model: str
    scale: int
    base_config: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    complexity: dict[str, Any] = field(default_factory=dict)
    blocks_removed: list[str] = field(default_factory=list)  # residual blocks dropped, in order (old names)
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PrunedConfig":
        if not isinstance(data, Mapping):
            raise UserInputError(f"pruned-model config must be a JSON object, got {type(data).__name__}.")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise UserInputError(f"unsupported pruned-model config format {fmt!r} (this edgesr reads {FORMAT}).")
        for key in ("model", "scale", "layers"):
            if key not in data:
                raise UserInputError(f"pruned-model config lacks {key!r}.")
        return cls(model=str(data["model"]), scale=int(data["scale"]),
                   base_config=dict(data.get("base_config") or {}), layers=dict(data["layers"]),
                   groups=dict(data.get("groups") or {}), complexity=dict(data.get("complexity") or {}),
                   blocks_removed=list(data.get("blocks_removed") or []), format=fmt)


# --------------------------------------------------------------------------------------------------
# Which registered model is this?
# --------------------------------------------------------------------------------------------------

def resolve_base_config(model: nn.Module, base_config: Mapping[str, Any] | None = None) -> tuple[str, int, dict]:
    """(registry name, scale, create_model kwargs) that rebuild `model`'s unpruned architecture.

    `base_config` defaults to ``model.edgesr_config`` if the registry recorded it, else the pretrained
    variant's config, else {}. The guess is checked by building the architecture (on the meta device)
    and comparing every parameter shape; a mismatch asks for `base_config`.
    """
    from edgesr.models import create_model

    name = getattr(model, "edgesr_name", None)
    scale = getattr(model, "scale", None)
    if not name or not isinstance(scale, int):
        raise UserInputError("the model was not built by edgesr.create_model (no edgesr_name/scale), so its "
                             "pruned version could not be rebuilt; build it with create_model(name, scale, ...).")
    if base_config is None:
        base_config = getattr(model, "edgesr_config", None)
    if base_config is None:
        variant = getattr(model, "pretrained_cfg", None)
        base_config = dict(getattr(variant, "config", {}) or {})
    cfg = dict(base_config)
    try:
        json.dumps(cfg)
    except TypeError as exc:
        raise UserInputError(f"base_config must be JSON-serialisable: {exc}") from None
    try:
        with torch.device("meta"):
            fresh = create_model(name, scale=scale, **cfg)
    except Exception:  # noqa: BLE001 - a builder that cannot run on meta is checked for real
        fresh = create_model(name, scale=scale, **cfg)
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    if have != want:
        diff = sorted(set(have) ^ set(want)) or [k for k in have if have[k] != want.get(k)]
        k = diff[0]
        raise UserInputError(
            f"{name} x{scale} built with {cfg or 'its defaults'} does not match this model (first difference: "
            f"{k}: {want.get(k)} vs {have.get(k)}); pass base_config= with the keyword arguments that were "
            "given to create_model.")
    return name, scale, cfg


# --------------------------------------------------------------------------------------------------
# Slicing
# --------------------------------------------------------------------------------------------------


def _channelwise_like(old: nn.Module, n: int) -> nn.Module:
    if type(old) is nn.BatchNorm2d:
        ref = old.weight if old.weight is not None else old.running_mean
        kw = {"device": ref.device, "dtype": ref.dtype} if ref is not None else {}
        return nn.BatchNorm2d(n, old.eps, old.momentum, old.affine, old.track_running_stats, **kw)
    if type(old) is nn.PReLU:
        return nn.PReLU(n, device=old.weight.device, dtype=old.weight.dtype)
    raise UserInputError(f"cannot slice {type(old).__name__}.")


def _apply_layer(root: nn.Module, path: str, spec: Mapping[str, Any], weights: bool) -> None:
    old = root.get_submodule(path)
    kind = spec.get("type")
    if kind == "Conv2d":
        new = conv_like(old, int(spec["in_channels"]), int(spec["out_channels"]), int(spec["groups"]))
        if weights:
            out_idx = torch.as_tensor(spec["out"], dtype=torch.long, device=old.weight.device)
            in_idx = torch.as_tensor(spec["in"], dtype=torch.long, device=old.weight.device)
            w = old.weight.detach().index_select(0, out_idx)
            if old.groups == 1:
                w = w.index_select(1, in_idx)
            with torch.no_grad():
                new.weight.copy_(w)
                if old.bias is not None:
                    new.bias.copy_(old.bias.detach().index_select(0, out_idx))
            new.weight.requires_grad_(old.weight.requires_grad)
    elif kind in ("BatchNorm2d", "PReLU"):
        n = int(spec.get("num_features", spec.get("num_parameters", 0)))
        new = _channelwise_like(old, n)
        if weights:
            keep = torch.as_tensor(spec["keep"], dtype=torch.long)
            state = {k: (v.index_select(0, keep.to(v.device)) if v.dim() == 1 and v.shape[0] == len(_ch(old)) else v)
                     for k, v in old.state_dict().items()}
            new.load_state_dict(state)
    else:
        raise UserInputError(f"pruned-model config: unknown layer type {kind!r} at {path}.")
    new.train(old.training)
    set_module(root, path, new)


def _ch(module: nn.Module) -> range:
    n = getattr(module, "num_features", None) or getattr(module, "num_parameters", 0)
    return range(int(n))


def slice_model(model: nn.Module, pruner: "Pruner", base_config: Mapping[str, Any] | None = None
                ) -> tuple[nn.Module, PrunedConfig]:
    """Copy `model` with every layer touched by a removed channel replaced by a smaller one.

    For a model built by `create_model` the config can `rebuild` it; any other module is sliced all
    the same, but its config has no model name (save it with ``torch.save(module)``).
    """
    if getattr(model, "edgesr_name", None):
        name, scale, cfg = resolve_base_config(model, base_config)
    else:
        name, scale, cfg = "", 0, dict(base_config or {})
    keep = pruner.keep
    layers: dict[str, dict[str, Any]] = {}
    for path, (call, out_g, in_g) in pruner._modules.items():
        out_keep = keep[out_g]
        in_keep = keep[in_g] if len(in_g) else np.ones(call.in_channels, dtype=bool)
        if out_keep.all() and in_keep.all():
            continue
        if call.frozen:
            raise RuntimeError(f"internal error: frozen conv {path} lost channels")
        groups = int(in_keep.sum()) if call.depthwise else call.groups
        layers[path] = {"type": "Conv2d", "out": np.nonzero(out_keep)[0].tolist(),
                        "in": np.nonzero(in_keep)[0].tolist(), "out_channels": int(out_keep.sum()),
                        "in_channels": int(in_keep.sum()), "groups": groups}
    modules = dict(model.named_modules())
    for path, g in pruner._bn.items():
        k = keep[g]
        if k.all():
            continue
        key = "num_features" if isinstance(modules[path], nn.BatchNorm2d) else "num_parameters"
        layers[path] = {"type": type(modules[path]).__name__, "keep": np.nonzero(k)[0].tolist(), key: int(k.sum())}
    small = copy.deepcopy(model)
    hook_ids = {h.id for h in pruner._handles}
    for m in small.modules():  # the copy must not carry the pruner's mask hooks
        for hid in hook_ids:
            m._forward_pre_hooks.pop(hid, None)
    for path, spec in layers.items():
        _apply_layer(small, path, spec, weights=True)
    splits = _pruned_splits(pruner)
    set_split_sizes(small, splits)
    groups_info = {}
    for g in pruner.groups:
        kept = pruner.group_keep(g.index)
        if not g.is_frozen:
            groups_info[g.name] = {"width": int(g.width), "kept": int(kept.sum()),
                                   "keep": np.nonzero(kept)[0].tolist()}
    before = pruner.complexity(np.ones_like(keep))
    after = pruner.complexity()
    if splits:
        cfg = {**cfg, **split_config(model, splits)}
    config = PrunedConfig(model=name, scale=scale, base_config=cfg, layers=layers, groups=groups_info,
                          complexity={"input_size": list(pruner.graph.deploy_shape[2:]),
                                      "before": before, "after": after})
    small.pruned_config = config
    return small, config


def _pruned_splits(pruner: "Pruner") -> dict[str, list[list[int]]]:
    """Module path -> new sizes of each of its configurable splits (forward order); {} when none shrank.

    A piece keeps as many channels as its elements that stay (each element is one channel of the split
    tensor, and slicing keeps the kept channels in their order, so piece i stays piece i)."""
    per_module: dict[str, dict[int, list[int]]] = {}
    shrank = False
    for call in pruner.graph.split_calls:
        kept = [int(pruner.keep[pruner.gidx[np.asarray(piece, dtype=np.int64)]].sum()) for piece in call.pieces]
        shrank = shrank or kept != [len(piece) for piece in call.pieces]
        per_module.setdefault(call.module, {})[call.index] = kept
    if not shrank:
        return {}
    return {path: [sizes[i] for i in sorted(sizes)] for path, sizes in per_module.items()}


# --------------------------------------------------------------------------------------------------
# Rebuild / save / load
# --------------------------------------------------------------------------------------------------

def rebuild(config: PrunedConfig | Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """The pruned model from its config and state_dict (shapes from the config, weights from the state_dict)."""
    from edgesr.models import create_model

    if not isinstance(config, PrunedConfig):
        config = PrunedConfig.from_dict(config)
    if not config.model:
        raise UserInputError("this pruned config names no registered model, so it cannot be rebuilt; "
                             "prune models built with edgesr.create_model to get a rebuildable artifact.")
    model = create_model(config.model, scale=config.scale, **config.base_config)
    for path, spec in config.layers.items():
        try:
            model.get_submodule(path)
        except AttributeError:
            raise UserInputError(f"pruned-model config names layer {path!r}, which {config.model} does not have.") \
                from None
        _apply_layer(model, path, spec, weights=False)
    from edgesr.models.weights import check_finite_state_dict

    check_finite_state_dict(state_dict, f"the pruned {config.model} weights")
    try:
        model.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"pruned weights do not fit the pruned {config.model} config: {exc}") from None
    model.pruned_config = config
    return model.eval()


def save_pruned(path_dir: str | Path, model: nn.Module, config: PrunedConfig | Mapping[str, Any],
                force: bool = False) -> Path:
    """Write ``config.json`` and ``weights.safetensors`` into `path_dir` (each file atomically)."""
    from edgesr.models.weights import save_state_dict
    from edgesr.utils.atomic import write_text_atomic

    if not isinstance(config, PrunedConfig):
        config = PrunedConfig.from_dict(config)
    if not config.model:
        raise UserInputError("only pruned edgesr models (built with create_model) can be saved as config + "
                             "weights; use torch.save(module) for other modules.")
    folder = Path(path_dir)
    if folder.exists() and not folder.is_dir():
        raise UserInputError(f"{folder} exists and is not a folder.")
    targets = [folder / CONFIG_NAME, folder / WEIGHTS_NAME]
    if not force:
        for t in targets:
            if t.exists():
                raise OutputExistsError(f"{t} already exists; pass --force to overwrite it.")
    save_state_dict(targets[1], model, force=force, metadata={"format": FORMAT, "model": config.model,
                                                              "scale": str(config.scale)})
    write_text_atomic(targets[0], json.dumps(config.to_dict(), indent=1) + "\n", force=force)
    return folder


def read_pruned_config(path_dir: str | Path) -> PrunedConfig | None:
    """The `PrunedConfig` of a pruned-model folder (``config.json`` of format edgesr.prune/1), or None when
    `path_dir` is not such a folder (a file, a run folder, anything else)."""
    folder = Path(path_dir)
    cfg_path = folder / CONFIG_NAME
    if not folder.is_dir() or not cfg_path.is_file():
        return None
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return PrunedConfig.from_dict(data)


def load_pruned(path_dir: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model saved by `save_pruned`; its config is ``model.pruned_config``."""
    from edgesr.models.weights import read_checkpoint

    folder = Path(path_dir)
    cfg_path, w_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not w_path.is_file() and (folder / LEGACY_WEIGHTS_NAME).is_file():
        w_path = folder / LEGACY_WEIGHTS_NAME
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise UserInputError(f"{p} not found: a pruned model folder holds {CONFIG_NAME} and {WEIGHTS_NAME}.")
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{cfg_path} is not valid JSON: {exc}") from None
    state = read_checkpoint(w_path)
    return rebuild(PrunedConfig.from_dict(data), {k: v.to(map_location) for k, v in state.items()})
