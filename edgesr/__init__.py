"""edgesr: efficient super-resolution from training-ready PyTorch to fast engines.

Importing the package is cheap: heavy backends (TensorRT, OpenVINO, ncnn, ExecuTorch)
are only imported by the runners that need them.
"""
from __future__ import annotations

__version__ = "0.1.0"

from edgesr.errors import EdgesrError, UserInputError  # noqa: E402
from edgesr.models import create_model, list_models, get_model_entry  # noqa: E402

__all__ = [
    "__version__",
    "EdgesrError",
    "UserInputError",
    "create_model",
    "list_models",
    "get_model_entry",
]
