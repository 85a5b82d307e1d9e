"""Options and helpers shared by several commands."""
from __future__ import annotations

import click
from torch import nn

scale_option = click.option("--scale", "-s", type=int, default=None,
                            help="Upscaling factor (default: the weights' scale, else 4).")
weights_option = click.option("--weights", "-w", default=None, metavar="FILE|NAME",
                              help="Checkpoint path or pretrained name (e.g. rlfn_x4). "
                                   "Default: the official weights for the scale.")
force_option = click.option("--force", "-f", is_flag=True, help="Overwrite existing outputs.")


def load_model(name: str, scale: int | None, weights: str | None, *, random_init: bool = False) -> nn.Module:
    """Registered model with official weights (default), a named variant, or a checkpoint file."""
    from edgesr.models import create_model

    if random_init:
        return create_model(name, scale=scale)
    return create_model(name, scale=scale, pretrained=weights if weights else True)


def describe_model(model: nn.Module) -> str:
    src = getattr(model, "weights_path", None) or "random init"
    n = sum(p.numel() for p in model.parameters())
    return f"{model.edgesr_name} x{model.scale} ({n:,} params, weights: {src})"
