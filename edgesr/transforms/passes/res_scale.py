"""``res_scale``: fold a block's residual scaling (EDSR's ``body(x) * res_scale + x``) into the conv
that produces the scaled tensor, then set the block's ``res_scale`` to 1.

Which multiplications read ``self.res_scale`` is found by tracing the block twice with two different
values: the graph constants that change are exactly its uses. Every use must be a multiplication of a
single-use Conv2d output, or nothing is folded. The block's forward still multiplies by 1.0 afterwards
(the forward is the architecture's own code); exporters drop a multiplication by one.
"""
from __future__ import annotations

import torch.fx
from torch import nn

from edgesr.analysis.tracing import TraceError
from edgesr.layers import fold_math
from edgesr.transforms.graph import (MUL_TARGETS, fold_tracer, data_users, is_conv2d, module_calls,
                                     replace_module, trace)
from edgesr.transforms.registry import FoldContext, FoldPass, PassOutcome, register_pass

_PROBE = 0.318309886183  # any value that cannot appear by chance


def _constants(graph: torch.fx.Graph) -> list[tuple[torch.fx.Node, int, object]]:
    return [(n, i, a) for n in graph.nodes for i, a in enumerate(n.args) if isinstance(a, (int, float))]


def _res_scale_uses(block: nn.Module) -> list[tuple[torch.fx.Node, int]] | None:
    """(node, arg index) of every use of ``block.res_scale`` in its traced forward; None if untraceable."""
    original = block.res_scale
    try:
        g1 = trace(block, fold_tracer())
        block.res_scale = _PROBE
        g2 = trace(block, fold_tracer())
    except TraceError:
        return None
    finally:
        block.res_scale = original
    c1, c2 = _constants(g1), _constants(g2)
    if len(c1) != len(c2):
        return None
    return [(n1, i) for (n1, i, a1), (_n2, _i2, a2) in zip(c1, c2) if a1 != a2]


@register_pass("res_scale", order=50)
class ResScalePass(FoldPass):
    description = "residual scaling (EDSR res_scale) -> folded into the branch's last conv"

    def apply(self, model: nn.Module, ctx: FoldContext) -> PassOutcome:
        out = PassOutcome()
        blocks = [(name, m) for name, m in model.named_modules()
                  if isinstance(getattr(m, "res_scale", None), (int, float))
                  and not isinstance(m.res_scale, bool) and m.res_scale != 1]
        if not blocks:
            return out
        try:
            calls = module_calls(trace(model))
        except TraceError as exc:
            out.notes.append(f"skipped: {exc}")
            return out
        for name, block in blocks:
            uses = _res_scale_uses(block)
            if not uses:
                out.notes.append(f"{name or 'model'}.res_scale={block.res_scale:g} kept: its use was not found")
                continue
            modules = dict(block.named_modules())
            plan = []
            for node, idx in uses:
                other = node.args[1 - idx] if len(node.args) == 2 else None
                is_module = isinstance(other, torch.fx.Node) and other.op == "call_module"
                conv = modules.get(other.target) if is_module else None
                full = f"{name}.{other.target}" if conv is not None and name else getattr(other, "target", None)
                if (node.op != "call_function" or node.target not in MUL_TARGETS or not is_conv2d(conv)
                        or data_users(other) != [node] or calls[full] != 1):
                    plan = None
                    break
                plan.append((full, conv))
            if not plan:
                out.notes.append(f"{name or 'model'}.res_scale={block.res_scale:g} kept: not a multiplication "
                                 "of a single-use conv output")
                continue
            for full, conv in plan:
                replace_module(model, full, fold_math.scale_output(conv, block.res_scale))
            out.notes.append(f"{name}: res_scale {block.res_scale:g} -> {', '.join(f for f, _ in plan)}")
            block.res_scale = 1.0
            out.changes += 1
        return out
