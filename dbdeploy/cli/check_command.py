"""``dbdeploy check``: apply the specs' bundles to a throwaway database, report the first error of each."""

from __future__ import annotations

import signal
from pathlib import Path

import typer

from dbdeploy.errors import MigrationFailed, Stopped


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check_command(
        specs: Path = typer.Option(None, "--specs", help="Folder of spec files (default: from config, or specs/)."),
        dsn: str = typer.Option(None, "--dsn",
                                help="Server to create the scratch database on, instead of the embedded one "
                                     "(the role needs CREATEDB; no configured environment is ever used)."),
        rollback: bool = typer.Option(False, "--rollback",
                                      help="Also roll every bundle back (newest first) and apply it again."),
        plain: bool = typer.Option(False, "--plain", help="Plain log lines instead of progress bars."),
    ) -> None:
        """Apply the bundles the specs generate to a scratch database; report each bundle's first error
        with the spec file and line of its operation. Exit 1 if any bundle fails, 0 otherwise."""
        from dbdeploy.cli.scratch_check import run_check
        from dbdeploy.cli.view import ProgressView
        from dbdeploy.executor.config import load_config
        from dbdeploy.executor.connection import secrets_of

        config = load_config()
        specs = specs or config.specs
        if dsn:
            admin = dsn
        else:
            from dbdeploy.executor.embedded import embedded_dsn

            admin = embedded_dsn(config.state_dir / "pgdata")
        view = ProgressView(secrets_of(admin), force_plain=plain)
        try:
            result = run_check(config, specs, admin, rollback=rollback, progress=view)
        except (KeyboardInterrupt, Stopped) as exc:
            # run_check has dropped the scratch database on its way out; 130 (SIGINT) or 143 (SIGTERM)
            code = exc.exit_code if isinstance(exc, Stopped) else 128 + getattr(exc, "signum", signal.SIGINT)
            typer.echo("error: dbdeploy check interrupted; the scratch database was dropped", err=True)
            raise typer.Exit(code) from None
        for bundle in result.bundles:
            for line in bundle.lines():
                typer.echo(line)
        if not result.passed:
            failed = [b.label for b in result.bundles if b.status == "fail"]
            raise MigrationFailed(f"dbdeploy check: {', '.join(failed)} failed on a scratch database "
                                  f"({result.scratch}, dropped again); fix the spec lines named above, then run "
                                  "dbdeploy check again")
        checked = sum(b.status == "pass" for b in result.bundles)
        typer.echo(f"dbdeploy check passed: {checked} of {len(result.bundles)} bundle(s) applied cleanly "
                   f"on a scratch database ({result.scratch}, dropped again)")
