"""The generated pytest file of a bundle: what the spec says the database holds after apply,
and after rollback.

The checks themselves live once in the template; each bundle embeds its own expectations
(from the operations' ``expects()``), so the file needs nothing but pytest and psycopg.
"""

from __future__ import annotations

import pprint

import jinja2

from dbdeploy.ops.common import rollback_backup_prefix
from dbdeploy.spec.names import split_table

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("dbdeploy.render", "templates"),
    autoescape=False,  # noqa: S701 — Python source; data is embedded with pprint/tojson
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def test_file_name(folder: str) -> str:
    return f"test_{folder}.py"


def rolled_back_expectations(version: str, expects: list[dict]) -> list[dict]:
    """After rollback: what the migration created is gone, what it dropped is back, and data it
    removed has a copy in the backup schema."""
    created_tables = {e["name"] for e in expects if e["object"] == "table" and e["present"]}
    result: list[dict] = []
    for e in expects:
        kind, present = e["object"], e["present"]
        inside_new_table = e.get("table") in created_tables
        if kind == "table":
            result.append({"object": "table", "name": e["name"], "present": not present})
        elif kind == "schema" and present and e["name"] != "public":
            result.append({"object": "schema", "name": e["name"], "present": False})
        elif kind in ("column", "constraint", "index") and not inside_new_table:
            entry = {k: e[k] for k in ("object", "name", "table") if k in e}
            entry["present"] = not present
            result.append(entry)
        elif kind == "backfill":
            result.append({"object": "table", "name": e["name"], "present": False})
        elif kind == "rows" and not inside_new_table:
            # (a table the migration created is dropped whole by its rollback, rows copied out by the drop)
            result.append(dict(e, present=False))
            prefix = rollback_backup_prefix(version, f"{split_table(e['table'])[1]}_seed")
            result.append({"object": "backup", "name": prefix, "present": True,
                           "what": f"the seed rows of {e['table']} removed by the rollback"})
    return result


def render_test_file(*, folder: str, label: str, name: str, version: str, source: str, checksum: str,
                     expects: list[dict], history_schema: str, backup_schema: str) -> str:
    applied = [e for e in expects if e["object"] != "extension" or e["present"]]
    return _ENV.get_template("test_bundle.py.j2").render(
        folder=folder, label=label, name=name, version=version, source=source, checksum=checksum,
        filename=test_file_name(folder), history_schema=history_schema, backup_schema=backup_schema,
        applied=_literal(applied), rolled_back=_literal(rolled_back_expectations(version, expects)))


def _literal(value) -> str:
    """A deterministic Python literal of JSON-like data."""
    return pprint.pformat(value, width=110, sort_dicts=True)
