"""`edgesr trt-check MODEL_OR_ONNX`: will TensorRT's ONNX parser take this model? Runs anywhere (no GPU)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click

from edgesr.cli.common import scale_option, weights_option


@click.command("trt-check")
@click.argument("target", metavar="MODEL_OR_ONNX")
@scale_option
@weights_option
@click.option("--fp16", is_flag=True, help="MODEL: check the FP16 export.")
@click.option("--io", type=click.Choice(["float01", "float255", "uint8"]), default="float01", show_default=True,
              help="MODEL: I/O convention of the export to check.")
@click.option("--opset", type=int, default=18, show_default=True, help="MODEL: opset of the export.")
@click.option("--dla/--no-dla", default=True, show_default=True, help="Add DLA (Jetson) placement hints.")
@click.option("--polygraphy/--no-polygraphy", "polygraphy", default=None,
              help="Also run `polygraphy inspect model` (default: when Polygraphy is installed).")
@click.option("--max-opset", type=int, default=24, show_default=True,
              help="Highest opset the target TensorRT parser reads (24: TensorRT 10.15/11; 20: TensorRT 10.0).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the report as JSON.")
def command(target: str, scale: int | None, weights: str | None, fp16: bool, io: str, opset: int, dla: bool,
            polygraphy: bool | None, max_opset: int, json_path: Path | None) -> None:
    """Check MODEL_OR_ONNX (an .onnx file, or a registered model exported on the fly) against the TensorRT ONNX
    parser's operator support. Exit 0 when ready, 1 when TensorRT would reject it."""
    from edgesr.errors import ExportError
    from edgesr.export.tensorrt.readiness import check_readiness, report_json
    from edgesr.utils.atomic import write_text_atomic

    path = Path(target)
    with tempfile.TemporaryDirectory(prefix="edgesr-trt-check-") as tmp:
        if path.suffix.lower() == ".onnx" or path.is_file():
            if fp16 or io != "float01" or scale or weights:
                click.echo("note: --fp16/--io/--scale/--weights apply to MODEL, not to an ONNX file", err=True)
        else:
            from edgesr.cli.common import describe_model, load_model
            from edgesr.export import ExportOptions, default_artifact_name, export_onnx

            model = load_model(target, scale, weights)
            click.echo(f"exporting {describe_model(model)} ...", err=True)
            path = Path(tmp) / f"{default_artifact_name(model.edgesr_name, model.scale, fp16, io)}.onnx"
            export_onnx(model, path, ExportOptions(fp16=fp16, io=io, opset=opset, parity_sizes=((64, 64),)))
        report = check_readiness(path, dla=dla, polygraphy=polygraphy, max_opset=max_opset)
        click.echo(report.format(dla=dla))
        if json_path is not None:
            write_text_atomic(json_path, report_json(report), force=True)
            click.echo(f"wrote {json_path}")
    if not report.ok:
        raise ExportError(f"{path.name} is not ready for TensorRT: {len(report.errors)} error(s) above.")
