"""`edgesr bench`: latency, throughput, memory, cost and quality over runtimes."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from edgesr.cli.common import force_option, scale_option, weights_option


@click.command("bench")
@click.argument("model_name", metavar="[MODEL]", required=False)
@scale_option
@weights_option
@click.option("--stage", type=click.Choice(["original", "reparameterized", "pruned"]), default="original",
              show_default=True, help="Pipeline stage of MODEL to benchmark.")
@click.option("--pruned", type=click.Path(path_type=Path), help="Folder written by `edgesr prune` (with --stage pruned).")
@click.option("--backend", "-b", "backends", multiple=True,
              help="Backend spec, repeatable: torch, torch:channels_last, torch:compile, torch:cuda,fp16, "
                   "onnxruntime, ort:fp16, openvino, openvino:bf16. Default: torch.")
@click.option("--onnx", "onnx_path", type=click.Path(path_type=Path), help="Benchmark an exported ONNX file.")
@click.option("--engine", "engine_path", type=click.Path(path_type=Path), help="Benchmark a TensorRT engine.")
@click.option("--artifact", "artifact_path", type=click.Path(path_type=Path),
              help="Benchmark any exported artifact (.onnx, .ort, .param, .pte, .engine).")
@click.option("--suite", "suite_path", type=click.Path(path_type=Path), help="YAML suite listing many targets.")
@click.option("--protocol", type=click.Choice(["ntire-esr"]), help="Named measurement protocol.")
@click.option("--profile", type=click.Choice(["mobile-cpu", "sweep"]), help="Named size/thread profile.")
@click.option("--size", "sizes", multiple=True, help="Input size HxW (LR), repeatable. Default 256x256.")
@click.option("--threads", "-t", "threads", multiple=True, type=int, help="CPU threads, repeatable. Default 2.")
@click.option("--images", type=click.Path(path_type=Path), help="Folder of LR images to time over (NTIRE style).")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N images.")
@click.option("--psnr-dataset", help="Dataset for PSNR/SSIM through each runtime (folder or name, e.g. Set5).")
@click.option("--memory/--no-memory", default=None, help="Measure peak memory (child process / CUDA).")
@click.option("--min-seconds", type=click.FloatRange(min=0), default=None, help="Minimum timed seconds per measurement (default 3).")
@click.option("--min-iters", type=click.IntRange(min=1), default=None, help="Minimum timed iterations (default 10).")
@click.option("--json", "json_path", type=click.Path(path_type=Path))
@click.option("--csv", "csv_path", type=click.Path(path_type=Path))
@click.option("--md", "md_path", type=click.Path(path_type=Path))
@click.option("--plot", "plot_dir", type=click.Path(path_type=Path), help="Write PNG plots into this folder.")
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path("out/bench"), show_default=True,
              help="Where exported ONNX files for non-torch backends are kept.")
@force_option
def command(model_name, scale, weights, stage, pruned, backends, onnx_path, engine_path, artifact_path, suite_path,
            protocol, profile, sizes, threads, images, limit, psnr_dataset, memory, min_seconds, min_iters,
            json_path, csv_path, md_path, plot_dir, work_dir, force) -> None:
    """Benchmark MODEL (or --onnx/--engine/--artifact/--suite) and print a table."""
    from edgesr.bench.harness import BenchConfig, run_benchmark
    from edgesr.bench.presets import apply_preset, get_preset
    from edgesr.bench.report import text_table, write_report
    from edgesr.bench.suite import load_suite, parse_size, prepare_model
    from edgesr.data import resolve_dataset
    from edgesr.bench.targets import BackendSpec, target_for_artifact, targets_for_model
    from edgesr.errors import UserInputError
    from edgesr.utils.atomic import check_writable

    for out in (json_path, csv_path, md_path):
        if out is not None:
            check_writable(out, force)
    from_model = bool(model_name or weights)  # MODEL, or the model detected from --weights FILE
    sources = [s for s in (from_model, onnx_path, engine_path, artifact_path, suite_path) if s]
    if len(sources) != 1:
        raise UserInputError("give exactly one of MODEL (or --weights FILE), --onnx, --engine, --artifact or --suite.")
    title = "edgesr benchmark"
    config = BenchConfig()
    if suite_path:
        title, config, targets = load_suite(suite_path, work_dir)
    elif from_model:
        specs = [BackendSpec.parse(b) for b in (backends or ("torch",))]
        model = prepare_model(model_name, scale, weights, stage, pruned)
        targets = targets_for_model(model, specs, work_dir, stage=stage)
        title = f"{targets[0].label} ({stage})"
    else:
        path = Path(onnx_path or engine_path or artifact_path)
        backend = "tensorrt" if engine_path else None
        if backends:
            spec = BackendSpec.parse(backends[0])
            targets = [target_for_artifact(path, spec.backend, spec.flags)]
        else:
            targets = [target_for_artifact(path, backend)]
        title = path.name
    if protocol:
        config = apply_preset(config, get_preset(protocol, "protocol"), images)
    if profile:
        config = apply_preset(config, get_preset(profile, "profile"))
    if sizes:
        config = replace(config, sizes=[parse_size(s) for s in sizes])
    if threads:
        config = replace(config, threads=list(threads))
    if images and not protocol:
        config = replace(config, images=images, sizes=[parse_size(s) for s in sizes])
    overrides = {"limit": limit, "min_seconds": min_seconds, "min_iters": min_iters, "memory": memory}
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if psnr_dataset:
        config = replace(config, psnr_dataset=resolve_dataset(psnr_dataset))

    report = run_benchmark(targets, config, progress=lambda msg: click.echo(f"... {msg}", err=True))
    click.echo(text_table(report))
    for path in write_report(report, json_path=json_path, csv_path=csv_path, md_path=md_path, title=title,
                             force=force):
        click.echo(f"wrote {path}")
    if plot_dir:
        from edgesr.bench.plots import pareto_plot, resolution_plot

        for fn, name in ((pareto_plot, "pareto.png"), (resolution_plot, "resolution.png")):
            written = fn(report, Path(plot_dir) / name, force=force)
            if written:
                click.echo(f"wrote {written}")
