"""One fx tracer and one error type for the fold passes and the pruner."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from edgesr.analysis.tracing import ModelTracer, TraceError, trace_model
from edgesr.errors import UserInputError
from edgesr.prune import trace_channels
from edgesr.transforms.graph import trace


class _Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:
            return x
        return -x


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.gate = _Gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.a(x))


@pytest.mark.parametrize("run, purpose", [(lambda m: trace(m), "folding"),
                                          (lambda m: trace_channels(m, (1, 3, 8, 8)), "channel pruning")])
def test_fold_and_prune_report_an_untraceable_model_alike(run, purpose: str) -> None:
    with pytest.raises(TraceError) as info:
        run(_Branchy())
    assert isinstance(info.value, UserInputError)  # the CLI prints it as one line
    message = str(info.value)
    assert message.startswith(f"cannot trace _Branchy for {purpose}: data-dependent control flow in "
                              "module 'gate' (_Gate) at test_tracing.py:")
    assert "`if x.mean() > 0:`" in message


def test_leaves_and_inlined_modules() -> None:
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Identity(), _Gate())
    tracer = ModelTracer((nn.Conv2d, _Gate), inline=(nn.Identity,))
    calls = [n.target for n in trace_model(model, tracer).nodes if n.op == "call_module"]
    assert calls == ["0", "2"]  # the Identity is traced through, the gate is one node
    default = [n.target for n in trace_model(model, ModelTracer((_Gate,))).nodes if n.op == "call_module"]
    assert default == ["0", "1", "2"]  # torch.nn's own modules are leaves unless inlined
