"""edgesr: efficient super-resolution from training-ready PyTorch to fast engines.

Importing the package is cheap: it loads neither torch nor the model zoo. `create_model`,
`load_model`, `list_models` and `get_model_entry` load the zoo on first use, and heavy backends (TensorRT,
OpenVINO, ncnn, ExecuTorch) are only imported by the runners that need them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgesr.errors import EdgesrError, UserInputError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from edgesr.models import create_model, get_model_entry, list_models, load_model

_FROM_MODELS = ("create_model", "list_models", "get_model_entry", "load_model")

__all__ = [
    "__version__",
    "EdgesrError",
    "UserInputError",
    "create_model",
    "list_models",
    "get_model_entry",
    "load_model",
]


def __getattr__(name: str) -> Any:
    if name in _FROM_MODELS:
        import edgesr.models

        return getattr(edgesr.models, name)
    raise AttributeError(f"module 'edgesr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
