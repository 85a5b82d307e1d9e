"""``mean_shift``: fold EDSR-PyTorch's frozen `MeanShift` 1x1 convs into the neighbouring conv.

* ``add_mean`` at the output folds exactly into the last conv (bias, and weight for std != 1), also
  through PixelShuffle: an output channel's shift goes to its r^2 sub-channels.
* ``sub_mean`` at the input reads the image and feeds a 3x3 conv with zero padding. Its scale would fold
  exactly, but its shift would not: the conv pads ``x - mean`` with zeros, a folded conv would pad ``x``
  with zeros, which is ``-mean`` in the original's terms, so the border pixels change. It is therefore
  kept (a 3->3 1x1 conv: 9 MACs and 3 activations per input pixel) and the note gives the error a
  forced fold would make. It still absorbs the input `ValueScale` (pass ``value_scale``).
"""
from __future__ import annotations

import torch
from torch import nn

from edgesr.analysis.tracing import TraceError
from edgesr.layers.mean_shift import MeanShift
from edgesr.transforms.graph import call_module_of, module_calls, trace
from edgesr.transforms.passes._affine import fold_affine
from edgesr.transforms.registry import FoldContext, FoldPass, PassOutcome, register_pass


@register_pass("mean_shift", order=30)
class MeanShiftPass(FoldPass):
    description = "MeanShift (EDSR/RCAN sub_mean/add_mean) -> folded where exact (add_mean always)"

    def apply(self, model: nn.Module, ctx: FoldContext) -> PassOutcome:
        out = PassOutcome()
        if not any(isinstance(m, MeanShift) for m in model.modules()):
            return out
        try:
            graph = trace(model)
        except TraceError as exc:
            out.notes.append(f"skipped: {exc}")
            return out
        modules = dict(model.named_modules())
        calls = module_calls(graph)
        for node in list(graph.nodes):
            ms = call_module_of(node, modules, MeanShift)
            if ms is None:
                continue
            w = ms.weight.detach()[:, :, 0, 0]
            diag = torch.diagonal(w)
            if not torch.equal(w, torch.diag(diag)):
                out.notes.append(f"{node.target} kept: its weight mixes channels (conv_chain may compose it)")
                continue
            folded, note = fold_affine(model, node, modules, calls, diag, ms.bias.detach())
            out.changes += folded
            out.convs_removed += folded
            out.notes.append(f"MeanShift {note}")
        return out
