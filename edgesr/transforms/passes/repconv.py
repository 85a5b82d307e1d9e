"""``repconv``: fold every `RepConv` (training-time branches) into one ``nn.Conv2d`` at the same path."""
from __future__ import annotations

from torch import nn

from edgesr.transforms.graph import replace_module
from edgesr.transforms.registry import FoldContext, FoldPass, PassOutcome, register_pass


@register_pass("repconv", order=10)
class RepConvPass(FoldPass):
    description = "RepConv branches (kxk, 1x1, identity, expand-squeeze) -> one kxk nn.Conv2d"

    def apply(self, model: nn.Module, ctx: FoldContext) -> PassOutcome:
        from edgesr.layers.repconv import RepConv

        out = PassOutcome()
        reps = [(name, m) for name, m in model.named_modules() if isinstance(m, RepConv)]
        if not reps:
            return out
        per_layer = ctx.profile(model).per_layer
        for name, rep in reps:
            convs = sum(1 for r in per_layer if r.name == name or r.name.startswith(name + "."))
            calls = convs // rep.num_convs()
            removed = convs - calls
            if not name:  # the model is a RepConv itself: fold in place (keeps its own weight/bias)
                if rep.deploy:
                    continue
                rep.reparameterize()
            else:
                replace_module(model, name, rep.to_conv())
            out.changes += 1
            out.convs_removed += removed
        out.notes.append(f"{out.changes} RepConv -> nn.Conv2d ({out.convs_removed} conv calls fewer)")
        return out
