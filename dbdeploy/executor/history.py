"""The history the executor keeps next to the log the bundles write themselves.

- ``migration_log``: one row per version (created by every bundle's preamble; the executor adds
  environment, host, rows affected and dbdeploy's version);
- ``migration_events``: every apply, failure (with the failing statement and error), rollback
  and baseline, never updated;
- ``performance_log``: one row per step run: start, end, rows affected, attempts;
- ``migration_scripts``: the rollback file of every bundle the executor started to apply, keyed
  by version and checksum, so a failed version can be rolled back with the bundle that ran even
  after ``generated/`` was regenerated (README "When a migration fails").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from dbdeploy.bundle.schemas import BACKUP_SCHEMA
from dbdeploy.sql import acl

S = sql.SQL


_TABLES = ("migration_log", "migration_objects", "migration_events", "performance_log", "migration_scripts")


def ensure_history(conn: psycopg.Connection, schema: str, backup_schema: str = BACKUP_SCHEMA,
                   owners: tuple[str, ...] = ()) -> None:
    """Create the history tables once; a database that has them costs one catalog query. ``owners``:
    the configured trusted owner roles (the bundles' preamble, run here, checks them)."""
    names = [sql.Identifier(schema, t).as_string(conn) for t in _TABLES]
    present = conn.execute("SELECT count(pg_catalog.to_regclass(n)) FROM pg_catalog.unnest(%s::text[]) AS n",
                           [names]).fetchone()[0]
    if present == len(_TABLES) and conn.execute(
            "SELECT pg_catalog.to_regnamespace(%s) IS NOT NULL", [sql.Identifier(backup_schema).as_string(conn)]
    ).fetchone()[0]:
        return
    from dbdeploy.bundle.bookkeeping import ensure_tables  # the spec machinery, only when needed

    h = sql.Identifier(schema)
    with conn.transaction():
        for statement in ensure_tables(schema, backup_schema, owners):
            if not statement.startswith("SET "):
                conn.execute(statement)
        conn.execute(S(
            "CREATE TABLE IF NOT EXISTS {}.migration_events (\n"
            "    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
            "    version text NOT NULL,\n"
            "    event text NOT NULL,\n"
            "    environment text,\n"
            "    db_user text NOT NULL DEFAULT current_user,\n"
            "    os_user text,\n"
            "    host text,\n"
            "    dbdeploy_version text,\n"
            "    at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),\n"
            "    duration_ms bigint,\n"
            "    rows_affected bigint,\n"
            "    statement text,\n"
            "    error text,\n"
            "    details jsonb\n"
            ")").format(h))
        conn.execute(S(
            "CREATE TABLE IF NOT EXISTS {}.performance_log (\n"
            "    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
            "    version text NOT NULL,\n"
            "    direction text NOT NULL,\n"
            "    step integer NOT NULL,\n"
            "    kind text NOT NULL,\n"
            "    target text,\n"
            "    started_at timestamptz NOT NULL,\n"
            "    ended_at timestamptz NOT NULL,\n"
            "    duration_ms bigint NOT NULL,\n"
            "    rows_affected bigint,\n"
            "    attempts integer NOT NULL DEFAULT 1,\n"
            "    environment text\n"
            ")").format(h))
        conn.execute(S(
            "CREATE TABLE IF NOT EXISTS {}.migration_scripts (\n"
            "    version text NOT NULL,\n"
            "    checksum text NOT NULL,\n"
            "    rollback_name text NOT NULL,\n"
            "    rollback_sql text NOT NULL,\n"
            "    stored_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),\n"
            "    PRIMARY KEY (version, checksum)\n"
            ")").format(h))
        # Owner + backup readers only (the session's dbdeploy.backup_readers), default privileges undone.
        conn.execute(acl.do(acl.sweep_block(schema, backup_schema)))


@dataclass(frozen=True)
class LogRow:
    version: str
    status: str | None
    checksum: str | None
    applied_by: str | None
    applied_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    environment: str | None
    notes: str | None


def read_log(conn: psycopg.Connection, schema: str) -> dict[str, LogRow]:
    """The migration log, or {} when the database has never seen a bundle (read-only)."""
    exists = conn.execute("SELECT pg_catalog.to_regclass(%s)",
                          [sql.Identifier(schema, "migration_log").as_string(conn)]).fetchone()[0]
    if exists is None:
        return {}
    rows = conn.execute(S(
        "SELECT version, status, checksum, applied_by, applied_at, completed_at, duration_ms, environment, notes "
        "FROM {}.migration_log").format(sql.Identifier(schema))).fetchall()
    return {int_key(r[0]): LogRow(*r) for r in rows}


def int_key(version: str) -> str:
    """Versions compare by number ('1' and '001' are the same migration)."""
    return str(int(version))


def record_event(conn: psycopg.Connection, schema: str, *, version: str, event: str, environment: str,
                 os_user: str, host: str, tool_version: str, duration_ms: int | None = None,
                 rows_affected: int | None = None, statement: str | None = None, error: str | None = None,
                 details: dict | None = None) -> None:
    conn.execute(S(
        "INSERT INTO {}.migration_events (version, event, environment, os_user, host, dbdeploy_version,"
        " duration_ms, rows_affected, statement, error, details) VALUES"
        " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)").format(sql.Identifier(schema)),
        [version, event, environment, os_user, host, tool_version, duration_ms, rows_affected, statement, error,
         json.dumps(details) if details is not None else None])


def record_step(conn: psycopg.Connection, schema: str, *, version: str, direction: str, step, started: datetime,
                ended: datetime, rows: int, attempts: int, environment: str) -> None:
    conn.execute(S(
        "INSERT INTO {}.performance_log (version, direction, step, kind, target, started_at, ended_at,"
        " duration_ms, rows_affected, attempts, environment) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    ).format(sql.Identifier(schema)),
        [version, direction, step.number, step.kind, step.target, started, ended,
         int((ended - started).total_seconds() * 1000), rows, attempts, environment])


def set_status(conn: psycopg.Connection, schema: str, version: str, status: str, notes: str | None = None,
               **columns) -> None:
    assignments = [S("status = %s"), S("notes = %s")]
    values: list = [status, notes]
    for column, value in columns.items():
        assignments.append(S("{} = %s").format(sql.Identifier(column)))
        values.append(value)
    conn.execute(S("UPDATE {}.migration_log SET {} WHERE version = %s").format(
        sql.Identifier(schema), S(", ").join(assignments)), [*values, version])


def store_rollback(conn: psycopg.Connection, schema: str, *, version: str, checksum: str, name: str,
                   text: str) -> None:
    """Keep the rollback file of the bundle about to run (one row per version and checksum)."""
    conn.execute(S(
        "INSERT INTO {}.migration_scripts (version, checksum, rollback_name, rollback_sql) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (version, checksum) DO UPDATE SET rollback_sql = EXCLUDED.rollback_sql,"
        " rollback_name = EXCLUDED.rollback_name, stored_at = EXCLUDED.stored_at").format(sql.Identifier(schema)),
        [version, checksum, name, text])


def stored_rollback(conn: psycopg.Connection, schema: str, version: str, checksum: str) -> tuple[str, str] | None:
    """(file name, SQL) of the rollback stored when ``version`` with ``checksum`` was applied, or None."""
    exists = conn.execute("SELECT pg_catalog.to_regclass(%s)",
                          [sql.Identifier(schema, "migration_scripts").as_string(conn)]).fetchone()[0]
    if exists is None:
        return None
    row = conn.execute(S("SELECT rollback_name, rollback_sql FROM {}.migration_scripts"
                         " WHERE version = %s AND checksum = %s").format(sql.Identifier(schema)),
                       [version, checksum]).fetchone()
    return (row[0], row[1]) if row else None


def forget(conn: psycopg.Connection, schema: str, version: str) -> None:
    """Remove ``version`` from the migration log (the repair of a wrong history; events stay)."""
    conn.execute(S("DELETE FROM {}.migration_log WHERE version = %s").format(sql.Identifier(schema)), [version])


def unrecorded_interruptions(conn: psycopg.Connection, schema: str) -> list[tuple[str, str, int | None]]:
    """Versions left ``running`` or ``rolling_back`` whose interruption has no event yet:
    ``(version, status, step)``, where ``step`` is the step that was running — the one after the
    last step ``performance_log`` recorded for that run (None when unknown).

    Call it holding the deployment lock: then no run is working on them. A forward run counts from
    its ``applied_at`` (set when it started); a rollback from the version's last event that was not
    a rollback interruption.
    """
    h = sql.Identifier(schema)
    rows = conn.execute(S(
        "WITH since AS (SELECT l.version, l.status, CASE WHEN l.status = 'running' THEN l.applied_at ELSE"
        " (SELECT max(e.at) FROM {h}.migration_events e WHERE e.version = l.version"
        "  AND e.event <> 'rollback_interrupted') END AS started"
        " FROM {h}.migration_log l WHERE l.status IN ('running', 'rolling_back'))"
        " SELECT s.version, s.status, (SELECT max(p.step) FROM {h}.performance_log p WHERE p.version = s.version"
        "  AND p.direction = CASE WHEN s.status = 'running' THEN 'forward' ELSE 'rollback' END"
        "  AND p.started_at >= COALESCE(s.started, '-infinity'))"
        " FROM since s WHERE NOT EXISTS (SELECT 1 FROM {h}.migration_events e WHERE e.version = s.version"
        "  AND e.event = CASE WHEN s.status = 'running' THEN 'interrupted' ELSE 'rollback_interrupted' END"
        "  AND e.at >= COALESCE(s.started, '-infinity'))"
        " ORDER BY s.version").format(h=h)).fetchall()
    return [(version, status, None if done is None else done + 1) for version, status, done in rows]
