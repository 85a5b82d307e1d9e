"""`edgesr upscale`: super-resolve one image file."""
from __future__ import annotations

from pathlib import Path

import click

from edgesr.cli.common import describe_model, force_option, load_model, scale_option, weights_option


@click.command("upscale")
@click.argument("model_name", metavar="MODEL")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@scale_option
@weights_option
@click.option("--tile", type=int, default=256, show_default=True,
              help="Tile size in LR pixels; 0 runs the whole image at once.")
@click.option("--halo", type=int, default=32, show_default=True, help="Context pixels around each tile.")
@click.option("--self-ensemble", is_flag=True, help="Average over the 8 flips/rotations (x8 compute).")
@force_option
def command(model_name: str, src: Path, dst: Path, scale: int | None, weights: str | None, tile: int,
            halo: int, self_ensemble: bool, force: bool) -> None:
    """Upscale SRC into DST (RGB, grayscale and RGBA inputs; written atomically)."""
    from edgesr.inference import torch_sr_function
    from edgesr.inference.files import upscale_file
    from edgesr.utils.atomic import check_writable

    check_writable(dst, force)
    model = load_model(model_name, scale, weights)
    click.echo(describe_model(model))
    rep = upscale_file(torch_sr_function(model), src, dst, model.scale, force=force, tile=tile, halo=halo,
                       min_size=getattr(model, "min_input_size", 1), self_ensemble=self_ensemble, progress=True)
    kind = "grayscale" if rep.grayscale else "RGB"
    click.echo(f"{src} {rep.input_shape[1]}x{rep.input_shape[0]} -> {dst} {rep.output_shape[1]}x"
               f"{rep.output_shape[0]} ({kind}{' + alpha' if rep.alpha else ''}, {rep.tiles} tile(s))")
