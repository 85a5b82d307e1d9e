"""`edgesr --version`, `edgesr --help` and `import edgesr` stay light: no torch, no model zoo.

Each check runs in a fresh interpreter (this one has torch loaded already) and reports which modules
the command left in `sys.modules`.
"""
from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from edgesr.cli.main import COMMANDS, cli

_PROBE = """
import json, sys
from edgesr.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(*argv: str) -> tuple[str, list[str]]:
    """(stdout before the module list, modules loaded) after running `edgesr *argv` in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=120,
                          check=True)
    *text, modules = proc.stdout.rstrip("\n").split("\n")
    return "\n".join(text), json.loads(modules)


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("-h",)])
def test_version_and_help_do_not_import_torch(argv: tuple[str, ...]) -> None:
    out, modules = _modules_after(*argv)
    assert "torch" not in modules
    assert not [m for m in modules if m.startswith("edgesr.models")]
    if argv == ("--version",):
        assert out.startswith("edgesr, version ")
    else:
        for name in COMMANDS:
            assert f"  {name} " in out


def test_import_edgesr_is_light_and_create_model_still_works() -> None:
    code = ("import json, sys, edgesr; before = sorted(sys.modules); edgesr.create_model('rlfn', scale=2); "
            "print(json.dumps([before, 'torch' in sys.modules, 'edgesr.models.rlfn' in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    before, torch_after, zoo_after = json.loads(proc.stdout)
    assert "torch" not in before and "edgesr.models" not in before
    assert torch_after and zoo_after


def test_unknown_attribute_is_an_attribute_error() -> None:
    import edgesr

    with pytest.raises(AttributeError, match="no_such_name"):
        edgesr.no_such_name  # noqa: B018


def test_every_listed_command_loads_under_its_name() -> None:
    ctx = click.Context(cli)
    for name, (_, summary) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=200) == summary
