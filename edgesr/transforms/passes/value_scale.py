"""``value_scale``: fold `ValueScale` (edgesr's 0..1 <-> native range adaptation) into the first / last conv.

``x * f`` is folded into the conv producing x (through PixelShuffle) or into the convs reading it; a
scale never touches padding (``f * 0 = 0``), so this is always exact. ``ValueScale(1)`` (IMDN) is just
removed. The module becomes ``nn.Identity``.
"""
from __future__ import annotations

from torch import nn

from edgesr.analysis.tracing import TraceError
from edgesr.layers.scale import ValueScale
from edgesr.transforms.graph import call_module_of, module_calls, replace_module, trace
from edgesr.transforms.passes._affine import fold_affine
from edgesr.transforms.registry import FoldContext, FoldPass, PassOutcome, register_pass


@register_pass("value_scale", order=40)
class ValueScalePass(FoldPass):
    description = "ValueScale (0..1 <-> 0..255) -> folded into the first/last conv; factor 1 removed"

    def apply(self, model: nn.Module, ctx: FoldContext) -> PassOutcome:
        out = PassOutcome()
        if not any(isinstance(m, ValueScale) for m in model.modules()):
            return out
        try:
            graph = trace(model)
        except TraceError as exc:
            out.notes.append(f"skipped: {exc}")
            return out
        modules = dict(model.named_modules())
        calls = module_calls(graph)
        for node in list(graph.nodes):
            vs = call_module_of(node, modules, ValueScale)
            if vs is None:
                continue
            if vs.factor == 1.0:
                replace_module(model, node.target, nn.Identity())
                out.changes += 1
                out.notes.append(f"{node.target}: ValueScale(1) removed")
                continue
            folded, note = fold_affine(model, node, modules, calls, vs.factor, None)
            out.changes += folded
            out.notes.append(f"ValueScale({vs.factor:g}) {note}")
        return out
