"""RenameIndex, RenameConstraint, DropConstraint and AddPrimaryKey: the refusals a round trip cannot show,
on every server (PostgreSQL 15 and 18), with psql running the bundles exactly as they are generated.

- DropConstraint of a primary key that other tables' foreign keys reference refuses before any change,
  naming them (never CASCADE);
- the rollback of a dropped unique constraint refuses, changing nothing, when rows written since hold
  duplicated keys (their count in the error); likewise a CHECK's violating rows;
- AddPrimaryKey refuses, changing nothing, on NULL keys or duplicated keys (counts in the error) and on
  a table that already has a primary key; an INVALID index left by a failed build is dropped and rebuilt;
- the renames roll back only what their version renamed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from dbdeploy import AddPrimaryKey, DropConstraint, Migration, RenameConstraint, RenameIndex
from tests.bundles import write_bundles
from tests.catalog import diff
from tests.pg import TestDatabase
from tests.roundtrip import catalog, constraint, data_snapshot, expect_failure, index_valid, log_status, run_sql_file
from tests.test_ops_roundtrip import ALTER_ROWS, CLIENTS

# The suite runs these focused tests on the primary server (the round trips of the same operations in
# tests/test_ops_roundtrip.py run on every server); DBDEPLOY_FULL=1 runs them on every server.
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

DATA = {"public.clients": "id", "public.client_orders": "id", "public.legacy_events": "event_id"}


def _bundle(tmp_path: Path, *operations, version: str = "001"):
    return write_bundles([Migration(version=version, name="focused", operations=list(operations))],
                         tmp_path)[version]


def _state(conn: psycopg.Connection) -> tuple[dict, dict]:
    return catalog(conn), data_snapshot(conn, DATA)


def _assert_unchanged(before: tuple[dict, dict], after: tuple[dict, dict]) -> None:
    assert before[0] == after[0], f"the catalog changed:\n{diff(before[0], after[0])}"
    assert before[1] == after[1], "rows changed"


def test_drop_primary_key_with_referencing_foreign_keys_refuses(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    db.execute(CLIENTS)
    db.execute("CREATE TABLE public.client_notes (id integer PRIMARY KEY,"
               " client_id integer CONSTRAINT client_notes_client_fk REFERENCES public.clients (id));"
               "INSERT INTO public.client_notes SELECT g, g FROM generate_series(1, 50) g;")
    before = _state(conn)
    bundle = _bundle(tmp_path, DropConstraint(table="public.clients", name="clients_pkey"))
    expect_failure(db, bundle.forward, "refusing to drop constraint clients_pkey of public.clients",
                   "client_notes (foreign key client_notes_client_fk)",
                   "client_orders (foreign key client_orders_client_fk)",
                   "Drop those foreign keys first with DropConstraint")
    _assert_unchanged(before, _state(conn))
    assert constraint(conn, "public.clients", "clients_pkey") == ("PRIMARY KEY (id)", True)
    # nothing saved either: the refusal comes before the bookkeeping table is created
    assert db.execute("SELECT to_regclass('dbdeploy_backup.dropped_constraints') IS NULL") == [(True,)]


def test_rollback_of_dropped_unique_refuses_on_duplicates(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    db.execute(CLIENTS)
    bundle = _bundle(tmp_path, DropConstraint(table="public.clients", name="clients_email_key"))
    run_sql_file(db, bundle.forward)
    assert constraint(conn, "public.clients", "clients_email_key") is None
    # the application writes duplicated e-mails while the constraint is gone: 3 keys, 7 rows
    db.execute(f"INSERT INTO public.clients SELECT {ALTER_ROWS} + g, 'client' || (g % 3 + 1) || '@example.com', 1"
               " FROM generate_series(1, 7) g")
    before = _state(conn)
    expect_failure(db, bundle.rollback, "rollback refused before any change",
                   "cannot re-add constraint clients_email_key of public.clients: keys written since the drop are "
                   "duplicated; duplicated keys: 3")
    _assert_unchanged(before, _state(conn))
    assert log_status(conn, "001") == "completed"
    # fixed by the operator, the rollback goes through
    db.execute(f"DELETE FROM public.clients WHERE id > {ALTER_ROWS}")
    run_sql_file(db, bundle.rollback)
    assert constraint(conn, "public.clients", "clients_email_key") == ("UNIQUE (email)", True)
    assert log_status(conn, "001") == "rolled_back"


def test_rollback_of_dropped_check_refuses_on_violating_rows(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    db.execute(CLIENTS)
    bundle = _bundle(tmp_path, DropConstraint(table="public.clients", name="clients_score_check"),
                     DropConstraint(table="public.client_orders", name="client_orders_client_fk"))
    run_sql_file(db, bundle.forward)
    db.execute("UPDATE public.clients SET score = -1 WHERE id <= 4")
    db.execute("INSERT INTO public.client_orders VALUES (-1, 999999999, 1), (-2, 999999998, 1)")
    before = _state(conn)
    expect_failure(db, bundle.rollback, "rows written since the drop violate it; rows: 4",
                   "rows written since the drop have no referenced row; rows: 2")
    _assert_unchanged(before, _state(conn))


def test_spec_known_unique_rollback_rebuilds_concurrently(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """The rollback of a unique constraint the specs created builds its index concurrently and attaches it."""
    from tests.test_ops_roundtrip import CREATE_MEMBERS, MEMBER_ROWS

    db = fresh_db_each
    conn = db.connect()
    bundles = write_bundles([Migration(version="001", name="members", operations=[CREATE_MEMBERS]),
                             Migration(version="002", name="drop_handle_key", operations=[
                                 DropConstraint(table="public.members", name="members_handle_key")])], tmp_path)
    run_sql_file(db, bundles["001"].forward)
    db.execute(MEMBER_ROWS)
    rollback = bundles["002"].rollback.read_text()
    assert ('CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "members_handle_key" ON "public"."members" ("handle");'
            in rollback)
    run_sql_file(db, bundles["002"].forward)
    assert not index_valid(conn, "public.members_handle_key")
    run_sql_file(db, bundles["002"].rollback)
    assert constraint(conn, "public.members", "members_handle_key") == ("UNIQUE (handle)", True)


@pytest.mark.parametrize("problem, fragments", [
    ("UPDATE public.legacy_events SET event_id = NULL WHERE event_id <= 5",
     ["rows with a NULL key column; nothing was changed; rows: 5 (event_id: 5)"]),
    ("UPDATE public.legacy_events SET event_id = event_id - 1 WHERE event_id IN (2, 4, 6)",
     ["cannot add primary key legacy_events_pkey on public.legacy_events (event_id); nothing was changed:",
      "3 key(s) appear more than once"]),
    ("ALTER TABLE public.legacy_events ADD CONSTRAINT legacy_events_old_pk PRIMARY KEY (source, payload)",
     ["public.legacy_events already has a primary key; nothing was changed: legacy_events_old_pk"]),
], ids=["nulls", "duplicates", "has-primary-key"])
def test_add_primary_key_refuses_with_counts(problem: str, fragments: list[str], fresh_db_each: TestDatabase,
                                             tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    db.execute(CLIENTS)
    db.execute(problem)
    before = _state(conn)
    bundle = _bundle(tmp_path, AddPrimaryKey(table="public.legacy_events", columns=["event_id"]))
    expect_failure(db, bundle.forward, *fragments)
    _assert_unchanged(before, _state(conn))
    assert db.execute("SELECT count(*) FROM migrations.migration_objects") == [(0,)]


def test_add_primary_key_rebuilds_an_invalid_leftover(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    db.execute(CLIENTS)
    with pytest.raises(psycopg.errors.DivisionByZero):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY legacy_events_pkey ON public.legacy_events"
                   " ((1 / (event_id - event_id)))")
    assert index_valid(conn, "public.legacy_events_pkey") is False
    (invalid_oid,) = conn.execute("SELECT 'public.legacy_events_pkey'::regclass::oid").fetchone()
    bundle = _bundle(tmp_path, AddPrimaryKey(table="public.legacy_events", columns=["event_id"]))
    proc = run_sql_file(db, bundle.forward)
    assert 'index "public"."legacy_events_pkey" is INVALID' in proc.stderr, proc.stderr
    assert constraint(conn, "public.legacy_events", "legacy_events_pkey") == ("PRIMARY KEY (event_id)", True)
    assert conn.execute("SELECT 'public.legacy_events_pkey'::regclass::oid").fetchone() != (invalid_oid,)
    assert db.execute("SELECT count(*) FROM pg_class WHERE relname LIKE '%dbdeploy_invalid'") == [(0,)]
    run_sql_file(db, bundle.rollback)
    assert constraint(conn, "public.legacy_events", "legacy_events_pkey") is None
    assert db.execute("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'public.legacy_events'::regclass"
                      " AND attname = 'event_id'") == [(False,)]


def test_add_primary_key_rollback_keeps_not_null_it_did_not_make(fresh_db_each: TestDatabase,
                                                                 tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    db.execute(CLIENTS)
    db.execute("ALTER TABLE public.legacy_events ALTER COLUMN event_id SET NOT NULL")
    bundle = _bundle(tmp_path, AddPrimaryKey(table="public.legacy_events", columns=["event_id", "source"],
                                             name="legacy_events_key"))
    run_sql_file(db, bundle.forward)
    assert constraint(conn, "public.legacy_events", "legacy_events_key") == ("PRIMARY KEY (event_id, source)", True)
    run_sql_file(db, bundle.rollback)
    assert db.execute("SELECT attname, attnotnull FROM pg_attribute WHERE attrelid = 'public.legacy_events'::regclass"
                      " AND attname IN ('event_id', 'source') ORDER BY attname") == [("event_id", True),
                                                                                     ("source", False)]


def test_renames_roll_back_only_what_the_version_renamed(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    db.execute(CLIENTS)
    # already renamed by hand before the version: the forward notices it, the rollback leaves it
    db.execute("ALTER INDEX public.client_orders_amount_idx RENAME TO client_orders_by_amount_idx;"
               "ALTER TABLE public.clients RENAME CONSTRAINT clients_score_check TO score_not_negative;")
    bundle = _bundle(tmp_path, RenameIndex(name="public.client_orders_amount_idx",
                                           new_name="client_orders_by_amount_idx"),
                     RenameConstraint(table="public.clients", name="clients_score_check",
                                      new_name="score_not_negative"))
    proc = run_sql_file(db, bundle.forward)
    assert "is already renamed" in proc.stderr, proc.stderr
    run_sql_file(db, bundle.rollback)
    assert index_valid(conn, "public.client_orders_by_amount_idx") is True
    assert constraint(conn, "public.clients", "score_not_negative") == ("CHECK ((score >= 0))", True)


def test_rename_index_behind_a_constraint_is_refused(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    db.execute(CLIENTS)
    before = _state(conn)
    bundle = _bundle(tmp_path, RenameIndex(name="public.clients_email_key", new_name="clients_mail_key"))
    expect_failure(db, bundle.forward, "backs a constraint", "Use RenameConstraint")
    _assert_unchanged(before, _state(conn))


def _generated_test(db: TestDatabase, folder: Path, *args: str) -> subprocess.CompletedProcess:
    (test_file,) = folder.glob("test_*.py")
    env = dict(os.environ, DBDEPLOY_TEST_DSN=db.dsn)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder),
                           str(test_file), *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_generated_tests_pass_after_forward_and_after_rollback(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """The expectations of the four operations (both groups of the generated test file) hold on a real
    database: after the forward, and with ``-m rolled_back`` after the rollback."""
    db = fresh_db_each
    db.execute(CLIENTS)
    bundle = _bundle(
        tmp_path,
        RenameIndex(name="public.client_orders_amount_idx", new_name="client_orders_by_amount_idx"),
        RenameConstraint(table="public.clients", name="clients_score_check", new_name="score_not_negative"),
        DropConstraint(table="public.client_orders", name="client_orders_client_fk"),
        DropConstraint(table="public.audit_log", name="audit_log_pkey"),
        AddPrimaryKey(table="public.legacy_events", columns=["event_id"]))
    before = _generated_test(db, bundle.folder)
    assert before.returncode == 1, before.stdout
    run_sql_file(db, bundle.forward)
    after = _generated_test(db, bundle.folder)
    assert after.returncode == 0, after.stdout
    run_sql_file(db, bundle.rollback)
    rolled_back = _generated_test(db, bundle.folder, "-m", "rolled_back")
    assert rolled_back.returncode == 0, rolled_back.stdout
    assert " passed" in rolled_back.stdout


def test_same_named_constraints_of_two_tables_are_kept_apart(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """Constraint names are per table: two dropped ``…_key``s in one version keep separate definitions
    (the keeper's copy is named after the keeper, not after the constraint)."""
    db = fresh_db_each
    conn = db.connect()
    db.execute("CREATE SCHEMA a; CREATE SCHEMA b;"
               "CREATE TABLE a.items (id integer PRIMARY KEY, code text CONSTRAINT code_key UNIQUE);"
               "CREATE TABLE b.items (id integer PRIMARY KEY, code text, n integer,"
               " CONSTRAINT code_key UNIQUE (code, n));"
               "INSERT INTO a.items SELECT g, 'c' || g FROM generate_series(1, 100) g;"
               "INSERT INTO b.items SELECT g, 'c' || g, g FROM generate_series(1, 100) g;")
    before = _state(conn)
    bundle = _bundle(tmp_path, DropConstraint(table="a.items", name="code_key"),
                     DropConstraint(table="b.items", name="code_key"))
    run_sql_file(db, bundle.forward)
    assert constraint(conn, "a.items", "code_key") is None and constraint(conn, "b.items", "code_key") is None
    run_sql_file(db, bundle.rollback)
    assert constraint(conn, "a.items", "code_key") == ("UNIQUE (code)", True)
    assert constraint(conn, "b.items", "code_key") == ("UNIQUE (code, n)", True)
    assert catalog(conn) == before[0]


def test_dropping_a_skipped_optional_foreign_key_is_a_recorded_no_op(fresh_db_each: TestDatabase,
                                                                     tmp_path: Path) -> None:
    """An optional foreign key skipped while its table is missing: the drop has nothing to drop and says so
    (a row of type '-'); the rollback has nothing to re-add and does not refuse."""
    from dbdeploy import Column, CreateTable, ForeignKey

    db = fresh_db_each
    conn = db.connect()
    bundles = write_bundles([
        Migration(version="001", name="visits", operations=[CreateTable(
            table="public.visits", columns=[Column(name="id", type="bigint"), Column(name="tenant_id", type="bigint")],
            primary_key=["id"], foreign_keys=[ForeignKey(
                columns=["tenant_id"], references="auth.tenants", ref_columns=["id"], optional=True,
                name="visits_tenant_fk")])]),
        Migration(version="002", name="drop_tenant_fk", operations=[
            DropConstraint(table="public.visits", name="visits_tenant_fk")])], tmp_path)
    run_sql_file(db, bundles["001"].forward)
    db.execute("INSERT INTO public.visits SELECT g, g FROM generate_series(1, 20) g")
    before = _state(conn)
    proc = run_sql_file(db, bundles["002"].forward)
    assert "an optional foreign key whose table is missing); nothing to drop" in proc.stderr, proc.stderr
    run_sql_file(db, bundles["002"].forward)    # again: nothing more
    run_sql_file(db, bundles["002"].rollback)
    assert log_status(conn, "002") == "rolled_back"
    assert catalog(conn) == before[0]
    assert db.execute("SELECT count(*) FROM dbdeploy_backup.dropped_constraints") == [(0,)]


def test_rollback_of_dropped_foreign_key_refuses_when_its_table_is_gone(fresh_db_each: TestDatabase,
                                                                         tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    db.execute(CLIENTS)
    bundle = _bundle(tmp_path, DropConstraint(table="public.client_orders", name="client_orders_client_fk"))
    run_sql_file(db, bundle.forward)
    db.execute("ALTER TABLE public.clients RENAME TO clients_old")
    before = _state(conn)
    expect_failure(db, bundle.rollback, "cannot re-add constraint client_orders_client_fk of public.client_orders: "
                                        "the table it references is gone: public.clients")
    _assert_unchanged(before, _state(conn))
