"""ncnn runner (interface only for now; `pip install edgesr[mobile]`).

Takes the ``.param`` file (the ``.bin`` beside it); ncnn works on one image at a time (CHW Mat).
"""
from __future__ import annotations

from edgesr.runtimes._stub import PendingRunner


class NcnnRunner(PendingRunner):
    """Run an ncnn model (``.param`` + ``.bin``)."""

    backend = "ncnn"
