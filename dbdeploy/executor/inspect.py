"""status and verify: what the history says, and whether the database matches it."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from dbdeploy.executor import history
from dbdeploy.executor.bundles import BundleOnDisk, load_bundles
from dbdeploy.executor.config import Config, Environment
from dbdeploy.executor.connection import connect

STATE_NAMES = {
    None: "pending", "completed": "applied", "baseline": "applied (baseline)", "failed": "failed",
    "running": "interrupted", "rolling_back": "rollback interrupted", "rolled_back": "rolled back",
}


@dataclass(frozen=True)
class VersionStatus:
    version: str
    name: str
    state: str
    applied_by: str | None
    applied_at: str | None
    duration_ms: int | None
    environment: str | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def status(config: Config, env: Environment, dsn: str) -> list[VersionStatus]:
    bundles = load_bundles(config.generated)
    with connect(dsn, env.name) as conn:
        log = history.read_log(conn, config.history_schema)
    rows = []
    seen = set()
    for bundle in bundles:
        key = history.int_key(bundle.version)
        seen.add(key)
        row = log.get(key)
        state = STATE_NAMES.get(row.status if row else None, row.status if row else "pending")
        if row and row.status in ("completed", "baseline") and row.checksum and row.checksum != bundle.checksum:
            state = "changed"
        elif bundle.problems():   # apply would refuse (exit 3): say so here too
            state = "edited"
        rows.append(VersionStatus(bundle.version, bundle.name, state, row.applied_by if row else None,
                                  row.applied_at.isoformat(timespec="seconds") if row and row.applied_at else None,
                                  row.duration_ms if row else None, row.environment if row else None))
    for key, row in sorted(log.items(), key=lambda kv: int(kv[0])):
        if key not in seen:
            rows.append(VersionStatus(row.version, "?", "bundle missing", row.applied_by,
                                      row.applied_at.isoformat(timespec="seconds") if row.applied_at else None,
                                      row.duration_ms, row.environment))
    return rows


def _expected_state(bundles: list[BundleOnDisk], log: dict) -> dict[tuple, tuple[str, dict]]:
    """Fold every applied migration's expectations, later ones replacing earlier ones."""
    final: dict[tuple, tuple[str, dict]] = {}
    for bundle in bundles:
        row = log.get(history.int_key(bundle.version))
        if not row or row.status not in ("completed", "baseline"):
            continue
        for entry in bundle.manifest.get("expects", []):
            if not entry["present"] and entry["object"] == "table":
                # Dropping a table takes its columns, constraints and indexes with it.
                final = {k: v for k, v in final.items() if v[1].get("table") != entry["name"]}
            if not entry["present"] and entry["object"] == "column":
                # Dropping a column takes the constraints and indexes that use it.
                final = {k: v for k, v in final.items()
                         if not (v[1].get("table") == entry["table"] and entry["name"] in v[1].get("columns", ()))}
            key = (entry["object"], entry.get("table"), entry["name"])
            final[key] = (bundle.label, entry)
    return final


def verify(config: Config, env: Environment, dsn: str) -> list[str]:
    """Problems found (empty when healthy): missing or unexpected objects, invalid indexes,
    NOT VALID constraints left behind, unfinished backfills, failed or interrupted versions."""
    bundles = load_bundles(config.generated)
    problems: list[str] = []
    with connect(dsn, env.name) as conn:
        log = history.read_log(conn, config.history_schema)
        for bundle in bundles:
            row = log.get(history.int_key(bundle.version))
            if row and row.status in ("failed", "running", "rolling_back"):
                problems.append(f"{bundle.label} is {STATE_NAMES[row.status]}; run apply (or rollback) again")
            elif row and row.status == "completed" and row.checksum != bundle.checksum:
                problems.append(f"{bundle.label} was applied with a different checksum than its bundle")
            problems += [f"{bundle.label}: {p}" for p in bundle.problems()]
        tables: set[str] = set()
        for (_obj, _table, _name), (label, entry) in _expected_state(bundles, log).items():
            problem = _check(conn, entry)
            if problem:
                problems.append(f"{label}: {problem}")
            if entry.get("table"):
                tables.add(entry["table"])
            elif entry["object"] == "table" and entry["present"]:
                tables.add(entry["name"])
        problems += _health(conn, sorted(tables))
    return problems


def _regclass(conn: psycopg.Connection, name: str):
    schema, _, rel = name.partition(".")
    ident = sql.Identifier(schema, rel).as_string(conn)
    return conn.execute("SELECT pg_catalog.to_regclass(%s)::oid", [ident]).fetchone()[0]


def _check(conn: psycopg.Connection, entry: dict) -> str | None:
    kind, name, present = entry["object"], entry["name"], entry["present"]
    if kind == "schema":
        found = conn.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", [name]).fetchone()
        return None if bool(found) == present else f"schema {name} {'missing' if present else 'still present'}"
    if kind == "extension":
        found = conn.execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = %s", [name]).fetchone()
        return None if found else f"extension {name} missing"
    if kind == "table":
        found = _regclass(conn, name) is not None
        return None if found == present else f"table {name} {'missing' if present else 'still present'}"
    if kind == "index":
        oid = _regclass(conn, name)
        if not present:
            return None if oid is None else f"index {name} still present"
        if oid is None:
            return f"index {name} missing"
        valid = conn.execute("SELECT indisvalid FROM pg_catalog.pg_index WHERE indexrelid = %s", [oid]).fetchone()
        return None if valid and valid[0] else f"index {name} is INVALID (a failed build); run apply again"
    table_oid = _regclass(conn, entry["table"]) if entry.get("table") else None
    if kind == "column":
        row = conn.execute("SELECT attnotnull FROM pg_catalog.pg_attribute WHERE attrelid = %s AND attname = %s"
                           " AND attnum > 0 AND NOT attisdropped", [table_oid, name]).fetchone() if table_oid else None
        where = f"column {entry['table']}.{name}"
        if not present:
            return None if row is None else f"{where} still present"
        if row is None:
            return f"{where} missing"
        if entry.get("not_null") and not row[0]:
            return f"{where} should be NOT NULL"
        return None
    if kind == "constraint":
        where = f"constraint {name} on {entry['table']}"
        if entry.get("requires_table") and _regclass(conn, entry["requires_table"]) is None:
            return None
        row = conn.execute("SELECT convalidated FROM pg_catalog.pg_constraint WHERE conrelid = %s AND conname = %s",
                           [table_oid, name]).fetchone() if table_oid else None
        if row is None:
            return f"{where} missing"
        return None if row[0] else f"{where} is NOT VALID (validation never finished); run apply again"
    if kind == "backfill":
        if _regclass(conn, name) is None:
            return f"backfill of {entry['table']} has no progress table {name}"
        schema, _, rel = name.partition(".")
        # The cursor row holds the next key to process; all NULL means the walk reached the end.
        cursor = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, rel))).fetchone()
        keys = cursor[:-2] if cursor else ()
        return None if all(k is None for k in keys) else f"backfill of {entry['table']} has not finished"
    if kind == "sql":
        try:
            with conn.transaction():
                cur = conn.execute(entry["sql"])
                row = cur.fetchone() if cur.description else None
        except psycopg.Error as exc:
            return f"verify SQL ({name}) failed: {str(exc).strip().splitlines()[0]}"
        if row is not None and row[0] is False:
            return f"verify SQL ({name}) returned false"
        return None
    return None


def _health(conn: psycopg.Connection, tables: list[str]) -> list[str]:
    problems = []
    for table in tables:
        oid = _regclass(conn, table)
        if oid is None:
            continue
        for (name,) in conn.execute(
                "SELECT c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
                " WHERE i.indrelid = %s AND NOT i.indisvalid ORDER BY 1", [oid]):
            problems.append(f"{table}: index {name} is INVALID")
        for (name,) in conn.execute(
                "SELECT conname FROM pg_catalog.pg_constraint WHERE conrelid = %s AND NOT convalidated ORDER BY 1",
                [oid]):
            problems.append(f"{table}: constraint {name} is NOT VALID")
    return sorted(set(problems))
