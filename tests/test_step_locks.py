"""Every step takes no stronger lock than its marker says (issue 9, kind 5), observed on PG 15 and 16.

The marker (``-- dbdeploy:step … lock=…``, the checklist's lock table and the executor's choice of
``lock_timeout``) promises what a step does to the application's sessions. Here each golden bundle
(tests/golden_cases.py) and each committed example bundle (generated/) runs step by step, exactly
as the executor splits it (``parse_script``), on a populated database, and the relation locks the
step's backend really takes are read from ``pg_locks``:

* statements that may run in a transaction block (every ``tx=step`` step, and the DO blocks of
  ``tx=none`` steps) run inside one and ``pg_locks`` is read for the backend before COMMIT —
  relation locks are held to the end of the transaction, so this sees every lock the statements
  took;
* ``CONCURRENTLY`` statements and the batched backfill loop (which COMMITs per batch) cannot; they
  run in autocommit while a second session samples ``pg_locks`` for that backend, and a third
  session keeps a REPEATABLE READ transaction open on the tables so the statement spends its
  waiting phases (where it already holds its locks) in view of the sampler. The backfill's batch
  statement — the one the executor loops over — is also run once in a rolled-back transaction.

"Stronger" is PostgreSQL's conflict table ("Table-level Locks", Table 13.2): mode A is no stronger
than mode B when every mode A conflicts with also conflicts with B. The modes are only partially
ordered (SHARE and ROW EXCLUSIVE are incomparable), so this is checked as set inclusion.

Not counted (documented, never silently): relations in pg_catalog, pg_toast, temporary schemas and
dbdeploy's own schemas (``migrations``, ``dbdeploy_backup``: the bookkeeping the application never
touches); relations created by the step itself (invisible to other sessions until it commits);
and the ACCESS EXCLUSIVE lock ``DROP INDEX CONCURRENTLY`` takes on the index it drops in its last
phase, after it has made the index unusable and waited for every transaction that used it
(index_drop() in PostgreSQL's catalog/index.c: "We will get AccessExclusiveLock on the index
below, once we're sure nobody else is using it").
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from dbdeploy.executor.bundles import ExecStep, Script, parse_script
from tests.bundles import write_bundles
from tests.executor_support import make_project, write_spec
from tests.golden_cases import CASES
from tests.pg import TestDatabase

GENERATED = Path(__file__).resolve().parent.parent / "generated"

# PostgreSQL docs, 13.3.1 "Table-level Locks", Table 13.2 "Conflicting Lock Modes".
MODES = {
    "AccessShareLock": "ACCESS SHARE", "RowShareLock": "ROW SHARE", "RowExclusiveLock": "ROW EXCLUSIVE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE", "ShareLock": "SHARE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE", "ExclusiveLock": "EXCLUSIVE",
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
}
_ALL = set(MODES.values())
CONFLICTS: dict[str, set[str]] = {
    "NONE": set(),
    "ACCESS SHARE": {"ACCESS EXCLUSIVE"},
    "ROW SHARE": {"EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "ROW EXCLUSIVE": {"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "SHARE UPDATE EXCLUSIVE": {"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE",
                               "ACCESS EXCLUSIVE"},
    "SHARE": {"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "SHARE ROW EXCLUSIVE": {"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE",
                            "ACCESS EXCLUSIVE"},
    "EXCLUSIVE": _ALL - {"ACCESS SHARE"},
    "ACCESS EXCLUSIVE": set(_ALL),
}
OWN_SCHEMAS = ("migrations", "dbdeploy_backup")


def no_stronger(taken: str, marker: str) -> bool:
    """``taken`` blocks nothing that ``marker`` does not block (conflict-set inclusion)."""
    return CONFLICTS[taken] <= CONFLICTS[marker]


def test_conflict_table_is_symmetric_and_ordered_as_documented() -> None:
    for a in _ALL:
        for b in _ALL:
            assert (b in CONFLICTS[a]) == (a in CONFLICTS[b]), (a, b)
    chain = ["ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE",
             "EXCLUSIVE", "ACCESS EXCLUSIVE"]
    assert all(no_stronger(a, b) for a, b in zip(chain, chain[1:], strict=False))
    assert not no_stronger("SHARE", "ROW EXCLUSIVE") and not no_stronger("ROW EXCLUSIVE", "SHARE")
    assert not no_stronger("ACCESS EXCLUSIVE", "SHARE UPDATE EXCLUSIVE")
    assert no_stronger("SHARE", "SHARE ROW EXCLUSIVE")


# --------------------------------------------------------------------------- observation


@dataclass
class StepLocks:
    label: str                 # "V002 forward step 1 drop_invalid_index"
    marker: str
    locks: set[tuple[str, str]] = field(default_factory=set)   # (relation, lock mode as in the marker)
    exempt: set[str] = field(default_factory=set)             # indexes a DROP INDEX CONCURRENTLY drops

    def violations(self) -> list[str]:
        return [f"{self.label}: {mode} on {rel} is stronger than its marker lock={self.marker}"
                for rel, mode in sorted(self.locks)
                if not no_stronger(mode, self.marker) and not (rel in self.exempt and mode == "ACCESS EXCLUSIVE")]


def _relations(conn: psycopg.Connection) -> dict[int, str]:
    """oid → schema.name of every relation whose locks count (see the module docstring)."""
    rows = conn.execute(
        "SELECT c.oid, n.nspname || '.' || c.relname FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname NOT IN ('pg_catalog', 'pg_toast', 'information_schema', %s, %s)"
        " AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'",
        list(OWN_SCHEMAS)).fetchall()
    return dict(rows)


def _own_locks(conn: psycopg.Connection) -> set[tuple[int, str]]:
    rows = conn.execute("SELECT relation::bigint, mode FROM pg_catalog.pg_locks"
                        " WHERE pid = pg_catalog.pg_backend_pid() AND locktype = 'relation'").fetchall()
    return {(oid, mode) for oid, mode in rows}


def _needs_autocommit(statement: str) -> bool:
    return not statement.lstrip().upper().startswith("DO") and "CONCURRENTLY" in statement.upper()


class Observer:
    """Runs bundle scripts step by step on one session and records each step's relation locks."""

    def __init__(self, db: TestDatabase) -> None:
        self.db = db
        self.conn = db.connect()
        self.watch = db.connect()
        self.steps: list[StepLocks] = []

    def close(self) -> None:
        self.conn.close()
        self.watch.close()

    def run(self, script: Script, label: str) -> None:
        for statement in script.preamble:
            self.conn.execute(statement)
        for step in script.steps:
            self.run_step(step, f"{label} step {step.number} {step.kind}")
        for statement in script.postamble:
            self.conn.execute(statement)

    def run_step(self, step: ExecStep, label: str) -> StepLocks:
        names = _relations(self.conn)
        seen: set[tuple[int, str]] = set()
        exempt: set[str] = set()
        if step.transactional:
            with self.conn.transaction():
                for statement in step.statements:
                    self.conn.execute(statement)
                seen |= _own_locks(self.conn)
        else:
            if step.batch is not None:
                # the loop contract (dbdeploy.bundle.markers): the batch's row count is set first
                self.conn.execute("SELECT pg_catalog.set_config('dbdeploy.batch_rows', %s, false)",
                                  [str(step.batch_rows)])
                with self.conn.transaction(force_rollback=True):   # the executor's batch statement
                    self.conn.execute(step.batch)
                    seen |= _own_locks(self.conn)
            for statement in step.statements:
                if step.batch is not None or _needs_autocommit(statement):
                    if statement.upper().startswith("DROP INDEX CONCURRENTLY"):
                        target = statement.rstrip(";").split()[-1]
                        oid = self.conn.execute("SELECT pg_catalog.to_regclass(%s)::oid", [target]).fetchone()[0]
                        if oid in names:
                            exempt.add(names[oid])
                    seen |= self._sampled(statement, names)
                else:
                    with self.conn.transaction():
                        self.conn.execute(statement)
                        seen |= _own_locks(self.conn)
        result = StepLocks(label, step.lock, {(names[oid], MODES[mode]) for oid, mode in seen if oid in names},
                           exempt)
        self.steps.append(result)
        return result

    def _sampled(self, statement: str, names: dict[int, str]) -> set[tuple[int, str]]:
        """Run ``statement`` in autocommit; sample its backend's relation locks from another session
        while an open REPEATABLE READ transaction on every counted table makes it wait."""
        pid = self.conn.info.backend_pid
        blocker = self.db.connect(autocommit=False)
        blocker.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        tables = [n for oid, n in names.items() if self._is_table(oid)]
        for table in tables:
            schema, _, rel = table.partition(".")
            blocker.execute(psycopg.sql.SQL("SELECT 1 FROM {} LIMIT 1").format(psycopg.sql.Identifier(schema, rel)))
        error: list[BaseException] = []

        def run() -> None:
            try:
                self.conn.execute(statement)
            except BaseException as exc:  # re-raised in the test thread
                error.append(exc)

        thread = threading.Thread(target=run)
        seen: set[tuple[int, str]] = set()
        thread.start()
        released = False
        deadline = time.monotonic() + 30
        while thread.is_alive():
            # Waiting first, then the locks: a statement seen waiting still holds what it took, so the
            # sample after it has them before the blocker is released (the other order could miss them).
            waiting = self.watch.execute("SELECT wait_event_type = 'Lock' FROM pg_catalog.pg_stat_activity"
                                         " WHERE pid = %s", [pid]).fetchone()
            rows = self.watch.execute("SELECT relation::bigint, mode, granted FROM pg_catalog.pg_locks"
                                      " WHERE pid = %s AND locktype = 'relation'", [pid]).fetchall()
            seen |= {(oid, mode) for oid, mode, _granted in rows}
            if not released and ((waiting and waiting[0]) or time.monotonic() > deadline):
                blocker.commit()
                released = True
            time.sleep(0.002)
        thread.join()
        blocker.close()
        if error:
            raise error[0]
        return seen

    def _is_table(self, oid: int) -> bool:
        row = self.conn.execute("SELECT relkind FROM pg_catalog.pg_class WHERE oid = %s", [oid]).fetchone()
        return bool(row and row[0] in ("r", "p"))


def _violations(steps: Iterable[StepLocks]) -> list[str]:
    return [v for s in steps for v in s.violations()]


# --------------------------------------------------------------------------- the golden bundles

PREEXISTING = """
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id bigint PRIMARY KEY, name text);
INSERT INTO shop.customers SELECT g, 'customer ' || g FROM generate_series(1, 1000) g;
CREATE TABLE public.customers (id bigint PRIMARY KEY);
INSERT INTO public.customers SELECT g FROM generate_series(1, 1000) g;
CREATE TABLE public.events (tenant_id int, event_id int, kind text, PRIMARY KEY (tenant_id, event_id));
INSERT INTO public.events SELECT g % 10, g, NULL FROM generate_series(1, 2000) g;
CREATE TABLE public.t (x int);
INSERT INTO public.t SELECT g FROM generate_series(1, 2000) g;
"""

ORDERS_ROWS = """
INSERT INTO shop.orders (id, customer_id, status, total, note)
SELECT g, 1 + g % 1000, CASE WHEN g % 4 = 0 THEN 'done' ELSE 'new' END, g % 100,
       CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END
FROM generate_series(101, 2100) g;
"""

# A failed concurrent build leaves an INVALID index under the name the step builds.
INVALID_INDEX = "CREATE INDEX CONCURRENTLY {name} ON shop.orders ((1 / (id - id)))"
INVALID_CASES = {"create_index": ("forward", "orders_customer_id_status_idx"),
                 "add_unique": ("forward", "orders_note_key"),
                 "drop_index": ("rollback", "orders_status_idx")}


def _make_invalid(db: TestDatabase, name: str) -> None:
    with pytest.raises(psycopg.errors.DivisionByZero):
        db.execute(INVALID_INDEX.format(name=name))
    assert db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass", [f"shop.{name}"]) == [
        (False,)]


def _golden_params():
    for case in CASES:
        yield pytest.param(case, False, id=case)
        if case in INVALID_CASES:
            yield pytest.param(case, True, id=f"{case}-invalid-leftover")


def _available(db: TestDatabase, *extensions: str) -> bool:
    rows = db.execute("SELECT count(*) FROM pg_available_extensions WHERE name = ANY(%s)", [list(extensions)])
    return rows[0][0] == len(extensions)


@pytest.mark.parametrize(("case", "invalid"), list(_golden_params()))
def test_golden_steps_take_no_stronger_lock_than_their_marker(case: str, invalid: bool, fresh_db_each: TestDatabase,
                                                              tmp_path: Path) -> None:
    db = fresh_db_each
    if case == "require_extension" and not _available(db, "pgcrypto", "citext"):
        pytest.skip("pgcrypto/citext are not available on this server")
    if case != "create_schema":
        db.execute(PREEXISTING)
    bundles = write_bundles(CASES[case], tmp_path)
    versions = sorted(bundles)
    for version in versions[:-1]:
        db.psql_file(bundles[version].forward)
    if db.execute("SELECT to_regclass('shop.orders') IS NOT NULL")[0][0]:
        db.execute(ORDERS_ROWS)
    last = bundles[versions[-1]]
    if case == "require_extension":
        db.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")    # the spec requires it, a superuser installs it
    where, name = INVALID_CASES.get(case, ("", ""))
    observer = Observer(db)
    try:
        if invalid and where == "forward":
            _make_invalid(db, name)
        observer.run(parse_script(last.forward.read_text()), f"V{versions[-1]} forward")
        if invalid and where == "forward":
            _assert_rebuilt(db, observer, name)
        if invalid and where == "rollback":
            _make_invalid(db, name)
        observer.run(parse_script(last.rollback.read_text()), f"V{versions[-1]} rollback")
        if invalid and where == "rollback":
            _assert_rebuilt(db, observer, name)
    finally:
        observer.close()
    assert _violations(observer.steps) == []
    # The observer must have seen something whenever a step is marked to lock a user relation (the
    # rollback's preflight reads only catalogs, so it does not count).
    if any(s.marker != "NONE" and "rollback_preflight" not in s.label for s in observer.steps):
        assert any(s.locks for s in observer.steps), "no relation lock was observed at all"


def _assert_rebuilt(db: TestDatabase, observer: Observer, name: str) -> None:
    """The rebuild path really ran: the leftover was dropped concurrently (SHARE UPDATE EXCLUSIVE on
    the table, observed while it waited) and the index built again is valid."""
    assert _violations(observer.steps) == []
    drop = [s for s in observer.steps if s.label.endswith("drop_invalid_index")][-1]
    assert ("shop.orders", "SHARE UPDATE EXCLUSIVE") in drop.locks, drop
    assert db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [f"shop.{name}"]) == [
        (True,)]
    assert db.execute("SELECT count(*) FROM pg_class WHERE relname LIKE '%dbdeploy_invalid'") == [(0,)]


# --------------------------------------------------------------------------- generated/ (the examples)

EXAMPLE_ROWS = """
INSERT INTO raw.site_tracking_events_r (tenant_hk, raw_payload, batch_id, error_message, client_ip)
SELECT decode(md5(g::text), 'hex'),
       jsonb_build_object('event_type', CASE WHEN g % 3 = 0 THEN NULL ELSE 'view' END, 'n', g),
       'batch-' || (g % 7), CASE WHEN g % 5 = 0 THEN NULL ELSE 'err ' || g END, '10.0.0.1'
FROM generate_series(1, 3000) AS g;
INSERT INTO raw.site_tracking_sessions_r (session_id, event_count) VALUES ('s-1', 3), ('s-2', 5);
"""


def _example_bundles() -> list[tuple[str, Path, Path]]:
    result = []
    for folder in sorted(GENERATED.glob("V*__*"), key=lambda f: int(f.name[1:4])):
        manifest = json.loads((folder / "manifest.json").read_text())
        result.append((manifest["version"], folder / manifest["files"]["forward"]["name"],
                       folder / manifest["files"]["rollback"]["name"]))
    return result


def test_example_steps_take_no_stronger_lock_than_their_marker(fresh_db_each: TestDatabase) -> None:
    db = fresh_db_each
    bundles = _example_bundles()
    observer = Observer(db)
    try:
        for n, (version, forward, _rollback) in enumerate(bundles):
            observer.run(parse_script(forward.read_text()), f"V{version} forward")
            if n == 0:
                db.execute(EXAMPLE_ROWS)
        for version, _forward, rollback in reversed(bundles):
            observer.run(parse_script(rollback.read_text()), f"V{version} rollback")
    finally:
        observer.close()
    assert _violations(observer.steps) == []
    assert sum(len(s.locks) for s in observer.steps) > len(bundles)


# --------------------------------------------------------------------------- the scenario

USERS = """
CREATE TABLE public.users (id integer PRIMARY KEY, email text NOT NULL);
INSERT INTO public.users SELECT g, 'u' || (CASE WHEN g > 1800 THEN g - 1800 ELSE g END) || '@example.com'
FROM generate_series(1, 2000) g;
"""

SCENARIO_SPECS = {
    "create_index": '''
from dbdeploy import CreateIndex, Index, Migration
m = Migration(version="001", name="users_email", operations=[
    CreateIndex(table="public.users", index=Index(columns=["email"], unique=True, name="users_email_key"))])
''',
    "add_unique": '''
from dbdeploy import AddUnique, Migration, Unique
m = Migration(version="001", name="users_email", operations=[
    AddUnique(table="public.users", unique=Unique(columns=["email"], name="users_email_key"))])
''',
}


def _wait_until(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("runner", ["executor", "psql"])
@pytest.mark.parametrize("kind", list(SCENARIO_SPECS))
def test_rebuilding_an_invalid_index_does_not_queue_reads_behind_a_long_transaction(
        kind: str, runner: str, fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """The issue's scenario: a long transaction holds ACCESS SHARE on the table, a failed concurrent
    build left an INVALID index, the rebuild step runs and waits for the long transaction; a plain
    SELECT (and an INSERT) from a third session with a 1 s lock_timeout must not queue behind it.
    A plain DROP INDEX here would request ACCESS EXCLUSIVE and every later reader would queue."""
    db = fresh_db_each
    db.execute(USERS)
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON public.users (email)")
    db.execute("DELETE FROM public.users WHERE id > 1800")   # the data is fixed; the INVALID index stays
    (invalid_oid,) = db.execute("SELECT 'public.users_email_key'::regclass::oid")[0]
    specs = tmp_path / "specs"
    write_spec(specs, "V001_users_email.py", SCENARIO_SPECS[kind])
    project = make_project(tmp_path / "project", db.dsn, specs=specs, lock_timeout="1s")

    long_tx = db.connect(autocommit=False)
    long_tx.execute("SELECT count(*) FROM public.users")          # holds ACCESS SHARE until it ends
    if runner == "executor":
        proc = project.start("apply", "--env", "test", "--plain")
    else:
        forward = next(p for p in project.generated.glob("V001__*/V001__*.sql") if "__rollback_" not in p.name)
        proc = db_psql_popen(db, forward)
    watch = db.connect()
    try:
        def deploy_waits() -> bool:
            rows = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND pid NOT IN (pg_backend_pid(), %s)", [long_tx.info.backend_pid]).fetchone()
            return rows[0] > 0 or proc.poll() is not None

        _wait_until(deploy_waits, "the deployment waits for the long transaction")
        assert proc.poll() is None, "the deployment did not wait for the long transaction"
        with db.connect() as reader:
            reader.execute("SET lock_timeout = '1s'")
            assert reader.execute("SELECT count(*) FROM public.users").fetchone() == (1800,)
            reader.execute("INSERT INTO public.users VALUES (5000, 'new@example.com')")
        waits = watch.execute("SELECT l.locktype, l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                              " WHERE NOT l.granted AND a.datname = current_database()").fetchall()
        assert ("relation", "AccessExclusiveLock") not in waits, waits
    finally:
        long_tx.commit()
        long_tx.close()
        out, err = proc.communicate(timeout=300)
        watch.close()
    assert proc.returncode == 0, out + err
    (valid, oid) = db.execute("SELECT indisvalid, indexrelid::oid FROM pg_index"
                              " WHERE indexrelid = 'public.users_email_key'::regclass")[0]
    assert valid and oid != invalid_oid
    if kind == "add_unique":
        assert db.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'users_email_key'") == [
            ("UNIQUE (email)",)]


def db_psql_popen(db: TestDatabase, path: Path):
    """``psql -v ON_ERROR_STOP=1 -f path`` in the background, as an operator would run it."""
    import subprocess

    return subprocess.Popen([db.server.psql, "-X", "-v", "ON_ERROR_STOP=1", "-d", db.dsn, "-f", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
