"""`edgesr upscale`: super-resolve one image file with a model, or with an exported artifact on any runtime."""
from __future__ import annotations

from pathlib import Path

import click

from edgesr.cli.common import describe_model, force_option, load_model, scale_option, weights_option


@click.command("upscale")
@click.argument("args", nargs=-1, metavar="[MODEL] SRC DST")
@scale_option
@weights_option
@click.option("--artifact", "--engine", "artifact", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Upscale with an exported artifact instead of MODEL (.onnx, .xml, .engine/.plan, ...): its runtime is "
                   "picked from the extension, its I/O convention and limits from its sidecar.")
@click.option("--backend", "-b", default=None, help="Runtime for --artifact (default: from the extension).")
@click.option("--tile", type=int, default=256, show_default=True,
              help="Tile size in LR pixels; 0 runs the whole image at once. With a TensorRT engine it is lowered so "
                   "that every tile (with its halo) fits the engine's profile.")
@click.option("--halo", type=int, default=32, show_default=True, help="Context pixels around each tile.")
@click.option("--self-ensemble", is_flag=True, help="Average over the 8 flips/rotations (x8 compute).")
@force_option
def command(args: tuple[str, ...], scale: int | None, weights: str | None, artifact: Path | None, backend: str | None,
            tile: int, halo: int, self_ensemble: bool, force: bool) -> None:
    """Upscale SRC into DST (RGB, grayscale and RGBA inputs; written atomically).

    `edgesr upscale MODEL SRC DST` runs a registered model in PyTorch (`edgesr upscale --weights FILE SRC DST`: the
    model detected from the checkpoint); `edgesr upscale --artifact FILE SRC DST` (or `--engine FILE`) runs an
    exported artifact.
    """
    from edgesr.errors import UserInputError
    from edgesr.inference.files import upscale_file
    from edgesr.utils.atomic import check_writable

    detect = artifact is None and len(args) == 2 and weights is not None
    if artifact is None and len(args) != 3 and not detect:
        raise UserInputError("expected MODEL SRC DST (or --weights FILE SRC DST, or --artifact FILE SRC DST).")
    if artifact is not None and len(args) != 2:
        raise UserInputError("with --artifact/--engine give only SRC DST (the artifact replaces MODEL).")
    if artifact is None and (backend is not None):
        raise UserInputError("--backend applies to --artifact.")
    src, dst = Path(args[-2]), Path(args[-1])
    check_writable(dst, force)
    if artifact is None:
        from edgesr.inference import torch_sr_function

        model = load_model(None if detect else args[0], scale, weights)
        click.echo(describe_model(model))
        fn, out_scale, min_size = torch_sr_function(model), model.scale, getattr(model, "min_input_size", 1)
    else:
        if weights:
            raise UserInputError("--weights applies to MODEL; an artifact carries its own.")
        from edgesr.export.tensorrt.profiles import plan_runner_tiling
        from edgesr.runtimes import create_runner

        runner = create_runner(artifact, backend).activate()
        plan, out_scale = plan_runner_tiling(runner, tile, halo, scale)
        if plan.note:
            click.echo(plan.note)
        tile, halo, min_size = plan.tile, plan.halo, plan.min_size
        fn = plan.wrap(runner.as_sr_function(), out_scale)
        click.echo(f"{runner.name} ({runner.io.describe()}, x{out_scale})")
    rep = upscale_file(fn, src, dst, out_scale, force=force, tile=tile, halo=halo, min_size=min_size,
                       self_ensemble=self_ensemble, progress=True)
    kind = "grayscale" if rep.grayscale else "RGB"
    click.echo(f"{src} {rep.input_shape[1]}x{rep.input_shape[0]} -> {dst} {rep.output_shape[1]}x"
               f"{rep.output_shape[0]} ({kind}{' + alpha' if rep.alpha else ''}, {rep.tiles} tile(s))")
