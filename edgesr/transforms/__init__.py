"""Model transforms for deployment.

`reparameterize(model)` folds a model in place with exact passes (one module each in `passes/`,
registered by name: `list_passes()`), and returns a `FoldReport`. The fold arithmetic itself lives
beside the layers it folds (`edgesr.layers.fold_math`, also used by `edgesr.layers.repconv.RepConv`).
"""
from edgesr.transforms.registry import FoldContext, FoldPass, PassOutcome, get_pass, list_passes, register_pass
from edgesr.transforms.pipeline import FoldReport, PassResult, reparameterize

__all__ = [
    "FoldContext",
    "FoldPass",
    "FoldReport",
    "PassOutcome",
    "PassResult",
    "get_pass",
    "list_passes",
    "register_pass",
    "reparameterize",
]
