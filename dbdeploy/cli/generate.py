"""``dbdeploy generate``: write one bundle per migration, or check that generated/ is current."""

from __future__ import annotations

from pathlib import Path

import typer

from dbdeploy.errors import StaleBundleError


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        specs: Path = typer.Option(None, "--specs", help="Folder of spec files (default: from config, or specs/)."),
        out: Path = typer.Option(None, "--out", help="Folder for bundles (default: from config, or generated/)."),
        check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if generated/ is stale."),
    ) -> None:
        """Generate forward SQL, rollback SQL and a manifest for every migration in the specs folder.

        Specs with error-level lint findings that they do not allow are refused (exit 2, nothing written).
        """
        from dbdeploy.executor.config import load_config
        from dbdeploy.render.writer import build_bundles, compare, write

        config = load_config()
        specs = specs or config.specs
        out = out or config.generated
        bundles = build_bundles(specs, config.history_schema, lint=True, owners=config.owners,
                                backup_readers=config.backup_readers)
        if check:
            result = compare(bundles, out)
            if not result.clean:
                raise StaleBundleError(
                    f"{out} is out of date with {specs}:\n  " + "\n  ".join(result.lines())
                    + "\nrun `dbdeploy generate` and commit the result")
            typer.echo(f"{out} is up to date ({len(bundles)} bundle(s))")
            return
        result = write(bundles, out)
        for line in result.lines():
            typer.echo(f"updated {line}" if not line.startswith("extra") else f"removed {line[9:]}")
        typer.echo(f"{len(bundles)} bundle(s) in {out}"
                   + ("" if not result.clean else " (already up to date)"))
