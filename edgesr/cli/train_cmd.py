"""`edgesr train`: train or fine-tune a registered model on a folder of HR images.

The options are derived from `TrainConfig`'s fields (names, types, defaults, help), so every field is
reachable from the command line and from a ``--config`` run file without being declared twice.
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any, Callable

import click

from edgesr.errors import UserInputError
from edgesr.train.config import TrainConfig, coerce_field, field_kind, read_run_file


class _NumberList(click.ParamType):
    """Comma-separated numbers, e.g. ``--betas 0.9,0.99``."""

    name = "N,N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[float, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return tuple(float(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"expects comma-separated numbers, got {value!r}.", param, ctx)


class _StageOverrides(click.ParamType):
    """A YAML/JSON list of per-stage mappings, e.g. ``'[{}, {loss: mse, lr: 2.0e-5}]'``."""

    name = "YAML"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[dict]:
        if isinstance(value, list):
            return value
        import yaml

        try:
            return coerce_field("stage_overrides", yaml.safe_load(value))
        except (yaml.YAMLError, UserInputError) as exc:
            self.fail(f"expects a YAML list of mappings, e.g. '[{{}}, {{loss: mse}}]': {exc}", param, ctx)


def _parse_model_cfg(items: tuple[str, ...]) -> dict:
    cfg = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserInputError(f"--model-cfg expects KEY=VALUE, got {item!r}.")
        try:
            cfg[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            cfg[key.strip()] = value.strip()
    return cfg


def _option(f: dataclasses.Field) -> click.Option:
    """The click option of one TrainConfig field. The command keeps only the options the user typed
    (`ctx.get_parameter_source`), so a value comes from the command line, else the run file, else the
    dataclass default shown here."""
    kind, _ = field_kind(f.name)
    decls = list(f.metadata.get("flags") or ())
    flag = "--" + f.name.replace("_", "-")
    kw: dict[str, Any] = {"help": f.metadata.get("help", "")}
    default = None if f.default is dataclasses.MISSING else f.default
    if kind == "bool":
        decls = decls or [f"{flag}/--no-{flag[2:]}"]
        kw.update(default=default, show_default=default is not None)
    elif kind == "dict":
        decls = decls or [flag]
        kw.update(multiple=True, metavar="KEY=VALUE", help=kw["help"] + " Repeatable.")
    elif kind in ("tuple", "list"):
        decls = decls or [flag]
        kw["type"] = _NumberList() if kind == "tuple" else _StageOverrides()
        if default is not None:
            kw["show_default"] = ",".join(map(str, default))
    else:
        decls = decls or [flag]
        choices = f.metadata.get("choices")
        kw["type"] = {"int": int, "float": float, "path": click.Path(path_type=Path),
                      "str": click.Choice(choices) if choices else str}[kind]
        kw.update(default=default, show_default=default is not None)
    return click.Option([*decls, f.name], **kw)


def _with_config_options(func: Callable) -> Callable:
    for f in reversed([f for f in dataclasses.fields(TrainConfig) if f.name != "model"]):
        func.__click_params__ = [*getattr(func, "__click_params__", []), _option(f)]  # type: ignore[attr-defined]
    return func


def _detect_from_init(values: dict[str, Any]) -> None:
    """Fill model, scale and model_cfg from what the --init checkpoint holds (explicit model_cfg wins)."""
    from edgesr.cli.common import identify_model
    from edgesr.prune import read_pruned_config

    pruned = read_pruned_config(values["init"])
    if pruned is not None:  # a pruned-model folder: continue training the pruned architecture
        if values.get("scale") is not None and values["scale"] != pruned.scale:
            raise UserInputError(f"--init {values['init']} holds a pruned {pruned.model} x{pruned.scale}, "
                                 f"but --scale {values['scale']} was given.")
        values.update(model=pruned.model, scale=pruned.scale)
        return
    found = identify_model(None, values.get("scale"), str(values["init"]), what="--init")
    if found.pruned:
        raise UserInputError(f"--init {values['init']} holds the weights of a pruned {found.model} without its "
                             "config.json; pass the pruned folder (config.json + weights.safetensors) instead.")
    values.update(model=found.model, scale=found.scale, model_cfg={**found.config, **values.get("model_cfg", {})})


def build_config(model: str | None, config_file: Path | None, given: dict[str, Any]) -> TrainConfig:
    """Dataclass defaults < run file < command line (`given`: the options the user typed)."""
    values = read_run_file(config_file) if config_file is not None else {}
    if model is not None:
        values["model"] = model
    if "model_cfg" in given:
        values["model_cfg"] = {**values.get("model_cfg", {}), **_parse_model_cfg(given.pop("model_cfg"))}
    values.update(given)
    if values.get("model") is None and values.get("init"):  # the architecture the --init weights hold
        _detect_from_init(values)
    for name, spelling in (("model", "MODEL"), ("hr_dir", "--hr"), ("output_dir", "--output")):
        if values.get(name) is None:
            where = f" or set {name} in {config_file}" if config_file else " (or set it in a --config run file)"
            raise UserInputError(f"{spelling} is required: pass {spelling}{where}.")
    return TrainConfig(**values)


@click.command("train")
@click.argument("model_name", metavar="MODEL", required=False)
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="YAML run file whose keys are the option names below with underscores (hr_dir, lr_step, "
                   "stage_overrides, ...); options on the command line override it.")
@_with_config_options
@click.pass_context
def command(ctx: click.Context, model_name: str | None, config_file: Path | None, **options: Any) -> None:
    """Train or fine-tune MODEL on patches of the images in --hr.

    \b
    Examples:
      edgesr train rlfn_s --hr DIV2K/HR --scale 2 --patch 64 --batch 64 --steps 200000 \\
          --contrastive 0.1 --warm-start-stages 3 --val Set5 -o runs/rlfn_s_x2
      edgesr train --config rlfn_s_x2.yaml --steps 1000 -o runs/short   # file + overrides
      edgesr train rlfn_x4 --hr DIV2K/HR --steps 2000 --lr 1e-5 --val Set5 -o runs/ft   # fine-tune
      edgesr train edsr_baseline --scale 4 --init runs/x2/model_final.safetensors --init-cross-scale ...
      edgesr train --init my_rlfn.safetensors --hr DIV2K/HR -o runs/ft   # model detected from --init
      torchrun --nproc_per_node=4 --standalone -m edgesr.cli.main train rlfn ...        # DDP

    \b
    A run file (YAML, keys = TrainConfig fields):
      model: rlfn_s
      scale: 2
      hr_dir: DIV2K/HR
      steps: 200000
      stages: 3
      stage_overrides: [{}, {}, {loss: mse, lr: 2.0e-5}]
      betas: [0.9, 0.99]
      output_dir: runs/rlfn_s_x2
    """
    from edgesr.train import train
    from edgesr.train.distributed import _env_int

    given = {name: value for name, value in options.items()
             if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT}
    result = train(build_config(model_name, config_file, given))
    if _env_int("RANK", 0) != 0:
        return
    if result.init:
        click.echo(f"init: {result.init['mode']} from {result.init['source']}"
                   + (f" (skipped {', '.join(result.init['skipped'])})" if result.init.get("skipped") else ""))
    for rec in result.val_history:
        click.echo(f"  step {rec['step']:>7}  stage {rec['stage']}  PSNR {rec['psnr']:.4f} dB  SSIM {rec['ssim']:.5f}")
    summary = f"trained {result.steps} steps in {result.seconds:.1f} s"
    if result.best_psnr is not None:
        summary += f"; best PSNR {result.best_psnr:.4f} dB at step {result.best_step}"
    click.echo(summary)
    click.echo(f"weights: {result.final_weights}")
    if result.folded_weights:
        click.echo(f"folded weights: {result.folded_weights} (max |diff| {result.fold['max_abs_diff']:.2e})")
