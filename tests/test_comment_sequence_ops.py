"""CommentOn and the sequence operations (issue 13): what the round trips of tests/test_ops_roundtrip.py
cannot see.

- a re-run of the forward keeps the comment saved by its first run (not its own, which it set);
- quote-, backslash- and unicode-heavy comments are set and restored byte for byte, by the executor
  (``Deployment.apply`` / ``rollback``) and by psql alike;
- a missing object stops the forward before any change; a missing saved comment makes the rollback's
  preflight refuse before any change;
- ``dbdeploy verify``'s check (``check_comment``) sees a comment that differs by one byte;
- sequences: every sequence's position (``tests/catalog.py`` ``sequence_values``, not part of the
  snapshot) is back after the rollbacks of the sequences round trip; a re-run never restarts or
  re-sets a sequence behind values handed out since; SetSequenceValue's rollback refuses while a
  column using the sequence holds the values it would hand out next; CreateSequence stops on an
  existing sequence with other parameters, leaves a sequence it did not create, and refuses to drop
  one a column default uses (never CASCADE); the ``sequence`` / ``sequence_value`` checks.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbdeploy import AlterSequence, CommentOn, CreateSequence, Migration, SetSequenceValue
from dbdeploy.bundle.catalog_checks import run_check
from dbdeploy.bundle.expectations import to_json
from dbdeploy.executor.config import Config, Environment
from dbdeploy.executor.deploy import Deployment
from tests.bundles import write_bundles
from tests.catalog import sequence_values, snapshot
from tests.pg import TestDatabase, temporary_database
from tests.roundtrip import expect_failure, log_status

# The suite runs these focused tests on the primary server (the round trips of the same operations in
# tests/test_ops_roundtrip.py run on every server); DBDEPLOY_FULL=1 runs them on every server.
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

DOCS = """
CREATE TABLE public.docs (id bigint PRIMARY KEY, title text NOT NULL, body text);
INSERT INTO public.docs SELECT g, 'doc ' || g, repeat('x', g % 50) FROM generate_series(1, 3000) g;
COMMENT ON TABLE public.docs IS 'Documents';
COMMENT ON COLUMN public.docs.title IS E'old \\\\ title ''quoted'' \\u00e9';
"""

#: Pieces that break text handling: quotes, backslashes (E'' escapes), dollar quotes, comment openers,
#: line breaks of every kind, astral and combining characters, a tab, a no-break space.
ODD = ("It's \"x\" \\ \\\\n \\x41 E'\\'' $$ $dbdeploy$ $dbdeploy_1$ -- /* */ \r\n\r \u2028\u0085 "
       "e\u0301 日本 🎫 \t\u00a0end")


def _mig(*ops, version: str = "001") -> Migration:
    return Migration(version=version, name="comments", operations=list(ops))


def _comments(conn: psycopg.Connection) -> tuple:
    return conn.execute("SELECT obj_description('public.docs'::regclass, 'pg_class'),"
                        " col_description('public.docs'::regclass, 2),"
                        " col_description('public.docs'::regclass, 3)").fetchone()


def _deployment(generated: Path, db: TestDatabase) -> Deployment:
    env = Environment(name="test", dsn=db.dsn, lock_timeout="5s", retries=2)
    config = Config(root=generated.parent, specs=generated.parent / "specs", generated=generated,
                    environments={"test": env})
    return Deployment(config=config, env=env, dsn=db.dsn)


def test_rerun_keeps_the_comment_saved_by_the_first_run(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute(DOCS)
    before = _comments(conn)
    bundle = write_bundles([_mig(CommentOn(object_kind="TABLE", name="public.docs", comment="Documents v2"),
                                 CommentOn(object_kind="COLUMN", name="public.docs.title", comment=ODD),
                                 CommentOn(object_kind="COLUMN", name="public.docs.body", comment="text"))],
                           tmp_path)["001"]
    db.psql_file(bundle.forward)
    assert _comments(conn) == ("Documents v2", ODD, "text")
    saved = conn.execute("SELECT object_name, comment FROM dbdeploy_backup.saved_comments ORDER BY 1").fetchall()
    assert saved == [("public.docs", "Documents"), ("public.docs.body", None), ("public.docs.title", before[1])]
    # someone changes a comment by hand, then the forward runs again (a retried deploy)
    db.execute("COMMENT ON TABLE public.docs IS 'by hand'")
    db.psql_file(bundle.forward)
    assert _comments(conn) == ("Documents v2", ODD, "text")
    assert conn.execute("SELECT object_name, comment FROM dbdeploy_backup.saved_comments ORDER BY 1").fetchall() \
        == saved, "a re-run overwrote the comment saved by the first run"
    db.psql_file(bundle.rollback)
    assert _comments(conn) == before
    assert conn.execute("SELECT count(*) FROM dbdeploy_backup.saved_comments").fetchone() == (0,)


@pytest.mark.parametrize("comment", [ODD, "", None, "plain"], ids=["odd", "empty", "none", "plain"])
def test_comments_are_byte_exact_under_the_executor_and_psql(comment, fresh_db_each: TestDatabase,
                                                             tmp_path: Path) -> None:
    """The executor and psql set the same bytes, and both rollbacks restore the previous odd comment
    (set by hand before the version) byte for byte. An empty comment is no comment (PostgreSQL's COMMENT)."""
    migration = _mig(CommentOn(object_kind="COLUMN", name="public.docs.title", comment=comment),
                     CommentOn(object_kind="TABLE", name="public.docs", comment=comment))
    generated = tmp_path / "generated"
    bundle = write_bundles([migration], generated)["001"]
    with temporary_database(fresh_db_each.server) as by_psql:
        for db in (fresh_db_each, by_psql):
            db.execute(DOCS)
            with db.connect() as conn:
                conn.execute(sql.SQL("COMMENT ON TABLE public.docs IS {}").format(sql.Literal(ODD[::-1])))
        _deployment(generated, fresh_db_each).apply()
        by_psql.psql_file(bundle.forward)
        want = (comment or None, comment or None, None)
        for db in (fresh_db_each, by_psql):
            with db.connect() as conn:
                assert _comments(conn) == want
                assert conn.execute("SELECT comment FROM dbdeploy_backup.saved_comments WHERE object_kind = 'TABLE'"
                                    ).fetchone() == (ODD[::-1],)
        _deployment(generated, fresh_db_each).rollback(to="0")
        by_psql.psql_file(bundle.rollback)
        for db in (fresh_db_each, by_psql):
            with db.connect() as conn:
                assert _comments(conn) == (ODD[::-1], "old \\ title 'quoted' \u00e9", None)
                assert log_status(conn, "001") == "rolled_back"


@pytest.mark.parametrize("op, message", [
    (CommentOn(object_kind="VIEW", name="public.docs", comment="not a view"),
     "view public.docs does not exist (or is not a view)"),
    (CommentOn(object_kind="FUNCTION", name="public.docs_weight(bigint)", comment="x"),
     "function public.docs_weight(bigint) does not exist"),
    (CommentOn(object_kind="FUNCTION", name="public.docs_weight(public.no_such_type)", comment="x"),
     "function public.docs_weight(public.no_such_type) does not exist"),
    (CommentOn(object_kind="COLUMN", name="public.docs.nope", comment="x"), "column public.docs.nope does not exist"),
    (CommentOn(object_kind="TRIGGER", name="public.docs.nope", comment="x"), "trigger public.docs.nope does not exist"),
], ids=["kind", "function", "function-missing-type", "column", "trigger"])
def test_missing_object_stops_the_forward_before_any_change(op, message, fresh_db: TestDatabase,
                                                            tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute(DOCS)
    db.execute("CREATE FUNCTION public.docs_weight(integer) RETURNS integer LANGUAGE sql AS 'SELECT 1'")
    s0 = snapshot(conn)
    bundle = write_bundles([_mig(op)], tmp_path)["001"]
    expect_failure(db, bundle.forward, message, "Check the object kind and name in the spec")
    assert snapshot(conn) == s0
    assert conn.execute("SELECT to_regclass('dbdeploy_backup.saved_comments')").fetchone() == (None,)


def test_rollback_refuses_when_the_saved_comment_is_missing(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute(DOCS)
    bundle = write_bundles([_mig(CommentOn(object_kind="TABLE", name="public.docs", comment="v2"),
                                 CommentOn(object_kind="COLUMN", name="public.docs.title", comment="t2"))],
                           tmp_path)["001"]
    db.psql_file(bundle.forward)
    db.execute("DELETE FROM dbdeploy_backup.saved_comments WHERE object_kind = 'TABLE'")
    expect_failure(db, bundle.rollback, "rollback refused before any change",
                   "the comment table public.docs had before V001, saved in dbdeploy_backup.saved_comments, is missing",
                   "Set the comment of table public.docs by hand")
    assert _comments(conn) == ("v2", "t2", None), "the refused rollback changed a comment"
    assert log_status(conn, "001") == "completed"
    # the fix the message names: set it by hand, forget the record, roll back
    db.execute("COMMENT ON TABLE public.docs IS 'Documents'")
    db.execute("DELETE FROM migrations.migration_objects WHERE object_type = 'comment' AND object_name = "
               "'TABLE public.docs'")
    db.psql_file(bundle.rollback)
    assert _comments(conn) == ("Documents", "old \\ title 'quoted' \u00e9", None)


def test_verify_check_sees_a_comment_one_byte_off(fresh_db: TestDatabase, tmp_path: Path) -> None:
    from dbdeploy.ops import SchemaState
    from dbdeploy.plan.migration_plan import plan_migration

    db = fresh_db
    db.execute(DOCS)
    migration = _mig(CommentOn(object_kind="COLUMN", name="public.docs.title", comment=ODD))
    db.psql_file(write_bundles([migration], tmp_path)["001"].forward)
    (entry,) = to_json(plan_migration(migration, SchemaState(complete=True)).expects)
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("SET search_path = pg_catalog, pg_temp")
        assert run_check(conn, entry) is None
        conn.execute(sql.SQL("COMMENT ON COLUMN public.docs.title IS {}").format(sql.Literal(ODD + " ")))
        assert "has the comment" in run_check(conn, entry)
        conn.execute("ALTER TABLE public.docs DROP COLUMN title")
        assert run_check(conn, entry) == "column public.docs.title is missing"


# --- sequences ------------------------------------------------------------------------------------


def test_sequence_positions_round_trip(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """The sequences round trip of tests/test_ops_roundtrip.py, with every sequence's position compared:
    forward → forward (nothing moves) → rollback (all back) → rollback → forward (same positions)."""
    from tests.test_ops_roundtrip import INVOICES, SEQUENCE_OPS

    db, conn = fresh_db_each, fresh_db_each.connect()
    db.execute(INVOICES)
    bundle = write_bundles([_mig(*SEQUENCE_OPS)], tmp_path)["001"]
    p0 = sequence_values(conn)
    db.psql_file(bundle.forward)
    p1 = sequence_values(conn)
    assert p1["public.receipts_id_seq"] == (1_000_000, True) and p1["public.legacy_ids"] == (2000, False)
    db.psql_file(bundle.forward)
    assert sequence_values(conn) == p1
    db.psql_file(bundle.rollback)
    assert sequence_values(conn) == p0
    db.psql_file(bundle.rollback)
    assert sequence_values(conn) == p0
    db.psql_file(bundle.forward)
    assert sequence_values(conn) == p1


def test_rerun_never_moves_a_sequence_back(fresh_db: TestDatabase, tmp_path: Path) -> None:
    """Values handed out between two runs of the forward stay handed out: neither RESTART nor setval
    runs again."""
    db, conn = fresh_db, fresh_db.connect()
    db.execute("CREATE SEQUENCE public.a; CREATE SEQUENCE public.b;")
    bundle = write_bundles([_mig(AlterSequence(name="public.a", increment=10, restart=100),
                                 SetSequenceValue(name="public.b", value=500))], tmp_path)["001"]
    db.psql_file(bundle.forward)
    assert conn.execute("SELECT nextval('public.a'), nextval('public.a'), nextval('public.b')").fetchone() == (
        100, 110, 501)
    db.psql_file(bundle.forward)
    assert conn.execute("SELECT nextval('public.a'), nextval('public.b')").fetchone() == (120, 502)
    assert conn.execute("SELECT operation, last_value, is_called FROM dbdeploy_backup.saved_sequences ORDER BY 1"
                        ).fetchall() == [("alter_sequence", 1, False), ("set_sequence_value", 1, False)]


def test_set_sequence_value_rollback_refuses_while_rows_hold_the_next_values(fresh_db_each: TestDatabase,
                                                                            tmp_path: Path) -> None:
    db, conn = fresh_db_each, fresh_db_each.connect()
    db.execute("""
        CREATE TABLE public.orders (id bigserial PRIMARY KEY, total numeric NOT NULL);
        INSERT INTO public.orders (total) SELECT g FROM generate_series(1, 500) g;
        CREATE SEQUENCE public.ticket_no;
        CREATE TABLE public.tickets (no bigint NOT NULL DEFAULT nextval('public.ticket_no'), what text);
        INSERT INTO public.tickets (what) SELECT 't' || g FROM generate_series(1, 40) g;
    """)
    bundle = write_bundles([_mig(SetSequenceValue(name="public.orders_id_seq", value=10_000),
                                 SetSequenceValue(name="public.ticket_no", value=100, is_called=False))],
                           tmp_path)["001"]
    db.psql_file(bundle.forward)
    # the application inserts with the sequences after the deploy
    conn.execute("INSERT INTO public.orders (total) SELECT g FROM generate_series(1, 5) g")
    conn.execute("INSERT INTO public.tickets (what) VALUES ('after')")
    s0, p0 = snapshot(conn), sequence_values(conn)
    proc = expect_failure(db, bundle.rollback, "rollback refused before any change",
                          "restoring sequence public.orders_id_seq would let nextval hand out 501, but "
                          "public.orders.id already holds values up to 10005",
                          "restoring sequence public.ticket_no would let nextval hand out 41, but "
                          "public.tickets.no already holds values up to 100",
                          "keep V001 (do not roll it back), or delete the rows holding them first")
    assert "ERROR" in proc.stderr
    assert (snapshot(conn), sequence_values(conn)) == (s0, p0)
    assert log_status(conn, "001") == "completed"
    # the fix the message names: the rows holding the values go, then the rollback runs
    conn.execute("DELETE FROM public.orders WHERE id > 500")
    conn.execute("DELETE FROM public.tickets WHERE no >= 41")
    db.psql_file(bundle.rollback)
    assert sequence_values(conn) == {"public.orders_id_seq": (500, True), "public.ticket_no": (40, True)}
    assert conn.execute("INSERT INTO public.orders (total) VALUES (1) RETURNING id").fetchone() == (501,)


def test_create_sequence_existing_and_dependants(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, code bigint);"
               "INSERT INTO public.items SELECT g, g FROM generate_series(1, 100) g;"
               "CREATE SEQUENCE public.existing START 7;")
    other = write_bundles([_mig(CreateSequence(name="public.existing", start=8, increment=2))],
                          tmp_path / "other")["001"]
    expect_failure(db, other.forward, "sequence public.existing exists with other parameters than the spec gives: "
                                      "start is 7, increment is 1")
    db.psql_file(other.rollback)      # the failed version rolled back (it changed nothing)
    same = write_bundles([_mig(CreateSequence(name="public.existing", start=7),
                               CreateSequence(name="public.item_codes", start=1000, owned_by="public.items.code"),
                               version="002")], tmp_path / "same")["002"]
    db.psql_file(same.forward)
    # the application starts using the new sequence in a default: the rollback must not drop it (no CASCADE)
    db.execute("ALTER TABLE public.items ALTER COLUMN code SET DEFAULT nextval('public.item_codes')")
    expect_failure(db, same.rollback, "refusing to drop sequence public.item_codes; these use it:",
                   "default value for column code of table public.items")
    assert conn.execute("SELECT to_regclass('public.item_codes') IS NOT NULL").fetchone() == (True,)
    db.execute("ALTER TABLE public.items ALTER COLUMN code DROP DEFAULT")
    db.psql_file(same.rollback)
    # the version's own sequence is dropped, the one that existed before is left
    assert conn.execute("SELECT to_regclass('public.item_codes'), to_regclass('public.existing')::text").fetchone() \
        == (None, "existing")


def test_sequence_checks(fresh_db: TestDatabase, tmp_path: Path) -> None:
    from dbdeploy.ops import SchemaState
    from dbdeploy.plan.migration_plan import plan_migration

    db = fresh_db
    db.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, code bigint)")
    migration = _mig(CreateSequence(name="public.codes", as_type="integer", start=10, owned_by="public.items.code"),
                     SetSequenceValue(name="public.codes", value=50))
    db.psql_file(write_bundles([migration], tmp_path)["001"].forward)
    created, value = to_json(plan_migration(migration, SchemaState(complete=True)).expects)
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("SET search_path = pg_catalog, pg_temp")
        assert run_check(conn, created) is None and run_check(conn, value) is None
        conn.execute("SELECT nextval('public.codes')")
        assert run_check(conn, value) is None                 # moved on since: fine
        conn.execute("SELECT setval('public.codes', 20)")
        assert "is at 20" in run_check(conn, value)
        conn.execute("ALTER SEQUENCE public.codes AS bigint OWNED BY NONE")
        assert run_check(conn, created) == ("sequence public.codes: as_type is 'bigint', expected 'integer'; "
                                            "owned_by is None, expected 'public.items.code'")


def test_alter_sequence_rollback_refuses_outside_the_saved_bounds(fresh_db: TestDatabase, tmp_path: Path) -> None:
    """Widened bounds that the application used: the old MAXVALUE cannot come back (PostgreSQL would
    refuse the ALTER), so the preflight refuses before any change; a missing saved state too."""
    db, conn = fresh_db, fresh_db.connect()
    db.execute("CREATE SEQUENCE public.small AS smallint MAXVALUE 100; SELECT setval('public.small', 90);")
    bundle = write_bundles([_mig(AlterSequence(name="public.small", as_type="integer", max_value=1000))],
                           tmp_path)["001"]
    db.psql_file(bundle.forward)
    conn.execute("SELECT setval('public.small', 150)")    # handed out past the old maximum
    p0 = sequence_values(conn)
    expect_failure(db, bundle.rollback, "sequence public.small is now outside the bounds it had before V001")
    assert sequence_values(conn) == p0
    assert conn.execute("SELECT seqmax FROM pg_sequence WHERE seqrelid = 'public.small'::regclass").fetchone() == (
        1000,)
    db.execute("DELETE FROM dbdeploy_backup.saved_sequences")
    expect_failure(db, bundle.rollback, "the parameters sequence public.small had before V001, saved in "
                                        "dbdeploy_backup.saved_sequences, are missing")
