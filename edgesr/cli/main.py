"""Entry point. User errors print one clear line (exit 2), expected failures too (exit 1), and so do OS and
memory errors (`edgesr.errors.failure_message`); anything else is a bug and keeps its traceback. A failed run
removes the output folders it created and left empty."""
from __future__ import annotations

import importlib
import logging
import sys

import click

from edgesr import __version__
from edgesr.errors import EdgesrError, UserInputError, failure_message

# command name -> (module in edgesr.cli that defines `command`, the one-line summary `edgesr --help`
# lists). Modules are imported only when their command runs or shows its own help, so `edgesr --help`
# and `edgesr --version` never import torch or a backend.
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("bench_cmd", "Benchmark a model, artifact or suite and print a table."),
    "eval": ("eval_cmd", "Evaluate a model or an exported artifact (Y-channel PSNR/SSIM) on datasets."),
    "export": ("export_cmd", "Export a model to a deployable artifact with its sidecar."),
    "models": ("models_cmd", "List registered models and their pretrained variants."),
    "optimize": ("optimize_cmd", "Find the fastest deployable form of a model within a quality budget."),
    "prune": ("prune_cmd", "Prune a model's channels to a target, slice and fine-tune it."),
    "train": ("train_cmd", "Train or fine-tune a model on HR images."),
    "trt-check": ("trt_check_cmd", "Check a model or ONNX file against TensorRT's operator support."),
    "upscale": ("upscale_cmd", "Upscale an image with a model or an exported artifact."),
}


class LazyGroup(click.Group):
    """A group that lists its commands from `COMMANDS` and imports a command's module only to run it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, summary = COMMANDS[name]
        command = importlib.import_module(f"edgesr.cli.{module}").command
        command.short_help = summary
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgesr")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """edgesr: efficient super-resolution from PyTorch to fast engines."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> None:
    from edgesr.utils.atomic import forget_created_folders, remove_created_folders

    try:
        _run(argv)
    except BaseException:
        remove_created_folders()  # a failed run leaves no empty output folder behind
        raise
    forget_created_folders()


def _run(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="edgesr", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserInputError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except EdgesrError as exc:  # an expected failure (e.g. export parity), not a bug: no traceback
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # OS and memory errors: the machine's, not edgesr's; anything else is a bug
        failure = failure_message(exc)
        if failure is None:
            raise
        click.echo(f"Error: {failure[0]}", err=True)
        sys.exit(failure[1])


if __name__ == "__main__":
    main()
