"""Options and helpers shared by several commands."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click
from torch import nn

if TYPE_CHECKING:
    from edgesr.models.detect import Detection

scale_option = click.option("--scale", "-s", type=int, default=None,
                            help="Upscaling factor (default: the weights' scale, else 4).")
weights_option = click.option("--weights", "-w", default=None, metavar="FILE|NAME",
                              help="Checkpoint (.safetensors or .pth) or pretrained name (e.g. rlfn_x4). "
                                   "Default: the official weights for the scale. Without MODEL, the "
                                   "architecture is detected from the checkpoint.")
force_option = click.option("--force", "-f", is_flag=True, help="Overwrite existing outputs.")


class SectionOption(click.Option):
    """An option listed under its own heading in --help (`section`, e.g. "TensorRT (--format trt)")."""

    def __init__(self, *args, section: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.section = section


class SectionedCommand(click.Command):
    """A command whose --help lists options under headings: plain ones under "Options", `SectionOption`s under
    their section, in order of first appearance."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(getattr(param, "section", None) or "Options", []).append(record)
        for title, rows in sections.items():
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


model_argument = click.argument("model_name", metavar="[MODEL]", required=False)


def load_model(name: str | None, scale: int | None, weights: str | None, *, random_init: bool = False) -> nn.Module:
    """Registered model with official weights (default), a named variant, or a checkpoint file; with no
    name, the architecture the checkpoint holds (detected from its key names and shapes)."""
    from edgesr.errors import UserInputError
    from edgesr.models import create_model

    if name is None:
        if not weights or random_init:
            raise UserInputError("give MODEL, or --weights FILE to detect the model from its checkpoint.")
        from edgesr.models import load_model as load_detected

        return load_detected(weights, scale=scale)
    if random_init:
        return create_model(name, scale=scale)
    return create_model(name, scale=scale, pretrained=weights if weights else True)


def identify_model(name: str | None, scale: int | None, weights: str | None,
                   what: str = "--weights") -> Detection:
    """The registered model name and scale (and, when detected, its configuration) before anything is
    built: from MODEL, or detected from the checkpoint `weights` (given as option `what`)."""
    from edgesr.errors import UserInputError
    from edgesr.models.detect import Detection

    if name is not None:
        from edgesr.models.registry import resolve_name_and_scale, scale_of_weights

        entry, resolved, _ = resolve_name_and_scale(name, scale_of_weights(scale, weights))
        return Detection(entry.name, resolved)
    if not weights:
        raise UserInputError(f"give MODEL, or {what} FILE to detect the model from its checkpoint.")
    from edgesr.models.detect import detect_architecture, scale_contradiction
    from edgesr.models.hub import resolve_weights
    from edgesr.models.weights import read_checkpoint

    path = resolve_weights(weights)
    found = detect_architecture(read_checkpoint(path), source=str(path))
    if scale is not None and scale != found.scale:
        raise UserInputError(scale_contradiction(str(path), found, scale))
    return found


def describe_model(model: nn.Module) -> str:
    src = getattr(model, "weights_path", None) or "random init"
    n = sum(p.numel() for p in model.parameters())
    return f"{model.edgesr_name} x{model.scale} ({n:,} params, weights: {src})"
