"""CreateView, ReplaceView and DropView on a real server: what the round trips cannot see.

Dependants outside the migration are refused and named (never CASCADE); an existing view is accepted
only when defined exactly as the spec says; the rollback of a replace or a drop restores the exact
previous view — definition, column names, options, comment and grants — even when the specs never
made it; a replacement PostgreSQL refuses stops the step and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dbdeploy import CreateView, DropView, Migration, ReplaceView
from dbdeploy.bundle import catalog_checks
from tests.bundles import write_bundles
from tests.catalog import snapshot
from tests.pg import TestDatabase
from tests.roundtrip import expect_failure, log_status, relation_exists, run_sql_file

# The suite runs these focused tests on the primary server (the round trips of the same operations in
# tests/test_ops_roundtrip.py run on every server); DBDEPLOY_FULL=1 runs them on every server.
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

SALES = """
CREATE SCHEMA sales;
CREATE TABLE sales.orders (id bigint PRIMARY KEY, customer_id integer NOT NULL, status text NOT NULL,
                           total numeric(12,2) NOT NULL, note text);
INSERT INTO sales.orders SELECT g, 1 + g % 300, CASE WHEN g % 4 = 0 THEN 'done' ELSE 'open' END, (g % 250) + 0.5,
                                CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END
FROM generate_series(1, 3000) g;
"""
OPEN_QUERY = "SELECT o.id, o.customer_id, o.total FROM sales.orders AS o WHERE o.status = 'open'"


def _bundle(tmp_path: Path, *operations, version: str = "001"):
    return write_bundles([Migration(version=version, name="views", operations=list(operations))], tmp_path)[version]


def _views(conn) -> dict:
    return snapshot(conn)["views"]


def test_create_view_rollback_refuses_while_another_view_depends_on_it(fresh_db: TestDatabase, tmp_path: Path):
    db, conn = fresh_db, fresh_db.connect()
    db.execute(SALES)
    bundle = _bundle(tmp_path, CreateView(name="sales.open_orders", query=OPEN_QUERY))
    run_sql_file(db, bundle.forward)
    db.execute("CREATE VIEW sales.open_report AS SELECT count(*) AS n FROM sales.open_orders")
    before = _views(conn)

    expect_failure(db, bundle.rollback, "refusing to drop view sales.open_orders", "sales.open_report (view)",
                   "never uses CASCADE")
    assert _views(conn) == before and log_status(conn, "001") == "completed"

    db.execute("DROP VIEW sales.open_report")
    run_sql_file(db, bundle.rollback)
    assert not relation_exists(conn, "sales.open_orders")
    assert db.execute("SELECT count(*) FROM sales.orders") == [(3000,)]


def test_existing_view_is_accepted_only_when_defined_exactly_so(fresh_db: TestDatabase, tmp_path: Path):
    db, conn = fresh_db, fresh_db.connect()
    db.execute(SALES)
    # spelled differently, the same definition as PostgreSQL prints it
    db.execute("CREATE VIEW sales.open_orders AS select id, customer_id, total from sales.orders o"
               " where status = 'open'")
    bundle = _bundle(tmp_path, CreateView(name="sales.open_orders", query=OPEN_QUERY))
    proc = run_sql_file(db, bundle.forward)
    assert "exists with this definition; kept as it is" in proc.stderr, proc.stderr
    run_sql_file(db, bundle.rollback)
    assert relation_exists(conn, "sales.open_orders"), "the rollback dropped a view this version did not create"
    # what the generated tests check after the rollback: a view that existed before V001 may rightly stay
    gone = {"object": "view", "name": "sales.open_orders", "present": False, "materialized": False,
            "version": "001", "history_schema": "migrations"}
    assert catalog_checks.run_check(conn, gone) is None
    assert catalog_checks.run_check(conn, dict(gone, history_schema=None)) == "view sales.open_orders is still present"

    other = _bundle(tmp_path / "other", CreateView(name="sales.open_orders", query=OPEN_QUERY.replace(
        "'open'", "'done'")), version="002")
    before = _views(conn)
    expect_failure(db, other.forward, "sales.open_orders exists and is not defined as this CreateView says",
                   "the spec gives:", "'done'")
    assert _views(conn) == before

    db.execute("DROP VIEW sales.open_orders; CREATE TABLE sales.open_orders (id bigint)")
    third = _bundle(tmp_path / "third", CreateView(name="sales.open_orders", query=OPEN_QUERY), version="003")
    expect_failure(db, third.forward, "sales.open_orders exists and is not a view")


HAND_MADE = """
CREATE VIEW sales.open_orders WITH (security_barrier = true, check_option = local) AS
    SELECT o.id, o.customer_id, o.total FROM sales.orders o WHERE o.status = 'open';
ALTER VIEW sales.open_orders RENAME COLUMN customer_id TO buyer;
COMMENT ON VIEW sales.open_orders IS 'Open orders, for the support team.';
GRANT SELECT ON sales.open_orders TO PUBLIC;
"""


@pytest.mark.parametrize("query", [
    # a column added at the end: CREATE OR REPLACE cannot take it away again, so the rollback drops and creates
    "SELECT o.id, o.customer_id AS buyer, o.total, o.note FROM sales.orders AS o WHERE o.status = 'open'",
    # the same columns, another filter: the rollback's CREATE OR REPLACE restores it in place
    "SELECT o.id, o.customer_id AS buyer, o.total FROM sales.orders AS o WHERE o.status <> 'done' AND o.total > 10",
], ids=["column_added", "same_columns"])
def test_replace_view_rollback_restores_a_view_the_specs_did_not_make(query: str, fresh_db_each: TestDatabase,
                                                                      tmp_path: Path):
    db, conn = fresh_db_each, fresh_db_each.connect()
    db.execute(SALES)
    db.execute(HAND_MADE)
    before = _views(conn)
    rows_before = db.execute("SELECT * FROM sales.open_orders ORDER BY id")
    bundle = _bundle(tmp_path, ReplaceView(name="sales.open_orders", query=query))

    run_sql_file(db, bundle.forward)
    after = _views(conn)["sales.open_orders"]
    assert after["definition"] != before["sales.open_orders"]["definition"]
    # CREATE OR REPLACE resets the options: the forward sets them again; comment and grants stay
    assert after["options"] == before["sales.open_orders"]["options"]
    assert after["comment"] == before["sales.open_orders"]["comment"]
    assert after["acl"] == before["sales.open_orders"]["acl"]
    run_sql_file(db, bundle.forward)
    assert _views(conn)["sales.open_orders"] == after

    run_sql_file(db, bundle.rollback)
    assert _views(conn) == before
    assert db.execute("SELECT * FROM sales.open_orders ORDER BY id") == rows_before
    assert db.execute("SELECT count(*) FROM dbdeploy_backup.saved_views") == [(0,)]
    run_sql_file(db, bundle.rollback)
    assert _views(conn) == before


def test_replace_view_refused_by_postgresql_changes_nothing(fresh_db: TestDatabase, tmp_path: Path):
    db, conn = fresh_db, fresh_db.connect()
    db.execute(SALES)
    db.execute(HAND_MADE)
    before = _views(conn)
    bundle = _bundle(tmp_path, ReplaceView(name="sales.open_orders",
                                           query="SELECT o.id, o.total FROM sales.orders AS o"))
    expect_failure(db, bundle.forward, "PostgreSQL refuses to replace view sales.open_orders; nothing was changed",
                   "cannot", "use DropView then CreateView")
    assert _views(conn) == before
    assert not relation_exists(conn, "dbdeploy_backup.saved_views"), "the refused step kept what it saved"


def test_replace_view_rollback_refuses_when_a_dependant_blocks_the_drop(fresh_db: TestDatabase, tmp_path: Path):
    db, conn = fresh_db, fresh_db.connect()
    db.execute(SALES)
    db.execute(HAND_MADE)
    bundle = _bundle(tmp_path, ReplaceView(name="sales.open_orders", query=(
        "SELECT o.id, o.customer_id AS buyer, o.total, o.note FROM sales.orders AS o WHERE o.status = 'open'")))
    run_sql_file(db, bundle.forward)
    db.execute("CREATE VIEW sales.noted AS SELECT n.id, n.note FROM sales.open_orders n WHERE n.note IS NOT NULL")
    after = _views(conn)
    expect_failure(db, bundle.rollback, "rollback refused before any change", "must drop and re-create it",
                   "sales.noted (view)")
    assert _views(conn) == after and log_status(conn, "001") == "completed"


def test_drop_view_refuses_dependants_and_its_rollback_restores_the_view_exactly(fresh_db_each: TestDatabase,
                                                                                 tmp_path: Path):
    db, conn = fresh_db_each, fresh_db_each.connect()
    db.execute(SALES)
    db.execute(HAND_MADE)
    db.execute("CREATE VIEW sales.big AS SELECT b.id FROM sales.open_orders b WHERE b.total > 200")
    bundle = _bundle(tmp_path, DropView(name="sales.open_orders"))
    before = _views(conn)
    expect_failure(db, bundle.forward, "refusing to drop view sales.open_orders; nothing was changed",
                   "sales.big (view)")
    assert _views(conn) == before

    db.execute("DROP VIEW sales.big")
    before = _views(conn)
    run_sql_file(db, bundle.forward)
    assert not relation_exists(conn, "sales.open_orders")
    run_sql_file(db, bundle.forward)
    run_sql_file(db, bundle.rollback)
    assert _views(conn) == before
    run_sql_file(db, bundle.rollback)
    assert _views(conn) == before


TOTALS = """
CREATE MATERIALIZED VIEW sales.customer_totals AS
    SELECT o.customer_id, count(*) AS orders, sum(o.total) AS total FROM sales.orders o GROUP BY o.customer_id;
"""


def test_refresh_concurrently_under_psql_does_not_wait_for_readers(fresh_db_each: TestDatabase, tmp_path: Path):
    """A reader holds the materialized view (ACCESS SHARE, in an open transaction) while psql runs the
    refresh: REFRESH … CONCURRENTLY takes EXCLUSIVE, which does not conflict with readers, so the bundle
    finishes with the reader's transaction still open, and the view holds rows written since it was filled."""
    from dbdeploy import RefreshMaterializedView

    db, conn = fresh_db_each, fresh_db_each.connect()
    db.execute(SALES)
    db.execute(TOTALS + "CREATE UNIQUE INDEX customer_totals_key ON sales.customer_totals (customer_id);")
    db.execute("INSERT INTO sales.orders SELECT 10000 + g, 1 + g % 300, 'open', 3 FROM generate_series(1, 900) g")
    stale = db.execute("SELECT sum(orders) FROM sales.customer_totals")[0][0]
    assert stale == 3000
    bundle = _bundle(tmp_path, RefreshMaterializedView(name="sales.customer_totals"))
    reader = db.connect(autocommit=False)
    try:
        assert reader.execute("SELECT sum(orders) FROM sales.customer_totals").fetchone()[0] == stale
        run_sql_file(db, bundle.forward)     # would wait for the reader (lock_timeout: fail) if it blocked
        assert log_status(conn, "001") == "completed"
        assert reader.info.transaction_status.name == "INTRANS"
    finally:
        reader.rollback()
        reader.close()
    assert db.execute("SELECT sum(orders) FROM sales.customer_totals") == [(3900,)]
    run_sql_file(db, bundle.rollback)
    assert db.execute("SELECT sum(orders) FROM sales.customer_totals") == [(3900,)], "a refresh has nothing to undo"
    assert log_status(conn, "001") == "rolled_back"


def test_refresh_concurrently_stops_without_a_usable_unique_index(fresh_db: TestDatabase, tmp_path: Path):
    from dbdeploy import RefreshMaterializedView

    db = fresh_db
    db.execute(SALES)
    db.execute(TOTALS + "CREATE UNIQUE INDEX customer_totals_key ON sales.customer_totals (customer_id)"
                        " WHERE total > 0;")
    bundle = _bundle(tmp_path, RefreshMaterializedView(name="sales.customer_totals"))
    expect_failure(db, bundle.forward, "has no valid unique index on plain columns without WHERE",
                   "nothing was refreshed", "concurrently=False")


def test_quoted_mixed_case_views_round_trip(fresh_db: TestDatabase, tmp_path: Path):
    """Views named like an ORM names them ('sales."OpenOrders"'), on a quoted table, one on the other: the
    rollback's preflight skips the dependant this version created (its own rollback drops it first)."""
    db, conn = fresh_db, fresh_db.connect()
    db.execute('CREATE SCHEMA sales; CREATE TABLE sales."Orders" ("Id" bigint PRIMARY KEY, "Total" numeric);'
               ' INSERT INTO sales."Orders" SELECT g, g % 97 FROM generate_series(1, 2000) g;')
    bundle = _bundle(tmp_path,
                     CreateView(name='sales."OpenOrders"', query='SELECT o."Id", o."Total" FROM sales."Orders" o'),
                     CreateView(name='sales."BigOrders"',
                                query='SELECT b."Id" FROM sales."OpenOrders" AS b WHERE b."Total" > 50'))
    before = _views(conn)
    run_sql_file(db, bundle.forward)
    after = _views(conn)
    assert set(after) == {'sales."OpenOrders"', 'sales."BigOrders"'}
    assert db.execute('SELECT count(*) FROM sales."BigOrders"') == [(db.execute(
        'SELECT count(*) FROM sales."Orders" WHERE "Total" > 50')[0][0],)]
    run_sql_file(db, bundle.forward)
    assert _views(conn) == after
    run_sql_file(db, bundle.rollback)
    assert _views(conn) == before
    run_sql_file(db, bundle.rollback)
    run_sql_file(db, bundle.forward)
    assert _views(conn) == after


def test_replace_before_a_drop_of_its_dependant_is_refused_by_the_preflight(fresh_db: TestDatabase, tmp_path: Path):
    """ReplaceView adding a column, then DropView of the view that reads it: the rollback re-creates the
    dependant first, so restoring the replaced view (a drop and create) could not work — the preflight says
    so before any change, with the order that works."""
    db, conn = fresh_db, fresh_db.connect()
    db.execute(SALES)
    big = CreateView(name="sales.big_open", query="SELECT b.id FROM sales.open_orders AS b WHERE b.total > 200")
    bundles = write_bundles([
        Migration(version="001", name="views",
                  operations=[CreateView(name="sales.open_orders", query=OPEN_QUERY), big]),
        Migration(version="002", name="change", operations=[
            ReplaceView(name="sales.open_orders", query=OPEN_QUERY.replace("o.total", "o.total, o.note")),
            DropView(name="sales.big_open")])], tmp_path)
    run_sql_file(db, bundles["001"].forward)
    run_sql_file(db, bundles["002"].forward)
    after = _views(conn)
    expect_failure(db, bundles["002"].rollback, "rollback refused before any change",
                   "the rollback of a later DropView re-creates sales.big_open",
                   "Order the migration so that the DropView comes before this ReplaceView")
    assert _views(conn) == after and log_status(conn, "002") == "completed"
