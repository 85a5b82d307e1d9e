"""Shared base of the registered backends whose runners are not written yet.

Constructing one checks for the backend's package first, so a machine without it gets a
MissingDependencyError naming the extra to install; with the package present it says the
runner is not implemented yet.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgesr.runtimes.base import BaseRunner, InputSpec
from edgesr.runtimes.registry import get_backend, import_backend_package


class PendingRunner(BaseRunner):
    """A runner whose interface is fixed (path + options, float32 NCHW 0..1 at the edge) but whose
    backend code is not written yet."""

    module: str | None = None  # what to import to check for the backend (default: its package)

    def __init__(self, path: str | Path, **options: Any) -> None:
        self.path = Path(path)
        super().__init__(options.pop("name", None) or f"{self.backend}:{self.path.name}")
        self.options = options
        import_backend_package(self.backend, self.module)  # MissingDependencyError naming the extra
        raise NotImplementedError(
            f"the {self.backend} runner is not implemented yet in this edgesr version "
            f"({get_backend(self.backend).description}); run the .onnx export with backend='onnxruntime' "
            "or 'openvino' meanwhile.")

    def activate_impl(self) -> None:  # pragma: no cover - unreachable until implemented
        raise NotImplementedError

    def get_input_spec(self) -> InputSpec:  # pragma: no cover
        raise NotImplementedError

    def infer_impl(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError
