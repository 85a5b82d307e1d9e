"""Shared by ``value_scale`` and ``mean_shift``: fold a per-channel affine map ``a * x + b`` (a graph node)
into the conv that produces its input (through PixelShuffle) or, failing that, into the convs that read
its output."""
from __future__ import annotations

from collections import Counter

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from edgesr.layers import fold_math
from edgesr.transforms.graph import data_users, get_module, is_conv2d, producer_conv, replace_module


def border_error(conv: nn.Conv2d, a: torch.Tensor | float, b: torch.Tensor | float) -> float:
    """Largest output change if the shift `b` were folded into a zero-padded conv's bias anyway."""
    cin = conv.in_channels
    b_v = torch.as_tensor(b, dtype=torch.float64).detach().cpu().flatten()
    if b_v.numel() == 1:
        b_v = b_v.expand(cin)
    w = conv.weight.detach().double().cpu()
    pad = fold_math.explicit_padding(conv) or (0, 0)
    size = [2 * p + 1 for p in pad]
    img = b_v.view(1, cin, 1, 1).expand(1, cin, *size)
    true = F.conv2d(img, w, None, conv.stride, pad, conv.dilation, conv.groups)
    folded = (w.view(conv.groups, -1, cin // conv.groups, *w.shape[2:])
              * b_v.view(conv.groups, 1, -1, 1, 1)).sum(dim=(2, 3, 4)).flatten()
    return float((true - folded.view(1, -1, 1, 1)).abs().max())


def fold_affine(model: nn.Module, node: torch.fx.Node, modules: dict[str, nn.Module], calls: Counter,
                a: torch.Tensor | float, b: torch.Tensor | float | None) -> tuple[bool, str]:
    """Fold ``a * x + b`` at `node` into a neighbouring conv; replace the node's module by Identity.

    Returns (folded, note).
    """
    label = node.target
    if calls[node.target] != 1:
        return False, f"{label} kept: the module is called {calls[node.target]} times"
    found = producer_conv(node.args[0], modules, calls)
    if found is not None:
        conv_node, upscale = found
        conv = get_module(model, conv_node.target)
        replace_module(model, conv_node.target, fold_math.scale_output(conv, a, b, upscale))
        replace_module(model, node.target, nn.Identity())
        via = f" through PixelShuffle(x{upscale})" if upscale > 1 else ""
        return True, f"{label} -> output of {conv_node.target}{via}"
    users = data_users(node)
    convs = [modules.get(u.target) if u.op == "call_module" else None for u in users]
    if users and all(is_conv2d(c) and calls[u.target] == 1 for u, c in zip(users, convs)):
        blockers = [(u.target, c, fold_math.scale_input_blocker(c, b)) for u, c in zip(users, convs)]
        bad = [(t, c, why) for t, c, why in blockers if why is not None]
        if bad:
            t, c, why = bad[0]
            return False, (f"{label} not folded into {t}: {why} (by up to {border_error(c, a, b):.4g} "
                           "in that conv's output units); kept as a 1x1 conv")
        for u, c in zip(users, convs):
            replace_module(model, u.target, fold_math.scale_input(c, a, b))
        replace_module(model, node.target, nn.Identity())
        return True, f"{label} -> input of {', '.join(str(u.target) for u in users)}"
    return False, f"{label} kept: no single-use conv produces or reads it"
