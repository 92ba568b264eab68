"""Builders for the expectation entries operations put in the manifest (see Operation.expects)."""

from __future__ import annotations


def schema(name: str, present: bool = True) -> dict:
    return {"object": "schema", "name": name, "present": present}


def table(name: str, present: bool = True) -> dict:
    return {"object": "table", "name": name, "present": present}


def column(table_name: str, name: str, present: bool = True, not_null: bool | None = None,
           type_name: str | None = None) -> dict:
    entry = {"object": "column", "table": table_name, "name": name, "present": present}
    if present:
        entry["not_null"] = not_null
        entry["type"] = type_name
    return entry


def constraint(table_name: str, name: str, present: bool = True, requires_table: str | None = None,
               columns=()) -> dict:
    entry = {"object": "constraint", "table": table_name, "name": name, "present": present,
             "columns": sorted(columns)}
    if requires_table:
        entry["requires_table"] = requires_table
    return entry


def index(qualified_name: str, table_name: str, present: bool = True, columns=()) -> dict:
    return {"object": "index", "name": qualified_name, "table": table_name, "present": present,
            "columns": sorted(columns)}


def backfill(table_name: str, progress_table: str, where: str | None) -> dict:
    return {"object": "backfill", "table": table_name, "name": progress_table, "where": where, "present": True}


def sql_check(text: str, name: str) -> dict:
    return {"object": "sql", "name": name, "sql": text, "present": True}
