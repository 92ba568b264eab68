"""The SQL every bundle carries to record itself, so a psql-only deployment is tracked too.

``migrations.migration_log`` keeps the seed example's columns plus checksum and run details;
``migrations.migration_objects`` records what a migration created, so its rollback drops only
that. Both schemas are closed to PUBLIC.

The schemas are created only when missing: ``CREATE SCHEMA IF NOT EXISTS`` checks the CREATE
privilege on the database *before* it looks whether the schema exists, so it would fail for a
least-privilege role whose schemas a DBA created in advance (README, "Least-privilege deploys").
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from dbdeploy.bundle import trust
from dbdeploy.sql import acl, ident, literal, render
from dbdeploy.sql.blocks import block, do_block, if_then

S = sql.SQL

LOCK_TIMEOUT = "5s"


def _log(schema: str) -> sql.Identifier:
    return ident(schema, "migration_log")


def ensure_schema(schema: str) -> str:
    """A DO block that creates ``schema`` only when it is missing and then gives it the ACL owner +
    configured backup readers whatever default privileges granted (:mod:`dbdeploy.sql.acl`; an
    existing schema gets it from the preamble's sweep, after the trust check). A missing schema that the role
    may not create stops with an exception naming the privilege and the statement a DBA runs."""
    name = literal(schema)
    missing = S("NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {})").format(name)
    refuse = S(
        "RAISE EXCEPTION 'dbdeploy: schema % does not exist and role % has no CREATE privilege on database %"
        " to create it', {name}, current_user, pg_catalog.current_database()\n"
        "    USING HINT = {run} || pg_catalog.quote_ident(current_user) || {see};"
    ).format(name=name, run=literal(f"Have a DBA run: CREATE SCHEMA {render(ident(schema))} AUTHORIZATION "),
             see=literal('; (see "Least-privilege deploys" in the dbdeploy README)'))
    return do_block(block(
        if_then(missing,
                if_then(S("NOT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')"), refuse),
                S("CREATE SCHEMA {};").format(ident(schema)),
                # A new schema is closed at once; an existing one is closed by the preamble's sweep
                # only after the trust check, so a write privilege another role holds is refused
                # (render.trust), the same under psql as under the executor, never silently repaired.
                acl.restrict_schema(schema)),
    ))


def ensure_tables(history_schema: str, backup_schema: str, owners: Sequence[str] = (),
                  backup_readers: tuple[str, ...] = ()) -> list[str]:
    """The preamble every bundle starts with: session settings (among them the configured
    ``backup_readers``), dbdeploy's two schemas (created only when missing), the trust check on
    them (``render.trust``: refuses before any write when an object in them is not owned by the
    deploying role, a configured ``owners`` role or a superuser, or could run code or be changed
    by another role) and the history tables the bundle itself writes; last, every relation in
    both schemas that the role owns gets the ACL owner + backup readers (also what earlier
    dbdeploy versions created)."""
    return [ensure_schema(history_schema) if s is None else s if isinstance(s, str) else render(s) for s in (
        # psql lexes each later line with the server's standard_conforming_strings and sends the
        # file's UTF-8 bytes as client_encoding says: fixing both makes psql read and send the
        # statements exactly as the executor's lexer (dbdeploy.sql.psql) does, on any server.
        S("SET client_encoding = 'UTF8';"),
        S("SET standard_conforming_strings = on;"),
        S("SET lock_timeout = {};").format(literal(LOCK_TIMEOUT)),
        # Built-ins resolve to pg_catalog and nothing resolves to a temporary schema, whatever the
        # caller's search_path: a hostile object named like a built-in cannot hijack the bundle.
        S("SET search_path = pg_catalog, pg_temp;"),
        acl.set_readers(backup_readers),
        None,
        ensure_schema(backup_schema),
        trust.check_block(history_schema, backup_schema, owners),
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
    )] + [acl.do(acl.sweep_block(history_schema, backup_schema))]


_ENVIRONMENT = S("COALESCE(pg_catalog.current_setting('dbdeploy.environment', true), 'psql')")
_TOOL_VERSION = S("pg_catalog.current_setting('dbdeploy.version', true)")
_HOST = S("COALESCE(pg_catalog.inet_client_addr()::text, 'local')")


def forward_start(history_schema: str, version: str, script: str, description: str, checksum: str) -> list[str]:
    log = _log(history_schema)
    # A version the log knows (applied, baselined, failed, interrupted) with another checksum:
    # the bundle changed after it ran. Applied → never edit it; failed → roll back first with the
    # bundle that ran (README "When a migration fails"), then this bundle starts from a clean slate.
    changed = S(
        "SELECT CASE status WHEN 'completed' THEN 'applied' WHEN 'baseline' THEN 'recorded by baseline'"
        " WHEN 'failed' THEN 'run and failed' ELSE 'started but not finished' END INTO v_status\n"
        "FROM {log} WHERE version = {v}"
        " AND status IN ('completed', 'baseline', 'failed', 'running', 'rolling_back') AND checksum <> {c};"
    ).format(log=log, v=literal(version), c=literal(checksum))
    guard = block(changed, if_then(S("v_status IS NOT NULL"), S(
        "RAISE EXCEPTION {msg}, v_status USING HINT = {hint};").format(
        msg=literal(f"dbdeploy V{version}: this version was % with a different checksum; "
                    "the bundle changed after it ran"),
        hint=literal(f"If V{version} is applied, never edit it: restore the applied bundle and add a new "
                     f"migration for the change. If V{version} failed, roll it back with the bundle that ran "
                     "(`dbdeploy rollback`, or that bundle's rollback file with psql), then apply this one."))))
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
    return [do_block(guard, declare=["v_status text"]), render(record)]


def forward_end(history_schema: str, version: str) -> list[str]:
    return [render(S(
        "UPDATE {log} SET status = 'completed', completed_at = pg_catalog.clock_timestamp(),\n"
        "    duration_ms = (EXTRACT(EPOCH FROM pg_catalog.clock_timestamp() - applied_at) * 1000)::bigint\n"
        "WHERE version = {v} AND status = 'running';").format(log=_log(history_schema), v=literal(version)))]


def rollback_start(history_schema: str, version: str, raw_sql: bool = False) -> list[str]:
    """Refuse to roll back a version recorded by ``dbdeploy baseline`` unless asked explicitly.

    A baselined version never ran: what its rollback would remove existed before dbdeploy. The
    refusal comes before the first change; ``dbdeploy rollback --include-baseline`` sets
    ``dbdeploy.rollback_baseline = on`` (psql: ``SET dbdeploy.rollback_baseline = on``), and a
    rollback with RawSQL written by hand also needs ``dbdeploy.rollback_baseline_rawsql = on``
    (``--include-baseline-rawsql``).
    """
    log = _log(history_schema)
    label = f"V{version}"
    refusals = [if_then(
        S("COALESCE(pg_catalog.current_setting('dbdeploy.rollback_baseline', true), '') <> 'on'"),
        S("RAISE EXCEPTION '%', {msg} USING HINT = {hint};").format(
            msg=literal(f"dbdeploy {label}: recorded by `dbdeploy baseline`, never run by dbdeploy; refusing to roll "
                        "it back (what its rollback removes existed before dbdeploy)"),
            hint=literal(f"A wrong baseline: `dbdeploy history forget --version {version}`. To roll it back anyway: "
                         "`dbdeploy rollback --include-baseline` (psql: SET dbdeploy.rollback_baseline = on).")))]
    if raw_sql:
        refusals.append(if_then(
            S("COALESCE(pg_catalog.current_setting('dbdeploy.rollback_baseline_rawsql', true), '')"
              " <> 'on'"),
            S("RAISE EXCEPTION '%', {msg} USING HINT = {hint};").format(
                msg=literal(f"dbdeploy {label}: recorded by `dbdeploy baseline`; its rollback runs RawSQL written by "
                            "hand, which would drop objects that existed before dbdeploy; refusing"),
                hint=literal(f"A wrong baseline: `dbdeploy history forget --version {version}`. To run that RawSQL "
                             "rollback anyway: add --include-baseline-rawsql (psql: SET "
                             "dbdeploy.rollback_baseline_rawsql = on)."))))
    guard = if_then(S("EXISTS (SELECT 1 FROM {log} WHERE version = {v} AND status = 'baseline')").format(
        log=log, v=literal(version)), *refusals)
    return [do_block(guard), render(S(
        "UPDATE {log} SET status = 'rolling_back' WHERE version = {v} AND status <> 'rolled_back';"
    ).format(log=log, v=literal(version)))]


def rollback_end(history_schema: str, version: str) -> list[str]:
    return [render(S(
        "UPDATE {log} SET status = 'rolled_back', rolled_back_at = pg_catalog.clock_timestamp()\n"
        "WHERE version = {v} AND status <> 'rolled_back';").format(log=_log(history_schema), v=literal(version)))]
