"""Enum types (issue 13): what the round trips (tests/test_ops_roundtrip.py) cannot see.

Real servers, real rows, bundles run with ``psql -v ON_ERROR_STOP=1 -f`` as an operator would:

* AddEnumValue's rollback refuses, before any change and with the count, while rows (scalar or array
  columns) hold the label, and otherwise rebuilds the type keeping every row, default and index;
* a later step of the same migration can use the new label (the ADD VALUE step committed on its own);
* the rebuild refuses shapes it does not handle (a view on the type) and names them;
* CreateEnum accepts an identical existing type (and its rollback leaves it), stops on a different
  one, and its rollback refuses, naming it, while a column outside the migration uses the type;
* DropEnum refuses while a column uses the type, and its rollback re-creates the labels in order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dbdeploy import AddEnumValue, CreateEnum, DropEnum, SetDefault
from tests.bundles import write_bundles
from tests.pg import TestDatabase
from tests.roundtrip import catalog, dict_rows, expect_failure, log_status, run_sql_file
from tests.test_ops_roundtrip import TICKET_ROWS, TICKETS_SPEC, mig

# The suite runs these focused tests on the primary server (the round trips of the same operations in
# tests/test_ops_roundtrip.py run on every server); DBDEPLOY_FULL=1 runs them on every server.
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

pytestmark = pytest.mark.usefixtures("_fixed_batches")


@pytest.fixture
def _fixed_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOPTIONS", "-c dbdeploy.batch_time=0")


def _labels(db: TestDatabase, type_name: str) -> list[str]:
    return [r[0] for r in db.execute("SELECT enumlabel::text FROM pg_enum WHERE enumtypid = %s::regtype"
                                     " ORDER BY enumsortorder", (type_name,))]


def _tickets(db: TestDatabase) -> list:
    return db.execute("SELECT id, title, status::text, history::text[] FROM public.tickets ORDER BY id")


def _escalate(tmp_path: Path, *extra):
    bundles = write_bundles([TICKETS_SPEC, mig("002", "escalated", AddEnumValue(
        type="public.ticket_status", value="escalated", after="open"), *extra)], tmp_path)
    return bundles["001"], bundles["002"]


def test_add_enum_value_rollback_refuses_with_the_count_then_rebuilds_keeping_every_row(
        fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db_each, fresh_db_each.connect()
    first, second = _escalate(tmp_path)
    run_sql_file(db, first.forward)
    db.execute(TICKET_ROWS)
    s0 = catalog(conn)
    run_sql_file(db, second.forward)
    assert _labels(db, "public.ticket_status") == ["open", "escalated", "pending", "closed"]
    db.execute("UPDATE public.tickets SET status = 'escalated' WHERE id % 50 = 0")            # 40 rows
    db.execute("UPDATE public.tickets SET history = history || 'escalated'::public.ticket_status"
               " WHERE id % 300 = 1")                                                          # 7 rows
    (scalar, array), = db.execute("SELECT count(*) FILTER (WHERE status = 'escalated'),"
                                  " count(*) FILTER (WHERE 'escalated' = ANY (history)) FROM public.tickets")
    assert scalar > 0 and array > 0
    before = _tickets(db)
    s1 = catalog(conn)

    expect_failure(db, second.rollback, "rollback refused before any change",
                   "cannot remove label 'escalated' of enum public.ticket_status", f"rows using it: {scalar + array}",
                   "Change those rows to another label")
    assert _tickets(db) == before, "the refused rollback changed rows"
    assert catalog(conn) == s1, "the refused rollback changed the catalog"
    assert log_status(conn, "002") != "rolled_back"

    db.execute("UPDATE public.tickets SET status = 'pending' WHERE status = 'escalated'")
    db.execute("UPDATE public.tickets SET history = array_remove(history, 'escalated')")
    after_fix = _tickets(db)
    proc = run_sql_file(db, second.rollback)
    assert "removed label 'escalated' from enum public.ticket_status by rebuilding the type" in proc.stderr
    assert log_status(conn, "002") == "rolled_back"
    assert _labels(db, "public.ticket_status") == ["open", "pending", "closed"]
    assert _tickets(db) == after_fix, "the rebuild changed rows"
    assert catalog(conn) == s0, "the rebuild did not give back the type, defaults and index as they were"
    # the default and the rebuilt index work on the new type
    db.execute("INSERT INTO public.tickets (id, title) VALUES (-1, 'default')")
    assert db.execute("SELECT status::text, history::text FROM public.tickets WHERE id = -1") == [("open", "{}")]
    assert db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.tickets_status_idx'::regclass") == [
        (True,)]

    run_sql_file(db, second.forward)      # and forward again
    assert _labels(db, "public.ticket_status") == ["open", "escalated", "pending", "closed"]


def test_a_later_step_of_the_same_migration_uses_the_new_label(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """ADD VALUE commits in its own step, so the next (transactional) step may use the label (PostgreSQL docs,
    ALTER TYPE: not inside the transaction that added it)."""
    db, conn = fresh_db_each, fresh_db_each.connect()
    first, second = _escalate(tmp_path, SetDefault(table="public.tickets", column="status", default="'escalated'"))
    run_sql_file(db, first.forward)
    db.execute(TICKET_ROWS)
    s0, rows0 = catalog(conn), dict_rows(conn, "public.tickets", "id")
    run_sql_file(db, second.forward)
    db.execute("INSERT INTO public.tickets (id, title) VALUES (-1, 'new')")
    assert db.execute("SELECT status::text FROM public.tickets WHERE id = -1") == [("escalated",)]
    db.execute("DELETE FROM public.tickets WHERE id = -1")
    run_sql_file(db, second.rollback)
    assert catalog(conn) == s0
    assert dict_rows(conn, "public.tickets", "id") == rows0


def test_add_enum_value_rollback_names_what_the_rebuild_cannot_handle(fresh_db_each: TestDatabase,
                                                                      tmp_path: Path) -> None:
    db, conn = fresh_db_each, fresh_db_each.connect()
    first, second = _escalate(tmp_path)
    run_sql_file(db, first.forward)
    db.execute(TICKET_ROWS)
    run_sql_file(db, second.forward)
    db.execute("CREATE VIEW public.open_tickets AS SELECT id FROM public.tickets WHERE status = 'open'")
    s1, rows1 = catalog(conn), _tickets(db)
    expect_failure(db, second.rollback, "in ways the rebuild does not handle", "open_tickets")
    assert catalog(conn) == s1 and _tickets(db) == rows1
    db.execute("DROP VIEW public.open_tickets")
    run_sql_file(db, second.rollback)
    assert _labels(db, "public.ticket_status") == ["open", "pending", "closed"]


def test_create_enum_existing_type_and_dependants(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db_each, fresh_db_each.connect()
    op = CreateEnum(name="public.mood", values=["sad", "ok", "happy"])
    bundle = write_bundles([mig("001", "mood", op)], tmp_path / "a")["001"]

    # an identical type is accepted, and the rollback leaves it (not created by V001)
    db.execute("CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy')")
    s0 = catalog(conn)
    proc = run_sql_file(db, bundle.forward)
    assert "enum public.mood exists with these labels; left as it is" in proc.stderr
    proc = run_sql_file(db, bundle.rollback)
    assert "type public.mood was not created by V001; left in place" in proc.stderr
    assert catalog(conn) == s0

    # other labels (or order): the forward stops before any change
    db.execute("DROP TYPE public.mood; CREATE TYPE public.mood AS ENUM ('sad', 'happy', 'ok')")
    expect_failure(db, bundle.forward, "enum public.mood exists with other labels than the spec's; it has: sad, "
                                       "happy, ok")
    db.execute("DROP TYPE public.mood")

    # created by V001: its rollback refuses, naming it, while a column outside the migration uses it
    run_sql_file(db, bundle.forward)
    db.execute("CREATE TABLE public.diary (id int PRIMARY KEY, mood public.mood);"
               " INSERT INTO public.diary SELECT g, 'ok' FROM generate_series(1, 100) g")
    expect_failure(db, bundle.rollback, "refusing to drop type public.mood", "column mood of table public.diary")
    assert db.execute("SELECT count(*) FROM public.diary") == [(100,)]
    db.execute("DROP TABLE public.diary")
    run_sql_file(db, bundle.rollback)
    assert db.execute("SELECT to_regtype('public.mood')") == [(None,)]


def test_drop_enum_refuses_while_used_and_restores_the_labels_in_order(fresh_db_each: TestDatabase,
                                                                       tmp_path: Path) -> None:
    db = fresh_db_each
    db.execute("CREATE TYPE public.size AS ENUM ('xs', 's', 'm', 'l', 'xl');"
               " ALTER TYPE public.size ADD VALUE 'xxs' BEFORE 'xs';"
               " CREATE TABLE public.shirts (id int, size public.size[]);"
               " INSERT INTO public.shirts VALUES (1, '{s,m}')")
    bundle = write_bundles([mig("001", "drop_size", DropEnum(name="public.size"))], tmp_path)["001"]
    expect_failure(db, bundle.forward, "refusing to drop type public.size", "column size of table public.shirts")
    assert _labels(db, "public.size") == ["xxs", "xs", "s", "m", "l", "xl"]
    db.execute("DROP TABLE public.shirts")
    run_sql_file(db, bundle.forward)
    run_sql_file(db, bundle.forward)
    assert db.execute("SELECT to_regtype('public.size')") == [(None,)]
    run_sql_file(db, bundle.rollback)
    assert _labels(db, "public.size") == ["xxs", "xs", "s", "m", "l", "xl"]


def test_rollback_of_a_table_and_its_enum_keeps_the_copied_rows_as_text(fresh_db_each: TestDatabase,
                                                                       tmp_path: Path) -> None:
    """CreateTable's rollback copies the rows to the backup schema before the drop; CreateEnum's rollback then
    turns the copy's enum columns into text (the labels kept), so the type can go without CASCADE."""
    db, conn = fresh_db_each, fresh_db_each.connect()
    s0 = catalog(conn)
    bundle = write_bundles([TICKETS_SPEC], tmp_path)["001"]
    run_sql_file(db, bundle.forward)
    db.execute(TICKET_ROWS)
    rows = _tickets(db)
    proc = run_sql_file(db, bundle.rollback)
    assert "copied the rows of public.tickets" in proc.stderr, proc.stderr
    assert catalog(conn) == s0
    assert db.execute("SELECT to_regtype('public.ticket_status')") == [(None,)]
    (copy,) = [r[0] for r in db.execute("SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = relnamespace"
                                        " WHERE nspname = 'dbdeploy_backup' AND relname LIKE 'r001_tickets%'")]
    assert db.execute(f"SELECT id, title, status, history FROM dbdeploy_backup.{copy} ORDER BY id") == rows
    assert db.execute("SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = %s::regclass"
                      " AND attname IN ('status', 'history') ORDER BY attname",
                      (f"dbdeploy_backup.{copy}",)) == [("text[]",), ("text",)]


def test_rollback_ignores_rows_in_a_table_the_same_rollback_drops(fresh_db_each: TestDatabase,
                                                                   tmp_path: Path) -> None:
    """AddEnumValue then a CreateTable whose rows use the new label: the rollback drops the table first (its rows
    copied out), so the label's preflight does not count them."""
    from dbdeploy import Column, CreateTable

    db, conn = fresh_db_each, fresh_db_each.connect()
    first = write_bundles([TICKETS_SPEC], tmp_path / "a")["001"]
    run_sql_file(db, first.forward)
    db.execute(TICKET_ROWS)
    s0 = catalog(conn)
    second = write_bundles([TICKETS_SPEC, mig("002", "escalations", AddEnumValue(
        type="public.ticket_status", value="escalated"), CreateTable(table="public.escalations", columns=[
            Column(name="id", type="integer", nullable=False),
            Column(name="status", type="public.ticket_status", nullable=False, default="'escalated'")],
            primary_key=["id"]))], tmp_path / "b")["002"]
    run_sql_file(db, second.forward)
    db.execute("INSERT INTO public.escalations (id) SELECT g FROM generate_series(1, 25) g")
    run_sql_file(db, second.rollback)
    assert catalog(conn) == s0
    assert _labels(db, "public.ticket_status") == ["open", "pending", "closed"]
