"""``dbdeploy new NAME``: scaffold the next spec file."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from dbdeploy.errors import UsageError

_TEMPLATE = '''"""{title}."""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="{version}",
    name="{name}",
    description="{title}",
    operations=[
        CreateTable(
            table="public.{name}",
            columns=[
                Column(name="id", type="bigint", identity=True),
                Column(name="created_at", type="timestamptz", nullable=False, default="now()"),
            ],
            primary_key=["id"],
        ),
    ],
)
'''

# The scaffold also uses NAME as its table name, so it must be a valid identifier (≤ 63 bytes).
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")
_VERSION_PREFIX = re.compile(r"V(\d+)_")


def register(app: typer.Typer) -> None:
    @app.command()
    def new(
        name: str = typer.Argument(..., help="snake_case migration name, e.g. add_orders_status"),
        specs: Path = typer.Option(Path("specs"), "--specs", help="Folder of spec files."),
    ) -> None:
        """Create specs/V<next>_<NAME>.py with the next free version number."""
        if not _NAME.match(name):
            raise UsageError(f"name {name!r} must be snake_case (a-z, 0-9, _), starting with a letter, "
                             "at most 63 characters")
        specs.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in specs.glob("V*.py") if (m := _VERSION_PREFIX.match(p.name))]
        version = f"{(max(numbers) + 1) if numbers else 1:03d}"
        path = specs / f"V{version}_{name}.py"
        if path.exists():
            raise UsageError(f"{path} already exists")
        path.write_text(_TEMPLATE.format(version=version, name=name, title=name.replace("_", " ").capitalize()))
        typer.echo(f"created {path}")
