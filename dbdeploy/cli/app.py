"""The Typer application: thin commands over core functions.

Core code raises DbdeployError; :func:`main` prints its message (never a traceback) and exits
with its code: 0 ok, 1 failure or stale output, 2 bad spec / usage / configuration.
"""

from __future__ import annotations

import sys

import typer

from dbdeploy import __version__
from dbdeploy.cli import deploy_commands, generate, new
from dbdeploy.errors import DbdeployError

app = typer.Typer(
    name="dbdeploy",
    help="PostgreSQL migrations from typed Python specs: generate reviewed bundles, apply them safely.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dbdeploy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """dbdeploy: PostgreSQL migrations from typed Python specs."""


generate.register(app)
new.register(app)
deploy_commands.register(app)


def main() -> None:
    try:
        app(standalone_mode=False)
    except DbdeployError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
