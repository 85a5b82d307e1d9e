"""Model zoo. Importing this package registers every architecture listed in `_ARCHITECTURES`.

To add a model: write `edgesr/models/<arch>.py` with `@register_model` builders and add the
module name below. Tests parametrize over the registry, so it is tested by being registered.

Inside the package the imports point one way: `registry` (plain data) <- `hub` (finding weight
files) <- `weights` (loading them) <- `detect` (what a checkpoint is) <- `factory` (`create_model`,
`load_model`); architectures import `registry` and declare their detector with `detect`.
"""
from __future__ import annotations

import importlib

from edgesr.models.detect import Detection, detect_architecture
from edgesr.models.factory import create_model, load_model
from edgesr.models.registry import (
    ModelEntry,
    PretrainedCfg,
    get_model_entry,
    get_pretrained_cfg,
    list_models,
    list_pretrained,
    register_model,
)

_ARCHITECTURES = ("rlfn", "rfdn", "imdn", "edsr", "rcan", "rdn", "drn", "rlfn_rep", "rfdn_rep", "span", "efdn")

for _arch in _ARCHITECTURES:
    importlib.import_module(f"edgesr.models.{_arch}")

__all__ = [
    "Detection",
    "ModelEntry",
    "PretrainedCfg",
    "create_model",
    "detect_architecture",
    "get_model_entry",
    "get_pretrained_cfg",
    "list_models",
    "list_pretrained",
    "load_model",
    "register_model",
]
