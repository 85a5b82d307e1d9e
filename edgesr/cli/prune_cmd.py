"""`edgesr prune`: Group Fisher channel pruning to a target size, with a before/after report."""
from __future__ import annotations

import json
from pathlib import Path

import click

from edgesr.cli.common import force_option, identify_model, model_argument, scale_option, weights_option
from edgesr.utils.jsonable import to_jsonable

REPORT_NAME = "report.json"
REPORT_FORMAT = "edgesr.prune.report/1"
LATENCY_TABLE_NAME = "latency_table.json"


def _check_images(folder: Path, option: str) -> None:
    from edgesr.data import IMAGE_EXTENSIONS, find_images
    from edgesr.errors import UserInputError

    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise UserInputError(f"{option} folder {folder} {what}.")
    if not find_images(folder):
        raise UserInputError(f"{option} folder {folder} contains no images ({', '.join(IMAGE_EXTENSIONS)}).")


@click.command("prune")
@model_argument
@scale_option
@weights_option
@click.option("--target", "target_text", metavar="KIND=VALUE",
              help="When to stop: flops (conv MACs), params or acts, as a ratio of the unpruned model in (0, 1] "
                   "(flops=0.6) or an absolute value with a unit k/M/G (params=300k, flops=19.7G, acts=80M; "
                   "latency=5ms).")
@click.option("--images", type=click.Path(path_type=Path),
              help="Folder of LR training images (LR only: Fisher on teacher + noise, distillation). With --hr: "
                   "the LR images matching --hr (default: MATLAB bicubic of the HR).")
@click.option("--hr", "hr_dir", type=click.Path(path_type=Path),
              help="Folder of HR training images (loss: L1 to HR + distillation).")
@click.option("--steps", type=int, default=None, help="Cap on pruning steps (default: until the target is met).")
@click.option("--prune-every", type=int, default=10, show_default=True, help="Fisher steps between two prunes.")
@click.option("--finetune-steps", type=int, default=0, show_default=True, help="Fine-tuning steps after slicing.")
@click.option("--round-to", type=int, default=4, show_default=True,
              help="Prune this many channels of a group at a time, keeping widths multiples of it.")
@click.option("--normalize", type=click.Choice(["memory", "flops", "latency", "none"]), default="memory",
              show_default=True, help="Divide Fisher scores by what a channel costs (memory = conv output elements).")
@click.option("--latency-table", "latency_table", metavar="FILE.json|auto",
              help="ms saved per removed channel of each group, for --normalize latency and latency targets: a JSON "
                   "file ({group name: ms}, see --show-groups for names, or a table written by a previous run), or "
                   "auto: measure it first (each group thinned by --round-to, timed against the unpruned model in "
                   "--latency-backend at --threads, 256x256, --latency-runs rounds) and save it as "
                   f"{LATENCY_TABLE_NAME} beside the pruned model.")
@click.option("--latency-backend", default="onnxruntime", show_default=True,
              help="Runtime that --latency-table auto measures in: onnxruntime or openvino.")
@click.option("--crop", type=int, default=48, show_default=True, help="LR crop size of the training batches.")
@click.option("--batch", type=int, default=8, show_default=True, help="Batch size.")
@click.option("--lr", type=float, default=2e-5, show_default=True, help="Adam learning rate while pruning.")
@click.option("--finetune-lr", type=float, default=None, help="Adam learning rate of fine-tuning (default: --lr).")
@click.option("--distill", type=float, default=1.0, show_default=True, help="Weight of L1 to the unpruned model.")
@click.option("--eval-dataset", "eval_datasets", multiple=True,
              help="PSNR/SSIM dataset, folder or shared name (repeatable; default Set5 when the shared data has it).")
@click.option("--eval-limit", type=int, default=None, help="Evaluate only the first N images of each dataset.")
@click.option("--no-eval", is_flag=True, help="Skip PSNR/SSIM.")
@click.option("--threads", type=int, default=2, show_default=True,
              help="CPU threads for PyTorch and for the ONNX Runtime latency (same for before and after).")
@click.option("--latency/--no-latency", default=True, show_default=True,
              help="Time both models in ONNX Runtime CPU (256x256, median).")
@click.option("--latency-runs", type=int, default=20, show_default=True, help="Timed runs per model.")
@click.option("--depth/--no-depth", default=False, show_default=True,
              help="Also remove whole residual blocks (RLFN, EDSR, RFDN) when that costs less per saved "
                   "memory/MAC.")
@click.option("--prunes-per-step", type=int, default=1, show_default=True,
              help="Prunes per pruning step on one set of scores, each in a different group.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the crops and the pseudo-targets.")
@click.option("--show-groups", is_flag=True, help="Print the channel groups of MODEL and exit.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint.")
@click.option("--output", "-o", "output_dir", type=click.Path(path_type=Path),
              help="Folder for the pruned model (config.json, weights.safetensors) and report.json.")
@force_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(model_name: str | None, scale: int | None, weights: str | None, target_text: str | None, images: Path | None,
            hr_dir: Path | None, steps: int | None, prune_every: int, finetune_steps: int, round_to: int,
            normalize: str, latency_table: str | None, latency_backend: str, crop: int, batch: int, lr: float,
            finetune_lr: float | None, distill: float, eval_datasets: tuple[str, ...], eval_limit: int | None,
            no_eval: bool, threads: int, latency: bool, latency_runs: int, depth: bool, prunes_per_step: int,
            seed: int, show_groups: bool,
            resume: bool, output_dir: Path | None, force: bool, quiet: bool) -> None:
    """Prune MODEL's channels with Group Fisher until --target is met, slice it, fine-tune it.

    \b
    Examples:
      edgesr prune rlfn_x4 --show-groups
      edgesr prune rlfn_x4 --target flops=0.6 --images DIV2K_test_LR_x4 --finetune-steps 2000 -o out/rlfn_p60
      edgesr prune rlfn_x4 --target params=320k --hr DIV2K/HR --round-to 8 -o out/rlfn_320k
      edgesr prune rlfn_x4 --target latency=0.7 --normalize latency --latency-table auto --images LR/ -o out/l70
      edgesr prune rlfn_x4 --target flops=0.6 --normalize latency --latency-table out/l70/latency_table.json \
          --images LR/ -o out/p60_lat
      edgesr bench rlfn_x4 --stage pruned --pruned out/rlfn_p60 -b onnxruntime
      edgesr export rlfn_x4 --pruned out/rlfn_p60 -o exports/
    """
    import torch

    from edgesr.errors import UserInputError
    # ---- everything that can be checked cheaply, before loading or computing anything
    resolved_scale = identify_model(model_name, scale, weights).scale  # unknown model / scale
    if show_groups:
        from edgesr.cli.common import load_model
        from edgesr.prune import format_groups, trace_channels

        model = load_model(model_name, scale, weights, random_init=not weights)
        text = format_groups(trace_channels(model))  # an untraceable model fails here, before any output
        click.echo(f"{model.edgesr_name} x{model.scale}: channel groups (ΔM at a 1x3x256x256 input)")
        click.echo(text)
        return
    from edgesr.prune import Target

    if not target_text:
        raise UserInputError("--target is required, e.g. --target flops=0.6 (or --show-groups to inspect MODEL).")
    target = Target.parse(target_text)
    if output_dir is None:
        raise UserInputError("--output/-o is required: the folder for the pruned model and its report.")
    from edgesr.utils.staging import StagedFolder

    destination = StagedFolder(output_dir, force=force)
    destination.check()
    if images is None and hr_dir is None:
        raise UserInputError("training images are needed: pass --images LR_DIR (LR only, distillation) "
                             "or --hr HR_DIR (L1 to HR + distillation).")
    if hr_dir is not None:
        _check_images(hr_dir, "--hr")
    if images is not None:
        _check_images(images, "--images")
    for name, v in (("--prune-every", prune_every), ("--crop", crop), ("--batch", batch), ("--threads", threads),
                    ("--latency-runs", latency_runs), ("--round-to", round_to), ("--prunes-per-step", prunes_per_step),
                    ("--eval-limit", 1 if eval_limit is None else eval_limit)):
        if v < 1:
            raise UserInputError(f"{name} must be a positive integer, got {v}.")
    if finetune_steps < 0 or (steps is not None and steps < 0):
        raise UserInputError("--steps and --finetune-steps must be >= 0.")
    if (normalize == "latency" or target.kind == "latency") and latency_table is None:
        raise UserInputError("--normalize latency and latency targets need --latency-table FILE.json "
                             "({group name: ms saved per channel}; --show-groups lists the names) or "
                             "--latency-table auto (measure it first).")
    from edgesr.bench.latency_table import check_backend, measure_latency_table, read_latency_table

    measure_table = latency_table == "auto"
    table = None
    if measure_table:
        latency_backend = check_backend(latency_backend)  # unknown backend / missing runtime: before any work
    elif latency_table is not None:
        table = read_latency_table(latency_table)
    from edgesr.bench.prune_report import default_eval_datasets
    from edgesr.data import resolve_dataset

    datasets = [] if no_eval else ([resolve_dataset(d) for d in eval_datasets] or default_eval_datasets())
    from edgesr.data import open_eval_dataset

    for d in datasets:  # a bad evaluation folder must fail now, not after the pruning run
        open_eval_dataset(d, resolved_scale, limit=eval_limit)
    staging = destination.prepare(resume)
    from edgesr.prune import CHECKPOINT_NAME

    # ---- the work
    import copy

    from edgesr.cli.common import describe_model, load_model
    from edgesr.prune import crop_batches, fisher_prune, save_pruned
    from edgesr.bench.prune_report import format_table, measure_latencies, measure_model, ratios

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = load_model(model_name, scale, weights)
    click.echo(describe_model(model))
    if crop < getattr(model, "min_input_size", 1):
        raise UserInputError(f"--crop {crop} is smaller than the smallest input {model.edgesr_name} takes "
                             f"({model.min_input_size} px); use --crop {max(48, model.min_input_size)}.")
    if hr_dir is not None:
        from edgesr.data import PairedImageDataset

        source = PairedImageDataset(hr_dir, model.scale, lr_dir=images)
        data_desc = f"{len(source)} HR images from {hr_dir}" + (f" (LR from {images})" if images else "")
    else:
        source = images
        data_desc = f"LR images from {images} (distillation only)"
    batches = crop_batches(source, crop_size=crop, batch_size=batch, scale=model.scale, seed=seed)
    teacher = copy.deepcopy(model).eval()

    def note(msg: str) -> None:
        if not quiet:
            click.echo(f"... {msg}", err=True)

    if measure_table:
        saved = staging / LATENCY_TABLE_NAME
        if resume and saved.is_file():
            table = read_latency_table(saved)
        else:
            note(f"measuring the latency table ({latency_backend}, {threads} thread(s), 256x256)")
            table = measure_latency_table(teacher, backend=latency_backend, threads=threads, round_to=round_to,
                                          runs=latency_runs, progress=note)
            table.write(saved, force=True)
    if table is not None:
        click.echo(table.summary())
    click.echo(f"pruning to {target.describe()} with {data_desc}: {crop}x{crop} crops, batch {batch}, prune "
               f"{round_to} channel(s) every {prune_every} steps, {normalize}-normalised Fisher, "
               f"{finetune_steps} fine-tune steps")
    if resume and (staging / CHECKPOINT_NAME).is_file():
        click.echo(f"resuming from {staging / CHECKPOINT_NAME}")
    result = fisher_prune(model, teacher, batches, target, normalize=normalize, prune_every=prune_every,
                          round_to=round_to, lr=lr, steps=steps, finetune_steps=finetune_steps, depth=depth,
                          prunes_per_step=prunes_per_step,
                          finetune_lr=finetune_lr, distill_weight=distill,
                          **(table.pruner_options() if table is not None else {}),
                          progress=not quiet, checkpoint_dir=staging, resume=resume)
    del model
    pruned = result.model.eval()
    click.echo(result.summary())

    label = f"{teacher.edgesr_name} x{teacher.scale}"
    note("measuring the unpruned model")
    before = measure_model(teacher, label, datasets=datasets, limit=eval_limit, progress=not quiet)
    note("measuring the pruned model")
    after = measure_model(pruned, f"{label} pruned", datasets=datasets, limit=eval_limit, progress=not quiet)
    if latency:
        measure_latencies([before, after], [teacher, pruned], threads=threads, min_runs=latency_runs, progress=note)
    click.echo(format_table([before, after]))
    r = ratios(before, after)
    parts = [f"{k} x{r[k]:.3f}" for k in ("params", "macs", "ntire_flops", "acts") if r.get(k) is not None]
    if r.get("latency") is not None:
        parts.append(f"latency x{r['latency']:.3f}")
    parts += [f"{k.split('_psnr')[0]} PSNR {v:+.3f} dB" for k, v in r.items() if k.endswith("_psnr_delta_db")]
    click.echo("pruned / unpruned: " + ", ".join(parts))

    report = {
        "format": REPORT_FORMAT,
        "model": teacher.edgesr_name, "scale": teacher.scale, "weights": getattr(teacher, "weights_path", None),
        "target": {"text": target_text, "kind": target.kind, "ratio": target.ratio, "value": target.value,
                   "resolved": result.target_value, "met": result.target_met},
        "settings": {"images": str(images) if images else None, "hr": str(hr_dir) if hr_dir else None,
                     "steps": steps, "prune_every": prune_every, "finetune_steps": finetune_steps,
                     "round_to": round_to, "normalize": normalize, "latency_table": latency_table,
                     "latency_backend": latency_backend if measure_table else None, "depth": depth,
                     "prunes_per_step": prunes_per_step, "crop": crop, "batch": batch, "lr": lr,
                     "finetune_lr": finetune_lr, "distill": distill, "threads": threads, "seed": seed,
                     "eval_datasets": [str(d) for d in datasets], "eval_limit": eval_limit},
        "before": before.to_dict(), "after": after.to_dict(), "ratios": r,
        "prune": {"steps": result.steps, "finetune_steps": result.finetune_steps, "prunes": len(result.history),
                  "seconds": result.seconds, "seconds_per_step": result.seconds_per_step,
                  "widths": {n: {"width": g["width"], "kept": g["kept"]} for n, g in result.config.groups.items()},
                  "history": [e.to_dict() for e in result.history]},
    }
    save_pruned(staging, pruned, result.config, force=True)
    from edgesr.utils.atomic import write_text_atomic

    text = json.dumps(to_jsonable(report), indent=1, allow_nan=False) + "\n"
    write_text_atomic(staging / REPORT_NAME, text, force=True)
    (staging / CHECKPOINT_NAME).unlink(missing_ok=True)
    destination.publish()
    from edgesr.prune.slicing import CONFIG_NAME, WEIGHTS_NAME

    extra = f", {LATENCY_TABLE_NAME}" if measure_table else ""
    click.echo(f"wrote {output_dir}/ ({CONFIG_NAME}, {WEIGHTS_NAME}, {REPORT_NAME}{extra}); load it with "
               f"edgesr.prune.load_pruned('{output_dir}')")
