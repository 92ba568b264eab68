"""The SQL every bundle carries to record itself, so a psql-only deployment is tracked too.

``migrations.migration_log`` keeps the seed example's columns plus checksum and run details;
``migrations.migration_objects`` records what a migration created, so its rollback drops only
that. Both schemas are closed to PUBLIC.
"""

from __future__ import annotations

from psycopg import sql

from dbdeploy.ops.common import do_block, if_then
from dbdeploy.sql import ident, literal, render

S = sql.SQL

LOCK_TIMEOUT = "5s"


def _log(schema: str) -> sql.Identifier:
    return ident(schema, "migration_log")


def ensure_tables(history_schema: str, backup_schema: str) -> list[str]:
    h = ident(history_schema)
    return [render(s) for s in (
        # psql lexes each later line with the server's standard_conforming_strings and sends the
        # file's UTF-8 bytes as client_encoding says: fixing both makes psql read and send the
        # statements exactly as the executor's lexer (dbdeploy.sql.psql) does, on any server.
        S("SET client_encoding = 'UTF8';"),
        S("SET standard_conforming_strings = on;"),
        S("SET lock_timeout = {};").format(literal(LOCK_TIMEOUT)),
        # Built-ins resolve to pg_catalog and nothing resolves to a temporary schema, whatever the
        # caller's search_path: a hostile object named like a built-in cannot hijack the bundle.
        S("SET search_path = pg_catalog, pg_temp;"),
        S("CREATE SCHEMA IF NOT EXISTS {};").format(h),
        S("REVOKE ALL ON SCHEMA {} FROM PUBLIC;").format(h),
        S("CREATE TABLE IF NOT EXISTS {} (\n"
          "    version text PRIMARY KEY,\n"
          "    script_name text,\n"
          "    description text,\n"
          "    applied_by text,\n"
          "    applied_at timestamptz,\n"
          "    completed_at timestamptz,\n"
          "    status text,\n"
          "    notes text,\n"
          "    checksum text,\n"
          "    environment text,\n"
          "    duration_ms bigint,\n"
          "    rows_affected bigint,\n"
          "    dbdeploy_version text,\n"
          "    host text,\n"
          "    rolled_back_at timestamptz\n"
          ");").format(_log(history_schema)),
        S("CREATE TABLE IF NOT EXISTS {} (\n"
          "    version text NOT NULL,\n"
          "    object_type text NOT NULL,\n"
          "    object_name text NOT NULL,\n"
          "    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
          "    PRIMARY KEY (version, object_type, object_name)\n"
          ");").format(ident(history_schema, "migration_objects")),
        S("CREATE SCHEMA IF NOT EXISTS {};").format(ident(backup_schema)),
        S("REVOKE ALL ON SCHEMA {} FROM PUBLIC;").format(ident(backup_schema)),
    )]


_ENVIRONMENT = S("COALESCE(pg_catalog.current_setting('dbdeploy.environment', true), 'psql')")
_TOOL_VERSION = S("pg_catalog.current_setting('dbdeploy.version', true)")
_HOST = S("COALESCE(pg_catalog.inet_client_addr()::text, 'local')")


def forward_start(history_schema: str, version: str, script: str, description: str, checksum: str) -> list[str]:
    log = _log(history_schema)
    changed = S(
        "EXISTS (SELECT 1 FROM {log} WHERE version = {v} AND status = 'completed' AND checksum <> {c})"
    ).format(log=log, v=literal(version), c=literal(checksum))
    guard = if_then(changed, S(
        "RAISE EXCEPTION '%', {msg} USING HINT = {hint};").format(
        msg=literal(f"dbdeploy V{version}: this version was applied with a different checksum; "
                    "the bundle changed after it was applied"),
        hint=literal("Never edit an applied migration: restore the applied bundle and add a new "
                     "migration for the change.")))
    record = S(
        "INSERT INTO {log} AS l (version, script_name, description, applied_by, applied_at, status, checksum,\n"
        "    environment, dbdeploy_version, host)\n"
        "VALUES ({v}, {s}, {d}, current_user, pg_catalog.clock_timestamp(), 'running', {c},\n"
        "    {env}, {tool}, {host})\n"
        "ON CONFLICT (version) DO UPDATE SET status = 'running', applied_at = EXCLUDED.applied_at,\n"
        "    applied_by = EXCLUDED.applied_by, completed_at = NULL, checksum = EXCLUDED.checksum,\n"
        "    script_name = EXCLUDED.script_name, description = EXCLUDED.description,\n"
        "    environment = EXCLUDED.environment, dbdeploy_version = EXCLUDED.dbdeploy_version,\n"
        "    host = EXCLUDED.host, rolled_back_at = NULL\n"
        "WHERE l.status <> 'completed';"
    ).format(log=log, v=literal(version), s=literal(script), d=literal(description), c=literal(checksum),
             env=_ENVIRONMENT, tool=_TOOL_VERSION, host=_HOST)
    return [do_block(guard), render(record)]


def forward_end(history_schema: str, version: str) -> list[str]:
    return [render(S(
        "UPDATE {log} SET status = 'completed', completed_at = pg_catalog.clock_timestamp(),\n"
        "    duration_ms = (EXTRACT(EPOCH FROM pg_catalog.clock_timestamp() - applied_at) * 1000)::bigint\n"
        "WHERE version = {v} AND status = 'running';").format(log=_log(history_schema), v=literal(version)))]


def rollback_start(history_schema: str, version: str) -> list[str]:
    return [render(S(
        "UPDATE {log} SET status = 'rolling_back' WHERE version = {v} AND status <> 'rolled_back';"
    ).format(log=_log(history_schema), v=literal(version)))]


def rollback_end(history_schema: str, version: str) -> list[str]:
    return [render(S(
        "UPDATE {log} SET status = 'rolled_back', rolled_back_at = pg_catalog.clock_timestamp()\n"
        "WHERE version = {v} AND status <> 'rolled_back';").format(log=_log(history_schema), v=literal(version)))]
