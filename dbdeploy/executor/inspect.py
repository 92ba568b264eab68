"""status and verify: what the history says, and whether the database matches it."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from dbdeploy.bundle import catalog_checks
from dbdeploy.errors import IntegrityError
from dbdeploy.executor import history, lock, privileges, trust
from dbdeploy.executor.bundles import BundleOnDisk, load_bundles
from dbdeploy.executor.config import Config, Environment
from dbdeploy.executor.connection import connect

STATE_NAMES = {
    None: "pending", "completed": "applied", "baseline": "applied (baseline)", "failed": "failed",
    "running": "interrupted", "rolling_back": "rollback interrupted", "rolled_back": "rolled back",
}


# While a run holds the deployment lock, its unfinished version is running, not interrupted:
# ``running`` in migration_log with no session holding the lock means the run that set it is gone.
RUNNING_NAMES = {"running": "running", "rolling_back": "rolling back"}


def lock_held(conn: psycopg.Connection, key: int) -> bool:
    """True when some session holds the deployment lock ``key`` (pg_locks is readable by every role)."""
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted AND database ="
        " (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"
        " AND ((classid::bigint << 32) | objid::bigint) = %s)", [key]).fetchone()[0]


@dataclass(frozen=True)
class VersionStatus:
    version: str
    name: str
    state: str
    applied_by: str | None
    applied_at: str | None
    duration_ms: int | None
    environment: str | None
    # Applied versions only: the expansions (manifest ``expands``) no applied version's Contract closed.
    open_expansions: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def status(config: Config, env: Environment, dsn: str) -> list[VersionStatus]:
    bundles = load_bundles(config.generated)
    with connect(dsn, env.name, network_timeout=env.network_seconds) as conn:
        privileges.readable(conn, config.history_schema, [], "status")
        trust.verify(conn, config.history_schema, privileges.backup_schemas([]), config.owners, "read the history",
                     writing=False)
        log = history.read_log(conn, config.history_schema)
        held = any(r.status in ("running", "rolling_back") for r in log.values()) and lock_held(
            conn, lock.lock_key(config.history_schema))
    rows = []
    seen = set()
    still_open = open_expansions(bundles, log)
    for bundle in bundles:
        key = history.int_key(bundle.version)
        seen.add(key)
        row = log.get(key)
        state = STATE_NAMES.get(row.status if row else None, row.status if row else "pending")
        if held and row and row.status in RUNNING_NAMES:
            state = RUNNING_NAMES[row.status]   # a run holds the deployment lock: it is working on it
        if row and row.status in ("completed", "baseline") and row.checksum and row.checksum != bundle.checksum:
            state = "changed"
        elif bundle.problems():   # apply would refuse (exit 3): say so here too
            state = "edited"
        rows.append(VersionStatus(bundle.version, bundle.name, state, row.applied_by if row else None,
                                  row.applied_at.isoformat(timespec="seconds") if row and row.applied_at else None,
                                  row.duration_ms if row else None, row.environment if row else None,
                                  still_open.get(bundle.version, ())))
    for key, row in sorted(log.items(), key=lambda kv: int(kv[0])):
        if key not in seen:
            rows.append(VersionStatus(row.version, "?", "bundle missing", row.applied_by,
                                      row.applied_at.isoformat(timespec="seconds") if row.applied_at else None,
                                      row.duration_ms, row.environment))
    return rows


def open_expansions(bundles: list[BundleOnDisk], log: dict) -> dict[str, tuple[str, ...]]:
    """Version → its expansions (manifest ``expands``) for every applied version (completed or
    baseline) whose expansions no applied version's ``Contract`` (manifest ``contracts``) closed."""
    applied = [b for b in bundles
               if (row := log.get(history.int_key(b.version))) and row.status in catalog_checks.APPLIED_STATUSES]
    closed = {int(v) for b in applied for v in b.info.contracts}
    return {b.version: b.info.expands for b in applied if b.info.expands and int(b.version) not in closed}


def open_expansion_lines(rows: list[VersionStatus]) -> list[str]:
    """``status``'s lines about open expansions: one per expansion, with what closes it."""
    return [f"V{r.version} expansion still open: {line} — once no running application uses the old name, "
            f"a later migration's Contract(version=\"{r.version}\") removes it"
            for r in rows for line in r.open_expansions]


def next_steps(rows: list[VersionStatus], env: str, all_rows: list[VersionStatus] | None = None) -> list[str]:
    """What to do about each failed or interrupted version in ``rows``: the documented way on."""
    from dbdeploy.executor.deploy import way_on

    ordered = all_rows or rows
    lines = []
    for row in rows:
        if row.state not in ("failed", "interrupted", "rollback interrupted"):
            continue
        earlier = [r.version for r in ordered if r.version.isdigit() and int(r.version) < int(row.version)]
        if row.state == "rollback interrupted":
            lines.append(f"V{row.version} is {row.state}: fix the cause, then run the same `dbdeploy rollback` again")
            continue
        if row.state == "interrupted":
            where = "" if env == "dev" else f" --env {env}"
            lines.append(f"V{row.version} is interrupted: the run applying it ended mid-way (connection lost, server "
                         f"crash or dbdeploy killed) and no run holds the deployment lock. `dbdeploy apply{where}` "
                         "resumes it (every step checks before it acts; a backfill resumes at its cursor). To undo "
                         f"it instead: dbdeploy rollback --to {earlier[-1] if earlier else '0'}{where}")
            continue
        lines.append(f"V{row.version} is {row.state}. " + way_on(f"V{row.version}", earlier[-1] if earlier else "0",
                                                                    env))
    return lines


def _expected_state(bundles: list[BundleOnDisk], log: dict) -> list[tuple[str, dict]]:
    """``(label, entry)`` for every expectation of an applied version (status completed or baseline)
    that no later applied version supersedes, by the rule the generated tests use
    (:func:`dbdeploy.bundle.catalog_checks.superseded_by`): a later drop or different definition of the
    same object, or a later drop of the table or column it is about."""
    applied = [b for b in bundles
               if (row := log.get(history.int_key(b.version))) and row.status in catalog_checks.APPLIED_STATUSES]
    result = []
    for i, bundle in enumerate(applied):
        later = [(b.label, b.manifest.get("expects", [])) for b in applied[i + 1:]]
        for entry in bundle.manifest.get("expects", []):
            if entry["object"] == "extension" and not entry["present"]:
                continue   # the generated tests do not check these either (testgen.render_test_file)
            if catalog_checks.superseded_by(entry, later) is None:
                result.append((bundle.label, dict(entry, bundle_folder=str(bundle.folder))))
    return result


def verify(config: Config, env: Environment, dsn: str) -> list[str]:
    """Problems found (empty when healthy): missing, unexpected or differently defined objects (the
    checks of the generated tests, :mod:`dbdeploy.bundle.catalog_checks`), invalid indexes, NOT VALID
    constraints left behind, unfinished or undone backfills, missing or changed seed rows, sequences
    behind their column's values, and failed or interrupted versions. Raises IntegrityError (exit 3)
    when a manifest holds an expectation kind the checks do not know."""
    bundles = load_bundles(config.generated)
    problems: list[str] = []
    with connect(dsn, env.name, network_timeout=env.network_seconds) as conn:
        privileges.readable(conn, config.history_schema, privileges.backup_schemas(bundles), "verify")
        trust.verify(conn, config.history_schema, privileges.backup_schemas(bundles), config.owners,
                     "read the history", writing=False)
        log = history.read_log(conn, config.history_schema)
        for bundle in bundles:
            row = log.get(history.int_key(bundle.version))
            if row and row.status in ("failed", "running", "rolling_back"):
                problems.append(f"{bundle.label} is {STATE_NAMES[row.status]}; run apply (or rollback) again")
            elif row and row.status in catalog_checks.APPLIED_STATUSES and row.checksum != bundle.checksum:
                problems.append(f"{bundle.label} was applied with a different checksum than its bundle")
            problems += [f"{bundle.label}: {p}" for p in bundle.problems()]
        known = {int(b.version) for b in bundles}
        for key, row in sorted(log.items(), key=lambda kv: int(kv[0])):
            if row.status in catalog_checks.APPLIED_STATUSES and int(key) not in known:
                problems.append(f"version {row.version} is applied ({row.status}) but generated/ has no bundle for "
                                "it, so what it made cannot be checked; fix: check out the bundles that were applied")
        tables: set[str] = set()
        for label, entry in _expected_state(bundles, log):
            problem = _check(conn, entry, label)
            if problem:
                problems.append(f"{label}: {problem}")
            if entry["present"] and entry.get("table") and entry["object"] != "backfill":
                tables.add(entry["table"])
            elif entry["object"] == "table" and entry["present"]:
                tables.add(entry["name"])
        problems += _health(conn, sorted(tables))
    return problems


BASELINE_UNCHECKABLE = ("backfill",)
"""Expectation kinds that describe dbdeploy's own bookkeeping of a run (a backfill's cursor
table), which a database adopted with ``baseline`` cannot have; they are not checked there."""


def expectation_problems(conn: psycopg.Connection, bundles: list[BundleOnDisk], log: dict,
                         *, for_baseline: bool = False) -> list[str]:
    """The differences between the database and what the versions ``log`` marks applied
    (completed or baseline) would make, one line each: ``"V002: column x.y missing"``.

    The same fold and per-object checks as :func:`verify`, without its history and health
    checks; ``baseline`` calls it with the versions it is about to record marked ``baseline``.
    """
    problems = []
    for label, entry in _expected_state(bundles, log):
        if for_baseline and entry["object"] in BASELINE_UNCHECKABLE:
            continue
        found = _check(conn, entry, label)
        for problem in [found] if isinstance(found, str) else (found or []):
            problems.append(f"{label}: {problem}")
    return problems


def _regclass(conn: psycopg.Connection, name: str):
    schema, _, rel = name.partition(".")
    ident = sql.Identifier(schema, rel).as_string(conn)
    return conn.execute("SELECT pg_catalog.to_regclass(%s)::oid", [ident]).fetchone()[0]


def _check(conn: psycopg.Connection, entry: dict, label: str) -> str | None:
    """One expectation against the database: None when it holds, else what is wrong. An entry of a
    kind these checks do not know raises IntegrityError (exit 3) naming the kind, never passes."""
    try:
        return catalog_checks.run_check(conn, entry)
    except catalog_checks.UnknownExpectationKind as exc:
        raise IntegrityError(f"{label}: {exc}") from None


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
        problems += [f"{table}: {problem}" for problem in catalog_checks.sequence_problems(conn, table)]
    return sorted(set(problems))
