"""A backfill's rollback restores in batches, holding row locks only per batch (issue 10, item 11).

Before, the restore was one UPDATE of every backed-up row: on 200k rows writers waited 2.5 s behind
its row locks. Now a transactional step checks the key and creates a cursor table, the next step
(``restore_backfill_values``, no transaction) runs one batch statement per ``batch_size`` backup
rows in key order — the executor runs it between the batch markers, psql in the DO block's loop
with COMMIT per batch — and a last step reports the counts and drops the backfill's tables.

Every test runs on both servers, through the executor and through psql, on 12,000 rows with a
composite key and two backfilled columns, batches of 500 (16 restore batches), after "the
application" changed, re-wrote, deleted and inserted rows. Checked, against expectations computed
from the data before the deploy, after the forward and before the rollback:

* the rollback restores exactly as the one-UPDATE restore did: rows still holding what the
  backfill wrote get their old values, changed rows keep theirs and are recorded (the exact rows)
  in ``<backup>_not_restored``, deleted rows are counted; the NOTICE has the three counts;
* structurally, while a restore batch is in flight (held there by an application transaction that
  locked one of its rows with ``FOR UPDATE``): no session holds a lock on the table that conflicts
  with ROW EXCLUSIVE, the restore's transaction has written at most ``batch_size`` rows, rows of
  earlier and later batches can be locked at once (``NOWAIT``), and the cursor says exactly the
  batches before this one are committed; a sampler also watches ``pg_locks`` for the whole
  rollback;
* a rollback killed mid-restore (``pg_terminate_backend`` once the cursor shows committed batches)
  and run again ends in the same state as an uninterrupted one, with the same counts.

Both paths run with ``batch_time`` 0 (the environment's, and ``dbdeploy.batch_time`` in psql's
session through PGOPTIONS): every batch has ``batch_size`` rows, so which batch holds a given row is
known in advance; how batches adapt to time is tested in tests/test_batch_time.py.

Nothing here asserts a duration.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import psycopg
import pytest

from tests.executor_support import make_project, write_spec
from tests.test_drop_column_online import CONFLICTING
from tests.test_rollback_keeps_app_writes import _restore_counts

# The batches and locks are the same on every version: the default suite runs this module on the
# primary server, DBDEPLOY_FULL=1 on every server (tests/conftest.py).
PRIMARY_SERVER_ONLY_UNLESS_FULL = True
ROWS = 12_000
BATCH = 500

SPEC = '''
from dbdeploy import Backfill, Column, CreateTable, Migration
first = Migration(version="001", name="orders", operations=[CreateTable(
    table="public.orders", primary_key=["region", "id"],
    columns=[Column(name="region", type="text"), Column(name="id", type="bigint"), Column(name="status", type="text"),
             Column(name="archived_at", type="timestamptz"), Column(name="note", type="text")])])
second = Migration(version="002", name="archive_old", operations=[
    Backfill(table="public.orders", set={"status": "'archived'", "archived_at": "'2026-01-02 03:04:05+00'"},
             where="status = 'old'", batch_size=BATCH)])
'''.replace("BATCH", str(BATCH))

POPULATE = f"""
INSERT INTO public.orders (region, id, status, archived_at, note)
SELECT 'r' || (g % 4), g, CASE WHEN g % 3 = 0 THEN 'new' ELSE 'old' END,
       CASE WHEN g % 5 = 0 THEN timestamptz '2025-06-01 00:00:00+00' + g * interval '1 minute' END,
       'note ' || g || E'\\n\\tÜ'
FROM generate_series(1, {ROWS}) g;
"""

BACKUP = "dbdeploy_backup.v002_op1_orders"
CURSOR = f"{BACKUP}_restore"
NOT_RESTORED = f"{BACKUP}_not_restored"
SELECT_ROWS = "SELECT region, id, status, archived_at::text, note FROM public.orders"


@pytest.fixture(autouse=True)
def _fixed_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """psql sessions run with dbdeploy.batch_time = 0, like the executor's environment (see the docstring)."""
    monkeypatch.setenv("PGOPTIONS", "-c dbdeploy.batch_time=0")


def _project(tmp_path: Path, db):
    specs = tmp_path / "specs_src"
    write_spec(specs, "V001_spec.py", SPEC)
    # lock_timeout well above how long a test holds a row of a batch (the executor would retry the batch)
    return make_project(tmp_path / "p", db.dsn, specs=specs, lock_timeout="60s",
                        extra_env='batch_time = "0"\n')


def _ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _file(project, version: str, rollback: bool) -> Path:
    pattern = f"V{version}__*/V{version}__rollback_*.sql" if rollback else f"V{version}__*/V{version}__[!r]*.sql"
    return next(project.generated.glob(pattern))


def _rows(db) -> dict[tuple[str, int], tuple]:
    return {(r[0], r[1]): r[2:] for r in db.execute(SELECT_ROWS)}


@dataclass
class Scenario:
    """The data at each point and what the rollback must leave, computed from it."""

    before: dict = field(default_factory=dict)        # before the deploy
    forward: dict = field(default_factory=dict)       # after the forward
    now: dict = field(default_factory=dict)           # before the rollback (the application wrote)

    @cached_property
    def backfilled(self) -> set:
        """The keys the backfill changed (computed once: every per-row question below asks it)."""
        return {k for k, v in self.before.items() if v[0] == "old"}

    def _changed(self, key) -> bool:
        return self.now[key][:2] != self.forward[key][:2]

    def expected_rows(self) -> dict:
        return {k: (self.before[k][:2] + v[2:] if k in self.backfilled and not self._changed(k) else v)
                for k, v in self.now.items()}

    def expected_counts(self) -> tuple[int, int, int]:
        present = self.backfilled & self.now.keys()
        kept = {k for k in present if self._changed(k)}
        return len(present) - len(kept), len(kept), len(self.backfilled - present)

    def expected_not_restored(self) -> list[tuple]:
        return sorted((*k, *self.before[k][:2], *self.forward[k][:2], *self.now[k][:2])
                      for k in self.backfilled & self.now.keys() if self._changed(k))

    def restorable(self, key) -> bool:
        """The restore will write this row (its UPDATE locks it)."""
        return key in self.backfilled and key in self.now and not self._changed(key)


def _deploy(db, project, path: str) -> Scenario:
    """Apply V001 (executor), populate, apply V002 through ``path``, then let the application write."""
    _ok(project.run("apply", "--env", "test", "--to", "1"))
    db.execute(POPULATE)
    db.execute("ANALYZE public.orders")
    scenario = Scenario(before=_rows(db))
    if path == "executor":
        _ok(project.run("apply", "--env", "test", "--plain"))
    else:
        db.psql_file(_file(project, "002", rollback=False))
    scenario.forward = _rows(db)
    written = {k: v[:2] for k, v in scenario.forward.items() if k in scenario.backfilled}
    assert {v[0] for v in written.values()} == {"archived"} and len(set(written.values())) == 1
    assert not any(v[0] == "archived" for k, v in scenario.forward.items() if k not in scenario.backfilled)

    rng = random.Random(11)
    backfilled = sorted(scenario.backfilled)
    others = sorted(scenario.before.keys() - scenario.backfilled)
    picked = rng.sample(backfilled, 950)
    gold, moved, same, renamed, deleted = picked[:300], picked[300:400], picked[400:600], picked[600:800], picked[800:]
    with db.connect() as app:
        app.execute("UPDATE public.orders SET status = 'gold' WHERE (region, id) IN (SELECT * FROM unnest("
                    "%s::text[], %s::bigint[]))", [[k[0] for k in gold], [k[1] for k in gold]])
        app.execute("UPDATE public.orders SET archived_at = archived_at + interval '1 second' WHERE (region, id) IN"
                    " (SELECT * FROM unnest(%s::text[], %s::bigint[]))", [[k[0] for k in moved], [k[1] for k in moved]])
        app.execute("UPDATE public.orders SET status = 'archived' WHERE (region, id) IN (SELECT * FROM unnest("
                    "%s::text[], %s::bigint[]))", [[k[0] for k in same], [k[1] for k in same]])
        app.execute("UPDATE public.orders SET note = 'renamed' WHERE (region, id) IN (SELECT * FROM unnest("
                    "%s::text[], %s::bigint[]))", [[k[0] for k in renamed], [k[1] for k in renamed]])
        gone = deleted + rng.sample(others, 50)
        app.execute("DELETE FROM public.orders WHERE (region, id) IN (SELECT * FROM unnest(%s::text[], %s::bigint[]))",
                    [[k[0] for k in gone], [k[1] for k in gone]])
        app.execute("INSERT INTO public.orders SELECT 'r9', g, 'archived', '2026-01-02 03:04:05+00', 'inserted'"
                    " FROM generate_series(1, 100) g")
    scenario.now = _rows(db)
    return scenario


def _rollback(db, project, path: str, *, check: bool = True):
    if path == "executor":
        result = project.run("rollback", "--env", "test", "--to", "1", "--plain")
    else:
        result = db.psql_file(_file(project, "002", rollback=True), check=False)
    if check:
        _ok(result)
    return result


def _assert_restored(db, scenario: Scenario, output: str) -> None:
    assert _rows(db) == scenario.expected_rows()
    assert _restore_counts(output) == [scenario.expected_counts()], output
    kept = db.execute(f"SELECT region, id, status, archived_at::text, dbdeploy_written_status,"
                      f" dbdeploy_written_archived_at::text, dbdeploy_current_status,"
                      f" dbdeploy_current_archived_at::text FROM {NOT_RESTORED} ORDER BY region, id")
    assert sorted(kept) == scenario.expected_not_restored()
    assert len(kept) == 400
    assert db.execute(f"SELECT to_regclass('{BACKUP}'), to_regclass('{CURSOR}'), to_regclass('{BACKUP}_progress'),"
                      f" to_regprocedure('{BACKUP}_restore_batch(bigint)')") == [(None, None, None, None)]


# --------------------------------------------------------------------------- (1) same result


@pytest.mark.parametrize("path", ["executor", "psql"])
def test_batched_restore_restores_exactly_as_before(fresh_db_each, tmp_path, path) -> None:
    db = fresh_db_each
    project = _project(tmp_path, db)
    rollback = _file(project, "002", rollback=True).read_text()
    assert "restore_backfill_values tx=none lock=ROW EXCLUSIVE" in rollback
    scenario = _deploy(db, project, path)
    result = _rollback(db, project, path)
    _assert_restored(db, scenario, result.stdout + result.stderr)
    # a second run of the file changes nothing (the executor has nothing left to roll back)
    again = db.psql_file(_file(project, "002", rollback=True))
    assert "restored the values" not in again.stdout + again.stderr
    assert _rows(db) == scenario.expected_rows()


# --------------------------------------------------------------------------- (2) no blocking


@dataclass
class LockSampler:
    """From its own connection, samples every granted relation lock on public.orders for as long as
    it runs; any lock conflicting with ROW EXCLUSIVE is a violation."""

    db: object
    samples: int = 0
    violations: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.conn = self.db.connect()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)
        self.conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                locks = self.conn.execute(
                    "SELECT pid, mode FROM pg_catalog.pg_locks WHERE locktype = 'relation' AND granted"
                    " AND relation = pg_catalog.to_regclass('public.orders')").fetchall()
            except psycopg.Error:
                continue
            self.samples += 1
            self.violations += [f"{mode} held by pid {pid}" for pid, mode in locks if mode in CONFLICTING]
            time.sleep(0.002)


def _wait(predicate, what: str, run=None, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if run is not None and run.poll() is not None:
            raise AssertionError(f"the rollback ended before {what}: {run.communicate()}")
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _start_rollback(db, project, path: str):
    if path == "executor":
        return project.start("rollback", "--env", "test", "--to", "1", "--plain")
    from tests.test_step_locks import db_psql_popen
    return db_psql_popen(db, _file(project, "002", rollback=True))


def _hold_row(db, key: tuple[str, int]) -> psycopg.Connection:
    """An application transaction holding ``key``'s row lock (FOR UPDATE; the row is not changed)."""
    holder = db.connect()
    holder.execute("BEGIN")
    assert holder.execute("SELECT 1 FROM public.orders WHERE region = %s AND id = %s FOR UPDATE", list(key)).fetchall()
    return holder


def _blocked_restore(watcher: psycopg.Connection, holder: psycopg.Connection):
    """(pid, backend_xid) of the session waiting for ``holder``'s row lock, or None."""
    return watcher.execute(
        "SELECT pid, backend_xid::text FROM pg_catalog.pg_stat_activity"
        " WHERE %s = ANY (pg_catalog.pg_blocking_pids(pid))", [holder.info.backend_pid]).fetchone()


def _batches_done(watcher: psycopg.Connection) -> int | None:
    try:
        row = watcher.execute(f"SELECT dbdeploy_batches_done FROM {CURSOR}").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return row[0] if row else None


@pytest.mark.parametrize("path", ["executor", "psql"])
def test_restore_holds_row_locks_only_per_batch(fresh_db_each, tmp_path, path) -> None:
    db = fresh_db_each
    project = _project(tmp_path, db)
    scenario = _deploy(db, project, path)
    # the order the restore walks the backup is the server's (region is text in the default collation)
    order = [tuple(r) for r in db.execute(f"SELECT region, id FROM {BACKUP} ORDER BY region, id")]
    assert set(order) == scenario.backfilled
    batch_no = 6
    held = next(k for k in order[batch_no * BATCH + BATCH // 2:] if scenario.restorable(k))   # mid-batch
    earlier = next(k for k in order[:batch_no * BATCH] if k in scenario.now)
    later = next(k for k in reversed(order) if k in scenario.now)

    sampler = LockSampler(db)
    sampler.start()
    holder = _hold_row(db, held)
    watcher = db.connect()
    run = _start_rollback(db, project, path)
    try:
        pid, xid = _wait(lambda: _blocked_restore(watcher, holder), "a restore batch waits for the held row", run)
        assert xid is not None
        # only the batches before this one are committed
        assert _batches_done(watcher) == order.index(held) // BATCH == batch_no
        # the restore's transaction has touched at most one batch of rows
        touched = watcher.execute("SELECT count(*) FROM public.orders WHERE xmax::text = %s", [xid]).fetchone()[0]
        assert touched <= BATCH, touched
        # and holds ROW EXCLUSIVE on the table, nothing stronger; nobody else holds a conflicting lock
        modes = watcher.execute("SELECT pid, mode FROM pg_catalog.pg_locks WHERE locktype = 'relation' AND granted"
                                " AND relation = 'public.orders'::regclass").fetchall()
        assert (pid, "RowExclusiveLock") in modes
        assert not [m for _, m in modes if m in CONFLICTING], modes
        # rows of committed and of later batches are free: a writer would not wait for them
        for key in (earlier, later):
            with watcher.transaction(force_rollback=True):
                assert watcher.execute("SELECT 1 FROM public.orders WHERE region = %s AND id = %s FOR UPDATE NOWAIT",
                                       list(key)).fetchall() == [(1,)]
    finally:
        holder.rollback()
        holder.close()
    out, err = run.communicate(timeout=300)
    sampler.stop()
    watcher.close()
    assert run.returncode == 0, out + err
    assert sampler.samples > 0 and sampler.violations == [], sampler.violations[:5]
    _assert_restored(db, scenario, out + err)


# --------------------------------------------------------------------------- (3) killed and resumed


@pytest.mark.parametrize("path", ["executor", "psql"])
def test_killed_restore_resumes_to_the_uninterrupted_result(fresh_db_each, tmp_path, path) -> None:
    db = fresh_db_each
    project = _project(tmp_path, db)
    scenario = _deploy(db, project, path)
    order = [tuple(r) for r in db.execute(f"SELECT region, id FROM {BACKUP} ORDER BY region, id")]
    batch_no = 9
    held = next(k for k in order[batch_no * BATCH + 7:] if scenario.restorable(k))
    holder = _hold_row(db, held)
    watcher = db.connect()
    run = _start_rollback(db, project, path)
    try:
        pid, _xid = _wait(lambda: _blocked_restore(watcher, holder), "a restore batch waits for the held row", run)
        done = _wait(lambda: _batches_done(watcher), "committed restore batches", run)
        assert done == batch_no
        committed = watcher.execute(f"SELECT dbdeploy_rows_restored, dbdeploy_rows_kept FROM {CURSOR}").fetchone()
        assert sum(committed) > 0
        assert watcher.execute("SELECT pg_catalog.pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        out, err = run.communicate(timeout=120)
    finally:
        holder.rollback()
        holder.close()
    assert run.returncode != 0, out + err
    # the killed batch left nothing; the committed ones are behind the cursor
    assert _batches_done(watcher) == batch_no
    assert watcher.execute(f"SELECT dbdeploy_rows_restored, dbdeploy_rows_kept FROM {CURSOR}").fetchone() == committed
    watcher.close()

    result = _rollback(db, project, path)
    output = result.stdout + result.stderr
    if path == "psql":      # the file runs every step again; the first one finds the cursor
        assert "continuing at its cursor" in output, output
    _assert_restored(db, scenario, output)


# --------------------------------------------------------------------------- an older backup


def test_backup_without_written_values_is_restored_in_one_statement(fresh_db) -> None:
    """A backup an older dbdeploy made (no ``dbdeploy_written_*`` columns) cannot tell changed rows
    apart: the first step copies every backed-up row's current values to a timestamped table and
    restores them all in one statement (documented), the batch step then has nothing to do."""
    from dbdeploy import Backfill
    from dbdeploy.ops.base import PlanContext, SchemaState, TableState

    state = SchemaState(tables={"public.t": TableState(primary_key=["id"])})
    steps = Backfill(table="public.t", set={"v": "1"}, batch_size=100).rollback(
        PlanContext(version="001", migration_name="m", index=2, state=state))
    assert [s.kind for s in steps] == ["restore_backfill", "restore_backfill_values", "restore_backfill_finish"]
    fresh_db.execute("CREATE SCHEMA dbdeploy_backup; CREATE TABLE public.t (id int PRIMARY KEY, v int);"
                     "INSERT INTO public.t SELECT g, CASE WHEN g % 2 = 0 THEN 1 ELSE 7 END"
                     " FROM generate_series(1, 3000) g;"
                     "CREATE TABLE dbdeploy_backup.v001_op2_t (id int PRIMARY KEY, v int);"
                     "INSERT INTO dbdeploy_backup.v001_op2_t SELECT g, g FROM generate_series(2, 3000, 2) g;"
                     "CREATE TABLE dbdeploy_backup.v001_op2_t_progress (id int)")
    before = dict(fresh_db.execute("SELECT id, v FROM public.t"))
    for step in steps:
        fresh_db.execute(step.sql if not step.transactional else f"BEGIN;\n{step.sql}\nCOMMIT;")
    after = dict(fresh_db.execute("SELECT id, v FROM public.t"))
    assert after == {k: (k if k % 2 == 0 else v) for k, v in before.items()}
    copies = fresh_db.execute("SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                              " WHERE n.nspname = 'dbdeploy_backup' AND relname LIKE 'r001_t_current_%'")
    assert len(copies) == 1
    assert fresh_db.execute(f"SELECT count(*), min(v), max(v) FROM dbdeploy_backup.{copies[0][0]}") == [(1500, 1, 1)]
    assert fresh_db.execute("SELECT to_regclass('dbdeploy_backup.v001_op2_t'),"
                            " to_regclass('dbdeploy_backup.v001_op2_t_progress'),"
                            " to_regclass('dbdeploy_backup.v001_op2_t_restore')") == [(None, None, None)]
