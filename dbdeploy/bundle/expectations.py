"""Builders for the expectation entries operations put in the manifest (see Operation.expects).

They drive ``dbdeploy verify`` and the generated pytest file, so they carry what a reviewer
would check by hand: types, nullability, defaults, constraint definitions, index keys, seed keys.
"""

from __future__ import annotations

import datetime
import decimal
import uuid

from pglast.visitors import Visitor

from dbdeploy.sql import column_default, parse_statements


def schema(name: str, present: bool = True) -> dict:
    return {"object": "schema", "name": name, "present": present}


def table(name: str, present: bool = True) -> dict:
    return {"object": "table", "name": name, "present": present}


def column(table_name: str, name: str, present: bool = True, not_null: bool | None = None,
           type_name: str | None = None, default: str | None = None, identity: bool = False) -> dict:
    entry = {"object": "column", "table": table_name, "name": name, "present": present}
    if present and type_name is not None:
        # the generated test probes the default in a column definition: DEFAULT needs the safe form
        entry.update(not_null=not_null, type=type_name, default=column_default(default) if default else None,
                     identity=identity)
    return entry


def constraint(table_name: str, name: str, present: bool = True, requires_table: str | None = None,
               columns=(), kind: str | None = None, **details) -> dict:
    entry = {"object": "constraint", "table": table_name, "name": name, "present": present,
             "columns": sorted(columns), "kind": kind}
    if requires_table:
        entry["requires_table"] = requires_table
    entry.update(details)
    return entry


def index(qualified_name: str, table_name: str, present: bool = True, columns=(), definition=None) -> dict:
    entry = {"object": "index", "name": qualified_name, "table": table_name, "present": present,
             "columns": sorted(columns)}
    if definition is not None:
        entry["definition"] = {"unique": definition.unique, "method": definition.method,
                               "keys": list(definition.columns), "include": list(definition.include),
                               "where": definition.where}
    return entry


def backfill(table_name: str, progress_table: str, where: str | None, set_columns=(),
             where_columns=()) -> dict:
    return {"object": "backfill", "table": table_name, "name": progress_table, "where": where,
            "set": sorted(set_columns), "where_columns": sorted(where_columns), "present": True}


def seed_rows(table_name: str, key_columns, rows, log_table: str) -> dict:
    keys = [{c: json_value(row[c]) for c in key_columns} for row in rows]
    return {"object": "rows", "table": table_name, "name": log_table, "key_columns": list(key_columns),
            "keys": keys, "present": True}


def sql_check(text: str, name: str) -> dict:
    """A RawSQL ``verify`` query. ``relations`` lists the schema-qualified tables it reads, so a check
    is known to be superseded once a later applied version drops one of them."""
    return {"object": "sql", "name": name, "sql": text, "present": True, "relations": _relations(text)}


class _RelationCollector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def visit_RangeVar(self, ancestors, node):  # noqa: N802 (pglast visitor naming)
        if node.schemaname:
            self.names.add(f"{node.schemaname}.{node.relname}")


def _relations(text: str) -> list[str]:
    collector = _RelationCollector()
    for statement in parse_statements(text):
        collector(statement.stmt)
    return sorted(collector.names)


def json_value(value):
    """Seed key values as JSON: dates, decimals and UUIDs as their text form (PostgreSQL casts it)."""
    if isinstance(value, datetime.date | datetime.time | decimal.Decimal | uuid.UUID):
        return str(value)
    return value
