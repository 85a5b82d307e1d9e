"""`edgesr eval`: PSNR/SSIM of a model on a dataset folder."""
from __future__ import annotations

import json
from pathlib import Path

import click

from edgesr.cli.common import describe_model, force_option, load_model, scale_option, weights_option


@click.command("eval")
@click.argument("model_name", metavar="MODEL")
@scale_option
@weights_option
@click.option("--dataset", "-d", "datasets", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Folder with HR/ (and optionally LR_bicubic/X{S}/), or a folder of HR images. Repeatable.")
@click.option("--self-ensemble", is_flag=True, help="Average over the 8 flips/rotations (x8 compute).")
@click.option("--tile", type=click.IntRange(min=0), default=0, show_default=True, help="Tile size in LR pixels (0: whole image).")
@click.option("--halo", type=click.IntRange(min=0), default=16, show_default=True, help="Context pixels around each tile.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N images.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write the results (means and per-image) as JSON.")
@force_option
@click.option("--quiet", "-q", is_flag=True, help="Only the mean line per dataset.")
def command(model_name: str, scale: int | None, weights: str | None, datasets: tuple[Path, ...],
            self_ensemble: bool, tile: int, halo: int, limit: int | None, json_path: Path | None,
            force: bool, quiet: bool) -> None:
    """Evaluate MODEL (Y-channel PSNR/SSIM, border = scale) on one or more datasets."""
    from edgesr.data import open_eval_dataset
    from edgesr.evaluate import evaluate
    from edgesr.inference import torch_sr_function
    from edgesr.utils.atomic import check_writable, write_text_atomic

    if json_path is not None:
        check_writable(json_path, force)
    model = load_model(model_name, scale, weights)
    scale = model.scale
    click.echo(describe_model(model))
    fn = torch_sr_function(model)
    results = []
    for folder in datasets:
        items = open_eval_dataset(folder, scale, limit=limit)
        name = folder.resolve().name if folder.name.upper() != "HR" else folder.resolve().parent.name
        res = evaluate(fn, items, scale, dataset=name, self_ensemble=self_ensemble, tile=tile, halo=halo,
                       min_size=getattr(model, "min_input_size", 1), progress=not quiet)
        if not quiet:
            for s in res.images:
                click.echo(f"  {s.name:<20} PSNR {s.psnr:8.4f} dB  SSIM {s.ssim:.5f}")
        click.echo(f"{name}: x{scale} PSNR {res.psnr:.4f} dB  SSIM {res.ssim:.5f}  ({len(res.images)} images, "
                   f"{res.seconds:.1f} s)")
        results.append(res)
    if json_path is not None:
        payload = {
            "model": model.edgesr_name, "scale": scale, "weights": getattr(model, "weights_path", None),
            "psnr": results[0].psnr, "ssim": results[0].ssim,
            "images": [s.__dict__ for s in results[0].images],
            "datasets": {r.dataset: r.to_dict() for r in results},
        }
        write_text_atomic(json_path, json.dumps(payload, indent=2, default=list) + "\n", force=force)
        click.echo(f"wrote {json_path}")
