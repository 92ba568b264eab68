"""``dbdeploy lint``: check the specs against the lint rules (exit 2 on error findings not allowed)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer


class Format(StrEnum):
    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    @app.command()
    def lint(
        specs: Path = typer.Option(None, "--specs", help="Folder of spec files (default: from config, or specs/)."),
        output: Format = typer.Option(Format.text, "--format", help="text for people, json for tools."),
    ) -> None:
        """Check the specs and their RawSQL for unsafe or regrettable changes.

        Exits 0 when there is no error-level finding (warnings are printed), 2 when an error-level
        finding is not allowed by its operation (allow={"rule-id": "reason"}) or a spec is invalid.
        """
        from dbdeploy.executor.config import load_config
        from dbdeploy.lint import lint_specs
        from dbdeploy.lint.report import render_json, render_text

        report = lint_specs(specs or load_config().specs)
        typer.echo(render_json(report) if output is Format.json else render_text(report))
        if report.exit_code:
            raise typer.Exit(report.exit_code)
