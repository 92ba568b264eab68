"""``dbdeploy test``: apply, test, roll back, test, apply again, test — on a scratch database."""

from __future__ import annotations

import typer

from dbdeploy.errors import MigrationFailed


def register(app: typer.Typer) -> None:
    @app.command("test")
    def test_command(
        env: str = typer.Option("dev", "--env", help="Server to create the scratch database on (default: dev)."),
        dsn: str = typer.Option(None, "--dsn", help="Server to use instead of the environment's."),
        keep: bool = typer.Option(False, "--keep", help="Keep the scratch database for inspection."),
        existing: bool = typer.Option(False, "--existing",
                                      help="Run in the database --dsn/--env names instead of a scratch database "
                                           "(no CREATEDB needed); it must hold no applied version and is rolled "
                                           "back to 0 afterwards unless --keep."),
        plain: bool = typer.Option(False, "--plain", help="Plain log lines instead of progress bars."),
    ) -> None:
        """Run every bundle's generated tests through apply → rollback → apply on a scratch database."""
        from rich.console import Console
        from rich.table import Table

        from dbdeploy.cli.deploy_commands import warn_password_on_command_line
        from dbdeploy.cli.view import ProgressView
        from dbdeploy.executor.config import load_config, resolve_dsn
        from dbdeploy.executor.connection import secrets_of
        from dbdeploy.executor.pipeline import PHASES, run_pipeline

        warn_password_on_command_line(dsn)
        config = load_config()
        environment = config.environment(env)
        admin = resolve_dsn(config, environment, dsn)
        view = ProgressView(secrets_of(admin), force_plain=plain)
        outcome = run_pipeline(config, environment, admin, keep=keep, progress=view, existing=existing)

        table = Table(title="dbdeploy test")
        table.add_column("version")
        for phase in PHASES:
            table.add_column(phase)
        labels = list(dict.fromkeys(r.label for r in outcome.results if r.phase == "apply"))
        for label in labels:
            cells = []
            for phase in PHASES:
                found = [r for r in outcome.results if r.label == label and r.phase == phase]
                cells.append("not run" if not found else ("pass" if found[0].passed else "FAIL"))
            table.add_row(label, *cells)
        Console(width=120).print(table)
        for failure in (r for r in outcome.results if not r.passed):
            typer.echo(f"{failure.label} {failure.phase}:\n{failure.detail}", err=True)
        if outcome.kept:
            typer.echo(f"{'database left applied' if existing else 'scratch database kept'}: {outcome.scratch}")
        if not outcome.passed:
            raise MigrationFailed("dbdeploy test failed")
        typer.echo("dbdeploy test passed")
