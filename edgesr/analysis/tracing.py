"""torch.fx tracing shared by the fold passes and the channel pruner: one tracer, one error type.

`ModelTracer` keeps the module types its caller names as leaves (one ``call_module`` node each), traces
through others on request, and remembers which module was running when tracing failed, so that
`trace_model` can say where: a `TraceError` naming the module, the model's own source line and the kind
of failure (usually Python control flow on a tensor value).
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Callable

import torch
from torch import fx, nn

from edgesr.errors import UserInputError

__all__ = ["ModelTracer", "TraceError", "trace_model"]


class TraceError(UserInputError):
    """torch.fx cannot trace the model (Python control flow on a tensor value, an untraceable call, ...)."""


class ModelTracer(fx.Tracer):
    """fx tracer with chosen leaves that remembers the module being traced.

    Args:
        leaves: module types kept as one ``call_module`` node (torch.nn's own modules always are).
        inline: module types traced through even though torch.nn defines them (e.g. ``nn.Identity``).
        keep: ``keep(module, qualified_name)`` -> True to keep any other module as a leaf.
    """

    def __init__(self, leaves: tuple[type, ...] = (), *, inline: tuple[type, ...] = (),
                 keep: Callable[[nn.Module, str], bool] | None = None) -> None:
        super().__init__()
        self.leaves, self.inline, self.keep = leaves, inline, keep
        self.scope_stack: list[tuple[str, str]] = []
        self.error_scope: tuple[str, str] | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m) in self.inline:
            return False
        if isinstance(m, self.leaves):
            return True
        if self.keep is not None and self.keep(m, module_qualified_name):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        self.scope_stack.append((self.path_of_module(m), type(m).__name__))
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.error_scope is None:  # the innermost module running when tracing failed
                self.error_scope = self.scope_stack[-1]
            raise
        finally:
            self.scope_stack.pop()


def trace_model(model: nn.Module, tracer: ModelTracer | None = None, *, purpose: str = "") -> fx.Graph:
    """The fx graph of `model` (nothing is copied); a `TraceError` saying where and why when it fails.

    `purpose` ("channel pruning", ...) completes the message: "cannot trace RLFN for channel pruning: ...".
    """
    tracer = tracer or ModelTracer()
    tracer.error_scope = None
    name = getattr(model, "edgesr_name", None) or type(model).__name__
    try:
        return tracer.trace(model)
    except Exception as exc:  # noqa: BLE001 - fx raises many types; every failure is reported the same way
        where = tracer.error_scope or ("", type(model).__name__)
        module = f"module {where[0]!r} ({where[1]})" if where[0] else f"{where[1]}.forward"
        kind = "data-dependent control flow" if isinstance(exc, fx.proxy.TraceError) else type(exc).__name__
        raise TraceError(
            f"cannot trace {name}{' for ' + purpose if purpose else ''}: {kind} in {module}{_model_frame(exc)}: "
            f"{exc}. torch.fx needs a forward without Python control flow on tensor values; rewrite that "
            "branch with tensor ops or make the module a leaf.") from exc


def _model_frame(exc: BaseException) -> str:
    """" at file.py:LINE `code`" of the innermost frame outside torch and this module: the model's code."""
    torch_dir = str(Path(torch.__file__).parent)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(torch_dir) and f.filename != __file__]
    if not frames:
        return ""
    f = frames[-1]
    return f" at {Path(f.filename).name}:{f.lineno} `{(f.line or '').strip()}`"
