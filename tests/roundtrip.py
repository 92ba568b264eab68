"""Helpers for running generated bundles through forward/rollback round trips on a real server.

Kept separate from ``tests/test_ops_roundtrip.py`` so other test files (e.g. golden or executor
tests) can apply bundles and read the bookkeeping the same way.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from tests.catalog import snapshot
from tests.pg import TestDatabase


def run_sql_file(db: TestDatabase, path: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    """Run a bundle file with ``psql -v ON_ERROR_STOP=1 -f`` exactly as an operator would."""
    return db.psql_file(path, check=check)


def expect_failure(db: TestDatabase, path: Path, *fragments: str) -> subprocess.CompletedProcess:
    """Run ``path``; assert psql failed and its output contains every fragment."""
    proc = db.psql_file(path, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"expected {path.name} to fail, but it succeeded:\n{output}"
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in the output of {path.name}:\n{output}"
    return proc


def table_ident(table: str) -> sql.Identifier:
    schema, _, name = table.rpartition(".")
    return sql.Identifier(schema or "public", name)


def relation_exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def dict_rows(conn: psycopg.Connection, table: str, order_by: str | Sequence[str]) -> list[dict[str, Any]] | None:
    """Every row of ``table`` as a column → value dict (None if the table does not exist).

    Dicts rather than tuples: a rollback that re-adds a dropped column puts it last, and the
    contract is that every value comes back, not that the physical column order does.
    """
    if not relation_exists(conn, str(table_ident(table).as_string(conn))):
        return None
    columns = [order_by] if isinstance(order_by, str) else list(order_by)
    query = sql.SQL("SELECT * FROM {} ORDER BY {}").format(
        table_ident(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query)
        return cur.fetchall()


def data_snapshot(conn: psycopg.Connection, tables: dict[str, str | Sequence[str]]) -> dict[str, Any]:
    return {table: dict_rows(conn, table, order) for table, order in tables.items()}


def catalog(conn: psycopg.Connection) -> dict:
    return snapshot(conn)


def log_status(conn: psycopg.Connection, version: str) -> str | None:
    """``migrations.migration_log.status`` of ``version`` (None when there is no row/table)."""
    if not relation_exists(conn, "migrations.migration_log"):
        return None
    row = conn.execute("SELECT status FROM migrations.migration_log WHERE version = %s", (version,)).fetchone()
    return row[0] if row else None


def backup_tables(conn: psycopg.Connection, like: str = "%") -> list[str]:
    """Names of the tables in ``dbdeploy_backup`` matching a LIKE pattern, sorted."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'dbdeploy_backup' AND c.relkind = 'r' AND c.relname LIKE %s ORDER BY 1",
        (like,)).fetchall()
    return [r[0] for r in rows]


def constraint(conn: psycopg.Connection, table: str, name: str) -> tuple[str, bool] | None:
    """(definition, validated) of a constraint, or None."""
    row = conn.execute(
        "SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint"
        " WHERE conrelid = to_regclass(%s) AND conname = %s", (table, name)).fetchone()
    return (row[0], row[1]) if row else None


def index_valid(conn: psycopg.Connection, name: str) -> bool | None:
    row = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)).fetchone()
    return row[0] if row else None


def public_acl_entries(conn: psycopg.Connection, schema: str) -> list[str]:
    """Privileges PUBLIC holds on ``schema`` according to ``nspacl`` (grantee 0 = PUBLIC)."""
    rows = conn.execute(
        "SELECT a.privilege_type FROM pg_namespace n, aclexplode(n.nspacl) a"
        " WHERE n.nspname = %s AND a.grantee = 0 ORDER BY 1", (schema,)).fetchall()
    return [r[0] for r in rows]


def table_public_acl_entries(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.privilege_type FROM pg_class c, aclexplode(c.relacl) a"
        " WHERE c.oid = to_regclass(%s) AND a.grantee = 0 ORDER BY 1", (table,)).fetchall()
    return [r[0] for r in rows]
