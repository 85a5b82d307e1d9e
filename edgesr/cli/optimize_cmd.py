"""`edgesr optimize`: the fastest deployable form of a model within a quality budget, with the evidence."""
from __future__ import annotations

from pathlib import Path

import click

from edgesr.cli.common import force_option, load_model, model_argument, scale_option, weights_option


@click.command("optimize")
@model_argument
@scale_option
@weights_option
@click.option("--target", type=click.Choice(["cpu", "mobile-cpu", "cuda"]), default="cpu", show_default=True,
              help="cpu: this CPU, all its threads, 256x256; mobile-cpu: 1 thread, no bf16/AMX, 128x128 and "
                   "360x640 (the first size decides); cuda: an NVIDIA GPU.")
@click.option("--max-drop", type=float, default=0.05, show_default=True, metavar="DB",
              help="Largest Y-PSNR drop accepted on --val, against eager PyTorch FP32.")
@click.option("--val", default="Set5", show_default=True, metavar="DATASET",
              help="Validation set: a folder (HR/ + LR_bicubic/X<s>/, or HR images) or a name under shared/datasets.")
@click.option("--val-limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Score on the first N images of --val only.")
@click.option("--backends", "-b", multiple=True, metavar="NAMES",
              help="Runtimes to consider (comma separated or repeated): torch, torch.compile, onnxruntime, "
                   "openvino, ncnn, executorch, ort, tensorrt. Default: all. Eager PyTorch FP32 always runs "
                   "(the baseline).")
@click.option("--precision", "precisions", multiple=True, type=click.Choice(["fp32", "bf16", "fp16", "int8"]),
              help="Precisions to consider (repeatable). Default: all.")
@click.option("--candidates", "pruned_dirs", multiple=True, type=click.Path(path_type=Path), metavar="PRUNED_DIR",
              help="A pruned variant saved by `edgesr prune` to measure too (repeatable).")
@click.option("--size", "sizes", multiple=True, metavar="HxW",
              help="LR input size(s) to time instead of the target's (repeatable; the first decides).")
@click.option("--resume", is_flag=True, help="Continue the search in -o DIR, reusing its finished candidates.")
@click.option("--max-minutes", type=float, default=None, metavar="M",
              help="Time bound: candidates that would not leave time for the final timing run are skipped.")
@click.option("--min-iters", type=click.IntRange(min=10), default=10, show_default=True,
              help="Interleaved timing rounds per size (each candidate once per round).")
@click.option("--no-memory", is_flag=True, help="Skip the peak-memory measurement (a child process per candidate).")
@click.option("--output-dir", "-o", type=click.Path(path_type=Path), required=True, metavar="DIR",
              help="Folder for the table (md/csv/json), the plot, the chosen artifact and the search state.")
@force_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(model_name: str | None, scale: int | None, weights: str | None, target: str, max_drop: float, val: str,
            val_limit: int | None, backends: tuple[str, ...], precisions: tuple[str, ...],
            pruned_dirs: tuple[Path, ...], sizes: tuple[str, ...], resume: bool, max_minutes: float | None, min_iters: int, no_memory: bool,
            output_dir: Path, force: bool, quiet: bool) -> None:
    """Find the fastest deployable form of MODEL within --max-drop on --val: every precision x runtime this
    machine can run is exported, scored through its runtime and timed in one interleaved run; writes the Pareto
    table, the plot and the chosen artifact with its sidecar (which records the decision) into DIR.

    \b
      edgesr optimize rlfn --scale 4 --max-drop 0.05 -o out/opt
      edgesr optimize rlfn --target mobile-cpu -b onnxruntime,ncnn,executorch -o out/mobile
    """
    from edgesr.data import resolve_dataset
    from edgesr.errors import EdgesrError, UserInputError
    from edgesr.optimize import OptimizeConfig, run_optimize
    from edgesr.bench.suite import parse_size
    from edgesr.optimize.candidates import PRECISIONS, parse_backends

    if resume and force:
        raise UserInputError("--resume and --force exclude each other.")
    config = OptimizeConfig(out_dir=output_dir, target=target, max_drop=max_drop, val=val, val_limit=val_limit,
                            backends=parse_backends(backends), precisions=precisions or PRECISIONS, resume=resume,
                            force=force, max_minutes=max_minutes, min_iters=min_iters, memory=not no_memory,
                            progress=not quiet, sizes=[parse_size(s) for s in sizes])
    config.validate()
    resolve_dataset(val)  # a missing validation set fails before the model is loaded
    pruned = {}
    if pruned_dirs:
        from edgesr.prune import load_pruned

        for folder in pruned_dirs:
            if not Path(folder).is_dir():
                raise UserInputError(f"--candidates {folder}: not a folder saved by `edgesr prune`.")
            pruned[Path(folder).name] = load_pruned(folder)
    model = load_model(model_name, scale, weights)
    result = run_optimize(model, config, pruned)
    for path in result.files:
        click.echo(f"wrote {path}")
    line = result.config["summary"]
    if not result.decision.ok:
        raise EdgesrError(line)
    click.echo(line)
