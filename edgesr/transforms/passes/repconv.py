"""``repconv``: fold every re-parameterizable block (`edgesr.layers.reparam.ReparamConv`: RepConv, SPAN's
Conv3XC, EFDN's EDBB) into one ``nn.Conv2d`` at the same path."""
from __future__ import annotations

from torch import nn

from edgesr.transforms.graph import replace_module
from edgesr.transforms.registry import FoldContext, FoldPass, PassOutcome, register_pass


@register_pass("repconv", order=10)
class RepConvPass(FoldPass):
    description = "re-parameterizable blocks (RepConv, Conv3XC, EDBB) -> one kxk nn.Conv2d each"

    def apply(self, model: nn.Module, ctx: FoldContext) -> PassOutcome:
        from edgesr.layers.reparam import ReparamConv

        out = PassOutcome()
        reps = [(name, m) for name, m in model.named_modules() if isinstance(m, ReparamConv)]
        if not reps:
            return out
        per_layer = ctx.profile(model).per_layer
        for name, rep in reps:
            convs = sum(1 for r in per_layer if r.name == name or r.name.startswith(name + "."))
            calls = convs // rep.num_convs()
            removed = convs - calls
            if not name:  # the model is such a block itself: fold in place (keeps its own weight/bias)
                if rep.deploy:
                    continue
                rep.reparameterize()
            else:
                replace_module(model, name, rep.to_conv())
            out.changes += 1
            out.convs_removed += removed
        out.notes.append(f"{out.changes} re-parameterizable blocks -> nn.Conv2d ({out.convs_removed} conv calls fewer)")
        return out
