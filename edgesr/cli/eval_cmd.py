"""`edgesr eval`: PSNR/SSIM of a model, or of any exported artifact on its runtime, on datasets."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edgesr.cli.common import describe_model, force_option, load_model, model_argument, scale_option, weights_option


@click.command("eval")
@model_argument
@scale_option
@weights_option
@click.option("--artifact", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Evaluate an exported artifact instead of MODEL (.onnx incl. INT8, .ort, ncnn .param, .pte, "
                   "OpenVINO .xml, TensorRT .engine): its runtime is picked from the extension, its I/O convention, "
                   "scale and limits from its sidecar.")
@click.option("--backend", "-b", default=None, help="Runtime for --artifact (default: from the extension).")
@click.option("--threads", type=int, default=None, help="CPU threads of the --artifact runtime.")
@click.option("--dataset", "-d", "datasets", multiple=True, required=True, metavar="DIR|NAME",
              help="Folder with HR/ (and optionally LR_bicubic/X{S}/), a folder of HR images, or a name under "
                   "shared/datasets (Set5, Set14, BSD68). Repeatable.")
@click.option("--self-ensemble", is_flag=True, help="Average over the 8 flips/rotations (x8 compute).")
@click.option("--tile", type=click.IntRange(min=0), default=0, show_default=True, help="Tile size in LR pixels (0: whole image).")
@click.option("--halo", type=click.IntRange(min=0), default=16, show_default=True, help="Context pixels around each tile.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N images.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write the results as JSON: one entry per dataset (means, settings, per-image scores, source).")
@force_option
@click.option("--quiet", "-q", is_flag=True, help="Only the mean line per dataset.")
def command(model_name: str | None, scale: int | None, weights: str | None, artifact: Path | None,
            backend: str | None, threads: int | None, datasets: tuple[str, ...], self_ensemble: bool, tile: int,
            halo: int, limit: int | None, json_path: Path | None, force: bool, quiet: bool) -> None:
    """Evaluate MODEL (Y-channel PSNR/SSIM, border = scale) on one or more datasets.

    \b
    Examples:
      edgesr eval rlfn_x4 -d Set5 -d Set14
      edgesr eval --weights runs/ft/model_final.safetensors -d Set5     # model detected from the weights
      edgesr eval --artifact exports/rlfn_x4_int8.onnx -d Set5          # any exported artifact
    """
    from edgesr.errors import UserInputError
    from edgesr.evaluate import evaluate_datasets
    from edgesr.utils.atomic import check_writable, write_text_atomic

    if json_path is not None:
        check_writable(json_path, force)
    if artifact is not None:
        if model_name or weights:
            raise UserInputError("--artifact replaces MODEL and --weights: an artifact carries its own weights.")
        fn, scale, options, source = _artifact_function(artifact, backend, threads, scale, tile, halo)
    else:
        if backend is not None or threads is not None:
            raise UserInputError("--backend and --threads apply to --artifact.")
        fn, scale, options, source = _model_function(model_name, scale, weights)
    options.update(self_ensemble=self_ensemble, halo=halo)
    options.setdefault("tile", tile)

    def show(res: Any) -> None:
        if not quiet:
            for s in res.images:
                click.echo(f"  {s.name:<20} PSNR {s.psnr:8.4f} dB  SSIM {s.ssim:.5f}")
        click.echo(f"{res.dataset}: x{res.scale} PSNR {res.psnr:.4f} dB  SSIM {res.ssim:.5f}  "
                   f"({len(res.images)} images, {res.seconds:.1f} s)")

    results = evaluate_datasets(fn, datasets, scale, limit=limit, on_result=show, progress=not quiet, **options)
    if json_path is not None:
        payload = {name: {**res.to_dict(), "source": source} for name, res in results.items()}
        write_text_atomic(json_path, json.dumps(payload, indent=2, default=list) + "\n", force=force)
        click.echo(f"wrote {json_path}")


def _model_function(model_name: str | None, scale: int | None, weights: str | None):
    """(SR function, scale, evaluate options, source record) of a PyTorch model."""
    from edgesr.inference import torch_sr_function

    model = load_model(model_name, scale, weights)
    click.echo(describe_model(model))
    source = {"model": model.edgesr_name, "config": getattr(model, "edgesr_config", {}), "scale": model.scale,
              "weights": getattr(model, "weights_path", None), "backend": "torch"}
    return torch_sr_function(model), model.scale, {"min_size": getattr(model, "min_input_size", 1)}, source


def _artifact_function(artifact: Path, backend: str | None, threads: int | None, scale: int | None, tile: int,
                       halo: int):
    """(SR function, scale, evaluate options, source record) of an exported artifact on its runtime; scale,
    minimum size, alignment and (TensorRT) profile limits come from the runner and its sidecar."""
    from edgesr.export.tensorrt.profiles import plan_runner_tiling
    from edgesr.runtimes import create_runner

    runner = create_runner(artifact, backend, **({"threads": threads} if threads else {})).activate()
    plan, out_scale = plan_runner_tiling(runner, tile, halo, scale)
    if plan.note:
        click.echo(plan.note)
    click.echo(f"{artifact} on {runner.name} ({runner.io.describe()}, x{out_scale})")
    source = {"artifact": str(artifact), **runner.describe(), "scale": out_scale}
    options = {"tile": plan.tile, "min_size": plan.min_size}
    return plan.wrap(runner.as_sr_function(), out_scale), out_scale, options, source
