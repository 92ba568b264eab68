"""DropColumn's rollback rebuilds the spec-known unique indexes and unique constraints on the column online.

A unique index (``Index(unique=True)``) or unique constraint (CreateTable's ``uniques``) on the
dropped column is rebuilt by the rollback with ``CREATE UNIQUE INDEX CONCURRENTLY`` in its own
step (SHARE UPDATE EXCLUSIVE), the constraint attached afterwards in a short step; only indexes
the specs do not know are still built inside the last ACCESS EXCLUSIVE transaction, and its
NOTICE names them. Every test runs through the executor and through psql on a fresh database
with 6,000 rows.

What is checked, structurally (no durations):

* while the unique build runs — kept in its last phase by a REPEATABLE READ transaction opened
  before the rollback (``CREATE INDEX CONCURRENTLY`` waits for older snapshots, holding its lock),
  the same statement seen running before and after — the building backend holds SHARE UPDATE
  EXCLUSIVE on the table and nothing that conflicts with a writer's ROW EXCLUSIVE, and a writer
  with a 2 s ``lock_timeout`` inserts and updates rows, waiting on nothing;
* afterwards the index exists, is valid and unique, the constraint exists (``contype = 'u'``), the
  hand-made index was built in the finish transaction and named in its NOTICE, and every value is
  back (the writer's writes to the re-added column kept);
* rows inserted while the column was gone get its default, so they can collide: the rollback then
  refuses before the build with the number of duplicated keys (counted here independently),
  builds nothing, changes no row, and continues once the duplicates are fixed.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import psycopg
import pytest

from tests.executor_support import make_project, write_spec

PRIMARY_SERVER_ONLY_UNLESS_FULL = True
ROWS = 6_000

SPEC = '''
from dbdeploy import Column, CreateTable, DropColumn, Index, Migration, Unique
first = Migration(version="001", name="members", operations=[CreateTable(
    table="public.members", primary_key=["id"],
    columns=[Column(name="id", type="bigint"), Column(name="region", type="text", nullable=False),
             Column(name="handle", type="text", default="'anon'"), Column(name="code", type="text", default="'none'"),
             Column(name="seen", type="integer", nullable=False, default="0")],
    uniques=[Unique(columns=["region", "code"], name="members_region_code_key")],
    indexes=[Index(columns=["handle"], unique=True, name="members_handle_key")])])
second = Migration(version="002", name="drop_COLUMN", operations=[
    DropColumn(table="public.members", column="COLUMN", batch_size=1000)])
'''

POPULATE = f"""
INSERT INTO public.members (id, region, handle, code)
SELECT g, 'r' || (g % 5), CASE WHEN g % 13 = 0 THEN NULL ELSE 'h' || g || ' ü' END,
       CASE WHEN g % 11 = 0 THEN NULL ELSE 'c' || (g / 5) END
FROM generate_series(1, {ROWS}) g;
"""

# kind → (dropped column, the unique index's name, the constraint's name or None)
KINDS = {"index": ("handle", "members_handle_key", None),
         "constraint": ("code", "members_region_code_key", "members_region_code_key")}
CONFLICTING = {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}
BUILD = "CREATE UNIQUE INDEX CONCURRENTLY"


def _project(tmp_path: Path, db, column: str):
    specs = tmp_path / "specs_src"
    write_spec(specs, "V001_spec.py", SPEC.replace("COLUMN", column))
    return make_project(tmp_path / "p", db.dsn, specs=specs)


def _ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _file(project, version: str, rollback: bool) -> Path:
    pattern = f"V{version}__*/V{version}__rollback_*.sql" if rollback else f"V{version}__*/V{version}__[!r]*.sql"
    return next(project.generated.glob(pattern))


def _prepare(db, tmp_path: Path, kind: str):
    """Version 1 applied with ``ROWS`` rows and a hand-made index on the column (unknown to the specs)."""
    column, _index, _constraint = KINDS[kind]
    project = _project(tmp_path, db, column)
    _ok(project.run("apply", "--env", "test", "--to", "1", "--plain"))
    db.execute(POPULATE)
    db.execute(f"CREATE INDEX members_{column}_hand_idx ON public.members (lower({column}))")
    db.execute("ANALYZE public.members")
    return project


def _forward(db, project, path: str) -> None:
    if path == "executor":
        _ok(project.run("apply", "--env", "test", "--plain"))
    else:
        _ok(project.run("generate"))
        db.psql_file(_file(project, "002", rollback=False))


def _start_rollback(db, project, path: str):
    import subprocess

    if path == "executor":
        return project.start("rollback", "--env", "test", "--to", "1", "--plain")
    return subprocess.Popen([db.server.psql, "-X", "-v", "ON_ERROR_STOP=1", "-d", db.dsn, "-f",
                             str(_file(project, "002", rollback=True))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(db, column: str) -> dict[int, str | None]:
    return dict(db.execute(f"SELECT id, {column} FROM public.members"))


def _index_state(db, name: str) -> list[tuple]:
    return db.execute("SELECT i.indisvalid, i.indisunique FROM pg_catalog.pg_index i"
                      " WHERE i.indexrelid = pg_catalog.to_regclass(%s)", [f"public.{name}"])


def _wait_for_build(watch: psycopg.Connection, proc, timeout: float = 120) -> tuple[int, object]:
    """(pid, query_start) of the backend running the unique build, once it waits (for the old snapshot)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = watch.execute(
            "SELECT pid, query_start FROM pg_catalog.pg_stat_activity WHERE datname = pg_catalog.current_database()"
            " AND state = 'active' AND pid <> pg_catalog.pg_backend_pid() AND wait_event_type = 'Lock'"
            " AND pg_catalog.strpos(query, %s) > 0", [BUILD]).fetchone()
        if row is not None:
            return row
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the rollback ended before its unique build was seen: {out}{err}")
        time.sleep(0.01)
    raise AssertionError("timed out waiting for the unique build")


def _still_building(watch: psycopg.Connection, pid: int, started) -> bool:
    row = watch.execute("SELECT query_start, pg_catalog.strpos(query, %s) > 0 FROM pg_catalog.pg_stat_activity"
                        " WHERE pid = %s", [BUILD, pid]).fetchone()
    return row is not None and row[0] == started and row[1]


@pytest.mark.parametrize("path", ["executor", "psql"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_rollback_rebuilds_unique_online(fresh_db_each, tmp_path, kind, path) -> None:
    db = fresh_db_each
    column, index, constraint = KINDS[kind]
    project = _prepare(db, tmp_path, kind)
    before = _rows(db, column)
    _forward(db, project, path)
    assert _index_state(db, index) == []
    # a row inserted while the column was gone: it gets the column default back
    other = "code" if column == "handle" else "handle"
    db.execute(f"INSERT INTO public.members (id, region, {other}) VALUES (%s, 'gone', 'x1')", [ROWS + 1])

    old_snapshot = db.connect(autocommit=False)
    old_snapshot.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    old_snapshot.execute("SELECT 1")        # a snapshot older than the build's: its last phase waits for it
    proc = _start_rollback(db, project, path)
    watch = db.connect()
    writer = db.connect()
    released = False
    try:
        pid, started = _wait_for_build(watch, proc)
        held = {mode for (mode,) in watch.execute(
            "SELECT mode FROM pg_catalog.pg_locks WHERE pid = %s AND locktype = 'relation' AND granted"
            " AND relation = 'public.members'::pg_catalog.regclass", [pid]).fetchall()}
        writer.execute("SET lock_timeout = '2s'")
        writer.execute(f"INSERT INTO public.members (id, region, {column}, {other}) VALUES (%s, 'during', 'w1', 'x2')",
                       [ROWS + 2])
        writer.execute(f"UPDATE public.members SET {column} = 'w2', seen = seen + 1 WHERE id = 7")
        held_after = {mode for (mode,) in watch.execute(
            "SELECT mode FROM pg_catalog.pg_locks WHERE pid = %s AND locktype = 'relation' AND granted"
            " AND relation = 'public.members'::pg_catalog.regclass", [pid]).fetchall()}
        assert _still_building(watch, pid, started), "the build ended before the writer's statements ran"
        # nobody else in this database waits for a lock (the build itself waits for the old snapshot)
        waiting = watch.execute("SELECT l.locktype, l.mode FROM pg_catalog.pg_locks l"
                                " JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted"
                                " AND a.datname = pg_catalog.current_database() AND l.pid <> %s", [pid]).fetchall()
        old_snapshot.commit()
        released = True
        out, err = proc.communicate(timeout=300)
    finally:
        if not released:
            old_snapshot.rollback()
        old_snapshot.close()
        writer.close()
        watch.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert "ShareUpdateExclusiveLock" in held and "ShareUpdateExclusiveLock" in held_after, (held, held_after)
    assert not (held | held_after) & CONFLICTING, (held, held_after)
    assert waiting == [], waiting

    assert _index_state(db, index) == [(True, True)]
    if constraint is not None:
        assert db.execute("SELECT contype, pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint"
                          " WHERE conrelid = 'public.members'::pg_catalog.regclass AND conname = %s", [constraint]) == [
            ("u", "UNIQUE (region, code)")]
        assert db.execute("SELECT conindid = 'public.members_region_code_key'::pg_catalog.regclass"
                          " FROM pg_catalog.pg_constraint WHERE conname = %s", [constraint]) == [(True,)]
    default = db.execute("SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d JOIN"
                         " pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
                         " WHERE a.attrelid = 'public.members'::pg_catalog.regclass AND a.attname = %s", [column])
    expected = {**before, 7: "w2", ROWS + 1: db.execute(f"SELECT {default[0][0]}")[0][0], ROWS + 2: "w1"}
    assert _rows(db, column) == expected
    # the index the specs do not know: built in the finish transaction, named in its NOTICE
    hand = f"members_{column}_hand_idx"
    assert _index_state(db, hand) == [(True, False)]
    notices = [line for line in (out + err).splitlines() if "built in this ACCESS EXCLUSIVE transaction" in line]
    assert len(notices) == 1 and notices[0].rstrip().endswith(hand), out + err
    assert index not in notices[0]
    assert db.execute("SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
                      " ON n.oid = c.relnamespace WHERE n.nspname = 'dbdeploy_backup' AND c.relname LIKE 'v002%'"
                      ) == [(0,)]


def _duplicated_keys(db, kind: str) -> int:
    keys = "handle" if kind == "index" else "region, code"
    not_null = "handle IS NOT NULL" if kind == "index" else "code IS NOT NULL"
    return db.execute(f"SELECT count(*) FROM (SELECT 1 FROM public.members WHERE {not_null} GROUP BY {keys}"
                      " HAVING count(*) > 1) d")[0][0]


@pytest.mark.parametrize("path", ["executor", "psql"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_duplicates_written_while_the_column_was_gone_make_the_rollback_refuse(fresh_db_each, tmp_path, kind,
                                                                                path) -> None:
    db = fresh_db_each
    column, index, constraint = KINDS[kind]
    project = _prepare(db, tmp_path, kind)
    before = _rows(db, column)
    _forward(db, project, path)
    # rows inserted while the column is gone all get its default back: duplicated keys
    other = "code" if column == "handle" else "handle"
    db.execute(f"INSERT INTO public.members (id, region, {other}) SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b'"
               f" END, 'x' || g FROM generate_series({ROWS + 1}, {ROWS + 5}) g")
    if path == "executor":
        failed = project.run("rollback", "--env", "test", "--to", "1", "--plain")
    else:
        failed = db.psql("-v", "ON_ERROR_STOP=1", "-f", str(_file(project, "002", rollback=True)), check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output
    count = _duplicated_keys(db, kind)
    assert count > 0
    match = re.search(r"cannot build unique index \S+ on public\.members \([^)]*\): (\d+) key\(s\) appear more than "
                      r"once", output)
    assert match is not None, output
    assert int(match.group(1)) == count
    assert "Change or delete the rows with duplicated keys" in output
    # nothing was built, and the data is as the restore left it: every value back, new rows defaulted
    assert _index_state(db, index) == []
    assert db.execute("SELECT count(*) FROM pg_catalog.pg_index WHERE NOT indisvalid") == [(0,)]
    if constraint is not None:
        assert db.execute("SELECT count(*) FROM pg_catalog.pg_constraint WHERE conname = %s"
                          " AND conrelid = 'public.members'::pg_catalog.regclass", [constraint]) == [(0,)]
    others = db.execute("SELECT id, region, seen FROM public.members ORDER BY id")
    default = "anon" if column == "handle" else "none"
    assert _rows(db, column) == {**before, **{i: default for i in range(ROWS + 1, ROWS + 6)}}

    # the way on: fix the duplicates, run the rollback again; it continues and completes
    db.execute(f"UPDATE public.members SET {column} = 'fixed ' || id WHERE id > {ROWS}")
    if path == "executor":
        _ok(project.run("rollback", "--env", "test", "--to", "1", "--plain"))
    else:
        db.psql_file(_file(project, "002", rollback=True))
    assert _index_state(db, index) == [(True, True)]
    if constraint is not None:
        assert db.execute("SELECT contype FROM pg_catalog.pg_constraint WHERE conname = %s", [constraint]) == [("u",)]
    assert _rows(db, column) == {**before, **{i: f"fixed {i}" for i in range(ROWS + 1, ROWS + 6)}}
    assert db.execute("SELECT id, region, seen FROM public.members ORDER BY id") == others
