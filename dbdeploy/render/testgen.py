"""The generated pytest file of a bundle: what the spec says the database holds after apply,
and after rollback.

The checks themselves live once, in :mod:`dbdeploy.bundle.catalog_checks` (which ``dbdeploy verify``
imports too); each generated file embeds a copy of them and its bundle's own expectations (from the
operations' ``expects()``), so the file needs nothing but pytest and psycopg.
"""

from __future__ import annotations

import pprint
from pathlib import Path

import jinja2

from dbdeploy.bundle import catalog_checks
from dbdeploy.bundle.expectations import Expectation, Rollback, after_rollback, to_json
from dbdeploy.bundle.schemas import BACKUP_SCHEMA, HISTORY_SCHEMA
from dbdeploy.model.names import split_table
from dbdeploy.ops.common import rollback_backup_prefix

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("dbdeploy.render", "templates"),
    autoescape=False,  # noqa: S701 — Python source; data is embedded with pprint/tojson
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def test_file_name(folder: str) -> str:
    """The generated test file's name in bundle folder ``folder``."""
    return f"test_{folder}.py"


_EMBED_MARKER = "# ---- EMBED:"


def embedded_checks() -> str:
    """The source of :mod:`dbdeploy.bundle.catalog_checks` below its EMBED marker line, as the
    generated test files carry it (the module's docstring and imports stay behind: the template
    imports the same names)."""
    text = Path(catalog_checks.__file__).read_text(encoding="utf-8")
    return text[text.index("\n", text.index(_EMBED_MARKER)) + 1:].strip() + "\n"


def rolled_back_expectations(version: str, expects: list[Expectation], backup_schema: str = BACKUP_SCHEMA,
                             history_schema: str = HISTORY_SCHEMA) -> list[dict]:
    """After rollback: what the migration created is gone, what it dropped is back, and data it
    removed has a copy in ``backup_schema`` — each kind's :meth:`Expectation.after_rollback`, as JSON."""
    rollback = Rollback.of(version, expects, backup_schema, history_schema,
                           lambda table: rollback_backup_prefix(version, f"{split_table(table)[1]}_seed"))
    return [e.to_json() for e in after_rollback(expects, rollback)]


def render_test_file(*, folder: str, label: str, name: str, version: str, source: str, checksum: str,
                     expects: list[Expectation], history_schema: str, backup_schema: str) -> str:
    """The generated pytest file of one bundle (Python source). ``expects`` are the operations'
    expectations (written as the manifest's JSON entries); the file checks them after apply
    (skipping those a later applied version supersedes), the rolled-back state with ``-m
    rolled_back``, the migration_log row and the sequences of the migration's tables."""
    applied = [e for e in to_json(expects) if e["object"] != "extension" or e["present"]]
    tables = catalog_checks.migration_tables(applied)
    return _ENV.get_template("test_bundle.py.j2").render(
        folder=folder, label=label, name=name, version=version, source=source, checksum=checksum,
        filename=test_file_name(folder), history_schema=history_schema, backup_schema=backup_schema,
        applied=_literal(applied),
        rolled_back=_literal(rolled_back_expectations(version, expects, backup_schema, history_schema)),
        tables=_literal(tables), has_tables=bool(tables), checks=embedded_checks())


def _literal(value) -> str:
    """A deterministic Python literal of JSON-like data."""
    return pprint.pformat(value, width=110, sort_dicts=True)
