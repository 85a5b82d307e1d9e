"""``conv_bn``: fold a BatchNorm that follows a Conv2d into the conv (running statistics, eval semantics)."""
from __future__ import annotations

from torch import nn

from edgesr.analysis.tracing import TraceError
from edgesr.layers import fold_math
from edgesr.transforms.graph import call_module_of, data_users, is_conv2d, module_calls, replace_module, trace
from edgesr.transforms.registry import FoldContext, FoldPass, PassOutcome, register_pass


@register_pass("conv_bn", order=20)
class ConvBNPass(FoldPass):
    description = "BatchNorm after a conv -> folded into the conv (BN becomes nn.Identity)"

    def apply(self, model: nn.Module, ctx: FoldContext) -> PassOutcome:
        out = PassOutcome()
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            return out
        try:
            graph = trace(model)
        except TraceError as exc:
            out.notes.append(f"skipped: {exc}")
            return out
        modules = dict(model.named_modules())
        calls = module_calls(graph)
        for node in list(graph.nodes):
            bn = call_module_of(node, modules, nn.modules.batchnorm._BatchNorm)
            if bn is None:
                continue
            src = node.args[0]
            conv = call_module_of(src, modules, nn.Conv2d)
            if conv is None or not is_conv2d(conv):
                out.notes.append(f"{node.target} kept: its input is not a Conv2d")
                continue
            if data_users(src) != [node] or calls[src.target] != 1 or calls[node.target] != 1:
                out.notes.append(f"{src.target} -> {node.target} kept: the conv output or a module is used twice")
                continue
            fused = fold_math.fuse_conv_bn(conv, bn)
            if fused is None:
                out.notes.append(f"{node.target} kept: no running statistics (track_running_stats=False)")
                continue
            replace_module(model, src.target, fused)
            replace_module(model, node.target, nn.Identity())
            out.changes += 1
        if out.changes:
            out.notes.insert(0, f"{out.changes} BatchNorm folded into the preceding conv")
        return out
