"""ExecuTorch runner (interface only for now; `pip install edgesr[executorch]`).

Will load a ``.pte`` program with `executorch.runtime.Runtime` and run its ``forward`` method.
"""
from __future__ import annotations

from edgesr.runtimes._stub import PendingRunner


class ExecuTorchRunner(PendingRunner):
    """Run an ExecuTorch program (``.pte``)."""

    backend = "executorch"
    module = "executorch.runtime"
