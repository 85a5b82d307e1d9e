"""Entry point. User errors print one clear line (exit 2); anything else is a bug and keeps its traceback."""
from __future__ import annotations

import importlib
import logging
import sys

import click

from edgesr import __version__
from edgesr.errors import EdgesrError, UserInputError

# command name -> module in edgesr.cli that defines `command`; imported lazily so `--help`
# never loads heavy backends.
COMMANDS = {
    "bench": "bench_cmd",
    "models": "models_cmd",
    "eval": "eval_cmd",
    "upscale": "upscale_cmd",
    "export": "export_cmd",
    "train": "train_cmd",
    "prune": "prune_cmd",
    "trt-check": "trt_check_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = COMMANDS.get(name)
        if module is None:
            return None
        return importlib.import_module(f"edgesr.cli.{module}").command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgesr")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """edgesr: efficient super-resolution from PyTorch to fast engines."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> None:
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


if __name__ == "__main__":
    main()
