"""The ``deepen-export`` command.

Subcommands live in :mod:`deepen_export.commands`, one module per topic, each with a
``register(group)`` function; this module only builds the group and turns errors into exit codes:
0 success, 1 failure, 2 bad usage. Errors are printed as one line; ``--verbose`` adds the trace.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback
from typing import Any

import click

from deepen_export import __version__
from deepen_export.errors import DeepenExportError

__all__ = ["main"]


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (DeepenExportError, OSError, ValueError) as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deepen-export")
@click.option("--verbose", "-v", is_flag=True, help="Print the full trace on errors.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Fetch labels from Deepen AI and convert them to training and analytics formats.

    \b
    Example:
      deepen-export convert labels.json --to coco -o out/coco
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


def _register_all() -> None:
    from deepen_export import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"deepen_export.commands.{info.name}")
        module.register(main)


_register_all()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
