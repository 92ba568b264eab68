"""CommentOn and the sequence operations (issue 13): what the round trips of tests/test_ops_roundtrip.py
cannot see.

- a re-run of the forward keeps the comment saved by its first run (not its own, which it set);
- quote-, backslash- and unicode-heavy comments are set and restored byte for byte, by the executor
  (``Deployment.apply`` / ``rollback``) and by psql alike;
- a missing object stops the forward before any change; a missing saved comment makes the rollback's
  preflight refuse before any change;
- ``dbdeploy verify``'s check (``check_comment``) sees a comment that differs by one byte.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbdeploy import CommentOn, Migration
from dbdeploy.bundle.catalog_checks import run_check
from dbdeploy.bundle.expectations import to_json
from dbdeploy.executor.config import Config, Environment
from dbdeploy.executor.deploy import Deployment
from tests.bundles import write_bundles
from tests.catalog import snapshot
from tests.pg import TestDatabase, temporary_database
from tests.roundtrip import expect_failure, log_status

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
    (CommentOn(object_kind="COLUMN", name="public.docs.nope", comment="x"), "column public.docs.nope does not exist"),
    (CommentOn(object_kind="TRIGGER", name="public.docs.nope", comment="x"), "trigger public.docs.nope does not exist"),
], ids=["kind", "function", "column", "trigger"])
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
