"""The Typer application: thin commands over core functions.

Core code raises DbdeployError; :func:`main` prints its message (never a traceback) and exits
with its code: 0 ok, 1 failure or stale output, 2 bad spec / usage / configuration, 3 integrity or
lock refusal, 4 a privilege the role lacks.
"""

from __future__ import annotations

import sys

import typer

from dbdeploy import __version__
from dbdeploy.cli import check_command, deploy_commands, generate, lint, new, test_command
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
lint.register(app)
new.register(app)
deploy_commands.register(app)
test_command.register(app)
check_command.register(app)


def main() -> None:
    """Typer handles usage errors itself (exit 2); our own errors become one line and their code."""
    try:
        app()
    except DbdeployError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        # Safety net behind the executor's privilege preflight: a "permission denied" (SQLSTATE
        # 42501) it did not foresee is still one line and exit code 4, never a traceback.
        if type(exc).__module__.startswith("psycopg") and getattr(exc, "sqlstate", None) == "42501":
            from dbdeploy.errors import PrivilegeError

            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            typer.echo(f"error: {PrivilegeError(text)}: the role lacks a privilege; see \"Least-privilege "
                       "deploys\" in the README for what a DBA grants", err=True)
            sys.exit(PrivilegeError.exit_code)
        raise
