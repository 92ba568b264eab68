"""``apply``, ``rollback``, ``status``, ``verify`` and ``baseline``: thin wrappers over the executor."""

from __future__ import annotations

import json
import sys

import typer

from dbdeploy.errors import MigrationFailed, UsageError

ENV_HELP = "Environment from dbdeploy.toml (default dev: the embedded PostgreSQL when nothing is configured)."
DSN_HELP = "Connect here instead of the environment's DSN (the environment's guards still apply)."


def warn_password_on_command_line(dsn: str | None) -> None:
    """A password in ``--dsn`` is visible to every local user (``ps``, /proc) and in shell history:
    say so once, on stderr, with the alternatives (README "Security")."""
    from dbdeploy.executor.connection import has_password

    if dsn and has_password(dsn):
        typer.echo("warning: --dsn carries a password, which other users of this machine can read (ps, /proc) "
                   "and your shell history keeps; use dsn_env in dbdeploy.toml, a password file (PGPASSFILE, "
                   "~/.pgpass) or a service file (service=NAME with PGSERVICEFILE) instead", err=True)


def _deployment(env_name: str, dsn: str | None, lock_wait: float = 60.0, plain: bool = False):
    from dbdeploy.cli.view import ProgressView
    from dbdeploy.executor.config import load_config, resolve_dsn
    from dbdeploy.executor.connection import secrets_of
    from dbdeploy.executor.deploy import Deployment

    warn_password_on_command_line(dsn)
    config = load_config()
    env = config.environment(env_name)
    target = resolve_dsn(config, env, dsn)
    view = ProgressView(secrets_of(target), force_plain=plain)
    return Deployment(config=config, env=env, dsn=target, progress=view, lock_wait=lock_wait), view


def _confirm(deployment, yes: bool, action: str) -> bool:
    """Protected environments need --yes, or the environment's name typed on a terminal."""
    if yes or not deployment.env.protected:
        return yes
    if sys.stdin.isatty():
        typed = typer.prompt(f"{deployment.env.name} is protected. Type its name to {action}")
        if typed.strip() == deployment.env.name:
            return True
        raise UsageError("confirmation did not match; nothing was run")
    return False


def register(app: typer.Typer) -> None:
    @app.command()
    def apply(
        env: str = typer.Option("dev", "--env", help=ENV_HELP),
        dsn: str = typer.Option(None, "--dsn", help=DSN_HELP),
        to: str = typer.Option(None, "--to", help="Apply up to and including this version."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the statements and locks; change nothing."),
        yes: bool = typer.Option(False, "--yes", help="Confirm a protected environment."),
        allow_destructive: bool = typer.Option(False, "--allow-destructive",
                                               help="Allow bundles that drop tables or columns on a protected env."),
        lock_wait: float = typer.Option(60.0, "--lock-wait", help="Seconds to wait for another run's lock."),
        plain: bool = typer.Option(False, "--plain", help="Plain log lines instead of progress bars."),
    ) -> None:
        """Apply pending bundles in version order."""
        deployment, _view = _deployment(env, dsn, lock_wait, plain)
        confirmed = dry_run or _confirm(deployment, yes, "apply")
        result = deployment.apply(to=to, dry_run=dry_run, yes=confirmed, allow_destructive=allow_destructive)
        if dry_run:
            if not result.planned:
                typer.echo("-- nothing to apply")
            for label, lines in result.planned:
                typer.echo(f"-- {label}")
                typer.echo("\n".join(lines))
            return
        typer.echo(f"{deployment.env.name}: applied {', '.join(result.applied)}" if result.applied
                   else f"{deployment.env.name}: up to date")

    @app.command()
    def rollback(
        to: str = typer.Option(..., "--to", help="Roll back every applied version above this one (0: all)."),
        env: str = typer.Option("dev", "--env", help=ENV_HELP),
        dsn: str = typer.Option(None, "--dsn", help=DSN_HELP),
        yes: bool = typer.Option(False, "--yes", help="Confirm a protected environment."),
        include_baseline: bool = typer.Option(
            False, "--include-baseline",
            help="Also roll back versions recorded by `baseline` (never run by dbdeploy; refused without this)."),
        include_baseline_rawsql: bool = typer.Option(
            False, "--include-baseline-rawsql",
            help="Also run the hand-written RawSQL rollback of baselined versions (refused without this)."),
        lock_wait: float = typer.Option(60.0, "--lock-wait", help="Seconds to wait for another run's lock."),
        plain: bool = typer.Option(False, "--plain", help="Plain log lines instead of progress bars."),
    ) -> None:
        """Run rollback bundles newest first for every applied, failed or interrupted version above --to."""
        if not to.isdigit():
            raise UsageError("--to must be a version number (0 rolls back everything)")
        if include_baseline_rawsql and not include_baseline:
            raise UsageError("--include-baseline-rawsql needs --include-baseline as well (nothing was run)")
        deployment, _view = _deployment(env, dsn, lock_wait, plain)
        result = deployment.rollback(to=to, yes=_confirm(deployment, yes, "roll back"),
                                     include_baseline=include_baseline,
                                     include_baseline_rawsql=include_baseline_rawsql)
        typer.echo(f"{deployment.env.name}: rolled back {', '.join(result.rolled_back)}" if result.rolled_back
                   else f"{deployment.env.name}: nothing to roll back")

    @app.command()
    def status(
        env: str = typer.Option("dev", "--env", help=ENV_HELP),
        dsn: str = typer.Option(None, "--dsn", help=DSN_HELP),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Every version with its state: pending, applied, failed, rolled back, changed, edited."""
        from dbdeploy.executor.inspect import status as read_status

        deployment, _view = _deployment(env, dsn)
        rows = read_status(deployment.config, deployment.env, deployment.dsn)
        if as_json:
            from dbdeploy.executor.inspect import next_steps

            typer.echo(json.dumps([{**r.as_dict(), "next": "\n".join(next_steps([r], deployment.env.name, rows))
                                    or None} for r in rows], indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"dbdeploy status: {deployment.env.name}")
        for column in ("version", "name", "state", "applied by", "applied at", "duration ms"):
            table.add_column(column)
        for r in rows:
            table.add_row(r.version, r.name, r.state, r.applied_by or "", r.applied_at or "",
                          "" if r.duration_ms is None else str(r.duration_ms))
        Console(width=160).print(table)
        from dbdeploy.executor.inspect import next_steps, open_expansion_lines

        for line in open_expansion_lines(rows):
            typer.echo(line)
        for line in next_steps(rows, deployment.env.name):
            typer.echo(line)

    @app.command()
    def verify(
        env: str = typer.Option("dev", "--env", help=ENV_HELP),
        dsn: str = typer.Option(None, "--dsn", help=DSN_HELP),
    ) -> None:
        """Check that every applied migration's objects are present and valid; exit 1 on any problem."""
        from dbdeploy.executor.inspect import verify as run_verify

        deployment, _view = _deployment(env, dsn)
        problems = run_verify(deployment.config, deployment.env, deployment.dsn)
        if problems:
            raise MigrationFailed(f"verify found {len(problems)} problem(s) in {deployment.env.name}:\n  "
                                  + "\n  ".join(problems))
        typer.echo(f"{deployment.env.name}: verified, no problems")

    @app.command()
    def baseline(
        version: str = typer.Option(..., "--version", help="Record versions up to this one as applied."),
        env: str = typer.Option("dev", "--env", help=ENV_HELP),
        dsn: str = typer.Option(None, "--dsn", help=DSN_HELP),
        yes: bool = typer.Option(False, "--yes", help="Confirm a protected environment."),
        partial: bool = typer.Option(False, "--partial",
                                     help="Record only the versions whose objects the database holds."),
    ) -> None:
        """Record versions up to --version as applied without running them (adopting an existing database).

        Refused (exit 3, nothing recorded) unless the database holds what those bundles would make."""
        if not version.isdigit():
            raise UsageError("--version must be a version number")
        deployment, _view = _deployment(env, dsn)
        result = deployment.baseline(version=version, yes=_confirm(deployment, yes, "baseline"), partial=partial)
        typer.echo(f"{deployment.env.name}: recorded {', '.join(result.applied) or 'nothing new'} as applied"
                   + (f"; not recorded: {', '.join(result.skipped)}" if result.skipped else ""))

    history_app = typer.Typer(help="Inspect and repair the migration history.", no_args_is_help=True)
    app.add_typer(history_app, name="history")

    @history_app.command("forget")
    def forget(
        version: str = typer.Option(..., "--version", help="The version to remove from the history."),
        env: str = typer.Option("dev", "--env", help=ENV_HELP),
        dsn: str = typer.Option(None, "--dsn", help=DSN_HELP),
        yes: bool = typer.Option(False, "--yes", help="Confirm a protected environment."),
    ) -> None:
        """Remove a wrongly recorded version (a wrong baseline) from the history; nothing else is changed.

        Refused for a version dbdeploy applied (roll it back instead), for one that owns objects, and
        below another recorded version. Recorded as a `forget` event."""
        if not version.isdigit():
            raise UsageError("--version must be a version number")
        deployment, _view = _deployment(env, dsn)
        status = deployment.forget(version=version, yes=_confirm(deployment, yes, "change the history of"))
        typer.echo(f"{deployment.env.name}: forgot V{version} (was {status}); it is pending again")
