"""The Typer application: thin commands over core functions.

Core code raises DbdeployError; :func:`main` prints its message (never a traceback) and exits
with its code: 0 ok, 1 failure or stale output, 2 bad spec / usage / configuration, 3 integrity or
lock refusal, 4 a privilege the role lacks, 5 the connection was lost mid-run (re-running resumes),
130 / 143 stopped by SIGINT / SIGTERM (the server-side statement cancelled).
"""

from __future__ import annotations

import signal
import sys

import typer

from dbdeploy import __version__
from dbdeploy.cli import check_command, deploy_commands, generate, lint, new, testing
from dbdeploy.errors import DbdeployError, Interrupted

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
testing.register(app)
check_command.register(app)


def _on_signal(signum: int, _frame) -> None:
    """SIGINT / SIGTERM: raise :class:`Interrupted` where the main thread is. psycopg, interrupted
    while it waits for the server, cancels the running statement on the server first; the executor
    then records the interruption and the CLI prints one line. A second signal ends dbdeploy at once."""
    signal.signal(signum, signal.SIG_DFL)
    raise Interrupted(signum)


def _say(text: str) -> None:
    from dbdeploy.executor.connection import redact_known

    typer.echo(redact_known(text), err=True)


def main() -> None:
    """Typer handles usage errors itself (exit 2); our own errors become one line and their code."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        app()
    except DbdeployError as exc:
        _say(f"error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        _say(f"error: stopped by {signal.Signals(signum).name}")
        sys.exit(128 + signum)
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg") and type(exc).__name__ in ("OperationalError",
                                                                                 "InterfaceError"):
            # Safety net: a connection that broke where the executor did not expect it.
            from dbdeploy.executor.connection import ConnectionLost

            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _say(f"error: lost the connection to the database: {text}; run the same command again")
            sys.exit(ConnectionLost.exit_code)
        # Safety net behind the executor's privilege preflight: a "permission denied" (SQLSTATE
        # 42501) it did not foresee is still one line and exit code 4, never a traceback.
        if type(exc).__module__.startswith("psycopg") and getattr(exc, "sqlstate", None) == "42501":
            from dbdeploy.errors import PrivilegeError

            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _say(f"error: {PrivilegeError(text)}: the role lacks a privilege; see \"Least-privilege "
                 "deploys\" in the README for what a DBA grants")
            sys.exit(PrivilegeError.exit_code)
        raise
