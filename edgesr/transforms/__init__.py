"""Model transforms for deployment.

`reparameterize(model)` folds a model in place with exact passes (one module each in `passes/`,
registered by name: `list_passes()`), and returns a `FoldReport`. `fold_math` holds the pure fold
arithmetic the passes (and `edgesr.layers.repconv.RepConv`) use.
"""
from edgesr.transforms import fold_math
from edgesr.transforms.registry import FoldContext, FoldPass, PassOutcome, get_pass, list_passes, register_pass
from edgesr.transforms.pipeline import FoldReport, PassResult, reparameterize

__all__ = [
    "FoldContext",
    "FoldPass",
    "FoldReport",
    "PassOutcome",
    "PassResult",
    "fold_math",
    "get_pass",
    "list_passes",
    "register_pass",
    "reparameterize",
]
