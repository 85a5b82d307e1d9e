"""`edgesr export`: a registered model to a deployable artifact of any registered format plus its JSON sidecar.

The command parses options and hands them to the format registry (`edgesr.export.formats`): the common ones
become `ExportOptions`, the format-specific ones (INT8, TensorRT) the format's own config, by field name. No
format is special-cased here."""
from __future__ import annotations

import re
from pathlib import Path

import click

from edgesr.cli.common import (SectionedCommand, SectionOption, describe_model, force_option, identify_model,
                               load_model, model_argument, scale_option, weights_option)
from edgesr.export.formats import list_formats

FORMAT_CHOICES = list_formats()
INT8 = "INT8 (--int8; onnx, ort, openvino, trt)"
TRT = "TensorRT (--format trt)"
# the format-specific options: field of a format's config class -> its flag
FORMAT_FLAGS = {"int8": "--int8", "calib_images": "--calib-images", "calib_count": "--calib-count",
                "calib_method": "--calib-method", "int8_max_drop": "--int8-max-drop",
                "int8_max_float": "--int8-max-float", "int8_val": "--int8-val",
                "workspace": "--workspace", "timing_cache": "--timing-cache", "opt_level": "--opt-level",
                "hardware_compat": "--hardware-compat", "weakly_typed": "--weakly-typed"}

_SHAPE = re.compile(r"^\s*(\d+)\s*[xX*,]\s*(\d+)\s*$")


def _parse_shape(value: str, what: str) -> tuple[int, int]:
    m = _SHAPE.match(value)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise click.BadParameter(f"expected HEIGHTxWIDTH with positive integers (e.g. 256x256), got {value!r}.",
                                 param_hint=what)
    return int(m.group(1)), int(m.group(2))


def _shape_option(ctx: click.Context, param: click.Parameter, value):
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_parse_shape(v, f"--{param.name.replace('_', '-')}") for v in value)
    return _parse_shape(value, f"--{param.name.replace('_', '-')}")


def pruned_identity(folder: Path, scale: int | None) -> tuple[str, int]:
    """(model, scale) recorded in a folder written by `edgesr prune`, so `--pruned DIR` needs no MODEL."""
    from edgesr.errors import UserInputError
    from edgesr.prune.slicing import read_pruned_config

    config = read_pruned_config(folder)
    if config is None:
        raise UserInputError(f"{folder} is not a folder written by `edgesr prune` (no config.json).")
    if scale is not None and scale != config.scale:
        raise UserInputError(f"{folder} holds a pruned {config.model} x{config.scale}, not x{scale}.")
    return config.model, config.scale


@click.command("export", cls=SectionedCommand)
@model_argument
@scale_option
@weights_option
@click.option("--random-init", is_flag=True, help="Export with random weights (architectures without official ones).")
@click.option("--pruned", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Export the pruned model saved in DIR by `edgesr prune` (MODEL optional: the folder names it; "
                   "default name <model>_x<s>_pruned).")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="onnx", show_default=True,
              help="Artifact format: onnx; ort (ONNX Runtime mobile .ort + required_operators.config); "
                   "onnx-int8 / ort-int8 (= --int8); trt (ONNX, then a TensorRT engine; needs an NVIDIA GPU and "
                   "edgesr[tensorrt]); ncnn; openvino (IR .xml + .bin; edgesr[openvino]); executorch.")
@click.option("--fp16", is_flag=True, help="FP16 arithmetic (float32 I/O with Casts at the boundaries). "
                                           "For GPU/TensorRT/mobile: ONNX Runtime CPU runs it slower than FP32.")
@click.option("--fp16-io", is_flag=True, help="FP16 arithmetic and float16 input/output (implies --fp16).")
@click.option("--io", type=click.Choice(["float01", "float255", "uint8"]), default="float01", show_default=True,
              help="Value convention of the graph's input/output: float RGB 0..1, float 0..255, or uint8 "
                   "(scaling, rounding and clamping inside the graph).")
@click.option("--reparam/--no-reparam", default=None,
              help="Fold the model for inference before export (default: fold).")
@click.option("--opset", type=int, default=18, show_default=True, help="ONNX opset.")
@click.option("--exporter", type=click.Choice(["auto", "dynamo", "torchscript"]), default="auto", show_default=True,
              help="torch.onnx exporter; auto tries dynamo and falls back to TorchScript.")
@click.option("--min-shape", callback=_shape_option, default=None, metavar="HxW",
              help="Smallest input of the recommended shape profile (default: the model's minimum size).")
@click.option("--opt-shape", callback=_shape_option, default="256x256", show_default=True, metavar="HxW",
              help="Optimal input of the shape profile.")
@click.option("--max-shape", callback=_shape_option, default="1024x1024", show_default=True, metavar="HxW",
              help="Largest input of the shape profile.")
@click.option("--parity-size", "parity_sizes", multiple=True, callback=_shape_option, metavar="HxW",
              help="Input size(s) the export is verified on (repeatable; default 64x64, 127x93, 339x510).")
@click.option("--output-dir", "-o", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="Folder for the artifact and its sidecar (<artifact file>.json).")
@click.option("--name", default=None, help="Artifact name (default e.g. rlfn_x4, rlfn_x4_fp16, rlfn_x4_int8, "
                                           "rlfn_x4_fp16_trt).")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="Threads for the parity check (ONNX Runtime, ncnn, XNNPACK).")
@force_option
@click.option("--int8", is_flag=True, cls=SectionOption, section=INT8,
              help="Static QDQ quantization calibrated on --calib-images, sensitive layers kept in float "
                   "(onnx/ort: <name>_int8; openvino: NNCF post-training quantization, <name>_int8_ov; trt: INT8 engine "
                   "from a symmetric Q/DQ ONNX).")
@click.option("--calib-images", type=click.Path(path_type=Path), default=None, metavar="DIR", cls=SectionOption,
              section=INT8, help="LR images to calibrate on (default: shared/datasets/DIV2K_test_LR_x4); the last images are held "
                   "out to validate on.")
@click.option("--calib-count", type=click.IntRange(min=1), default=None, metavar="N", cls=SectionOption,
              section=INT8, help="onnx/ort/openvino: number of calibration crops (default 32).")
@click.option("--calib-method", type=click.Choice(["minmax", "percentile", "entropy", "mse"]), default=None,
              cls=SectionOption, section=INT8,
              help="Activation range method (default: percentile for onnx/ort/trt, NNCF's own for openvino; "
                   "openvino has no entropy).")
@click.option("--int8-max-drop", type=float, default=None, metavar="DB", cls=SectionOption, section=INT8,
              help="Largest Y-PSNR drop vs FP32 allowed on the validation images (held out from calibration): "
                   "the most sensitive layers stay in float until it holds.")
@click.option("--int8-max-float", type=click.IntRange(min=0), default=None, metavar="N", cls=SectionOption,
              section=INT8, help="Most layers kept in float to meet the budget (default 10; openvino: NNCF "
                                 "accuracy-control iterations, each may revert a few connected layers).")
@click.option("--int8-val", default=None, metavar="DATASET", cls=SectionOption, section=INT8,
              help="Validation images --int8-max-drop is measured on: a dataset folder or a name under "
                   "shared/datasets, e.g. Set14 (default: images held out from --calib-images, which under-predict "
                   "benchmark drops).")
@click.option("--workspace", type=int, default=None, metavar="MB", cls=SectionOption, section=TRT,
              help="Builder workspace limit (default 2048).")
@click.option("--timing-cache", type=click.Path(path_type=Path), default=None, metavar="FILE", cls=SectionOption,
              section=TRT, help="Timing cache, reused if it exists and saved after the build.")
@click.option("--opt-level", type=int, default=None, metavar="N", cls=SectionOption, section=TRT,
              help="Builder optimization level 0..5.")
@click.option("--hardware-compat", is_flag=True, cls=SectionOption, section=TRT,
              help="One engine for all Ampere+ GPUs (slower).")
@click.option("--weakly-typed", is_flag=True, cls=SectionOption, section=TRT,
              help="With --fp16 on TensorRT 10.x: FP32 ONNX + the deprecated FP16 builder flag instead of an "
                   "FP16 ONNX.")
def command(model_name: str | None, scale: int | None, weights: str | None, random_init: bool, pruned: Path | None,
            fmt: str, fp16: bool, fp16_io: bool, io: str, reparam: bool | None, opset: int, exporter: str, min_shape,
            opt_shape, max_shape, parity_sizes, output_dir: Path, name: str | None, threads: int, force: bool,
            **format_values) -> None:
    """Export MODEL (or, without MODEL, the model detected from --weights FILE) to DIR/<name>.<format suffix>
    with its sidecar DIR/<name>.<suffix>.json, verified against PyTorch (--format trt: the verified ONNX, then
    DIR/<name>_trt.engine)."""
    from edgesr.errors import ExportError, UserInputError
    from edgesr.export import ExportOptions, default_artifact_name
    from edgesr.export.formats import export_artifact, make_format_config, resolve_format
    from edgesr.export.verify import DEFAULT_PARITY_SIZES
    from edgesr.utils.atomic import check_writable

    if random_init and weights:
        raise UserInputError("--random-init and --weights exclude each other.")
    if pruned is not None and (random_init or weights):
        raise UserInputError("--pruned takes the weights from its folder: drop --weights / --random-init.")
    if model_name is None and pruned is not None:  # the folder names its model
        model_name, scale = pruned_identity(pruned, scale)
    identity = identify_model(model_name, scale, weights)
    model_id, resolved_scale = identity.model, identity.scale
    info = resolve_format(fmt, format_values["int8"])
    config = make_format_config(info, format_values, FORMAT_FLAGS)
    options = ExportOptions(
        opset=opset, exporter=exporter, io=io, fp16=fp16 or fp16_io, fp16_io=fp16_io, reparam=reparam,
        min_shape=min_shape, opt_shape=opt_shape, max_shape=max_shape,
        parity_sizes=tuple(parity_sizes) or DEFAULT_PARITY_SIZES, threads=threads, force=force,
    )
    info.check_options(options)
    if config is not None and hasattr(config, "prepare"):  # the format's own checks (e.g. TensorRT and a GPU)
        options = config.prepare(options)
    name = name or (default_artifact_name(model_id, resolved_scale, options.half, io, options.fp16_io)
                    + ("_pruned" if pruned is not None else "") + getattr(config, "name_suffix", ""))
    if not name or Path(name).name != name or name.startswith("."):
        raise UserInputError(f"--name must be a plain file name without folders, got {name!r}.")
    for suffix in info.suffixes:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for out in info.outputs(output_dir, name):  # refuse existing outputs before loading weights or exporting
        check_writable(out, force)

    if pruned is not None:
        from edgesr.prune import load_pruned

        model = load_pruned(pruned)
        if (model.edgesr_name, model.scale) != (model_id, resolved_scale):
            raise UserInputError(f"{pruned} holds a pruned {model.edgesr_name} x{model.scale}, not {model_id} "
                                 f"x{resolved_scale}; pass MODEL {model.edgesr_name} --scale {model.scale}.")
        click.echo(f"{model_id} x{resolved_scale} pruned ({sum(p.numel() for p in model.parameters()):,} params, "
                   f"from {pruned})")
    else:
        model = load_model(model_name, scale, weights, random_init=random_init)
        click.echo(describe_model(model))
    try:
        result = export_artifact(model, output_dir, name, info.name, options, config=config)
    except ExportError as exc:  # not the user's typo, but not an edgesr bug either: no traceback
        raise click.ClickException(f"export failed: {exc}") from exc
    for line in result.summary():
        click.echo(line)
