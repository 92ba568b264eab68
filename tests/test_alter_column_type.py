"""AlterColumnType on real PostgreSQL (15 and 18): what a catalog round trip cannot see.

- the in-place path really does not rewrite the table (``pg_class.relfilenode`` of the table and of
  the index on the column unchanged);
- a change the specs could not predict (a table the specs did not create) that would rewrite the table
  is refused at run time, before any change, instead of rewriting under ACCESS EXCLUSIVE;
- the rollback refuses with a count, changing nothing, when values written after the deploy do not fit
  the old type.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from dbdeploy import AlterColumnType, Migration
from tests.bundles import write_bundles
from tests.pg import TestDatabase
from tests.roundtrip import catalog, expect_failure, log_status, run_sql_file
from tests.test_ops_roundtrip import ALTER_ROWS

TABLE = f"""
CREATE TABLE public.people (
    id integer PRIMARY KEY,
    email varchar(40) NOT NULL,
    score integer NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX people_email_key ON public.people (email);
INSERT INTO public.people SELECT g, 'p' || g || '@example.com', g % 100 FROM generate_series(1, {ALTER_ROWS}) g;
"""


def _bundle(tmp_path: Path, *operations):
    return write_bundles([Migration(version="001", name="alter", operations=list(operations))], tmp_path)["001"]


def _filenodes(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT relname, relfilenode FROM pg_class WHERE relname IN"
                             " ('people', 'people_email_key', 'people_pkey')").fetchall())


def test_in_place_change_rewrites_nothing(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    db.execute(TABLE)
    conn = db.connect()
    before = _filenodes(conn)
    bundle = _bundle(tmp_path, AlterColumnType(table="public.people", column="email", type="varchar(200)"))
    run_sql_file(db, bundle.forward)
    assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                        " WHERE attrelid = 'public.people'::regclass AND attname = 'email'").fetchone() == (
        "character varying(200)",)
    assert _filenodes(conn) == before, "the in-place change rewrote the table or rebuilt an index"
    run_sql_file(db, bundle.rollback)
    assert log_status(conn, "001") == "rolled_back"


def test_unpredicted_rewrite_is_refused_before_any_change(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """The specs do not know public.people: integer → bigint is decided at run time, and refused."""
    db = fresh_db_each
    db.execute(TABLE)
    conn = db.connect()
    s0, before = catalog(conn), _filenodes(conn)
    bundle = _bundle(tmp_path, AlterColumnType(table="public.people", column="score", type="bigint"))
    expect_failure(db, bundle.forward, "would rewrite the table", "integer -> bigint")
    assert catalog(conn) == s0
    assert _filenodes(conn) == before


def test_index_rebuild_is_refused(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """A C-collated column would get the new type's default collation: its index would be rebuilt."""
    db = fresh_db_each
    db.execute("CREATE TABLE public.tags (id integer PRIMARY KEY, label varchar(10) COLLATE \"C\");"
               "CREATE INDEX tags_label_idx ON public.tags (label);"
               "INSERT INTO public.tags SELECT g, 't' || g FROM generate_series(1, 100) g;")
    conn = db.connect()
    s0 = catalog(conn)
    bundle = _bundle(tmp_path, AlterColumnType(table="public.tags", column="label", type="text"))
    expect_failure(db, bundle.forward, "its collation differs")
    assert catalog(conn) == s0


def test_rollback_refuses_values_too_long_for_the_old_type(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    db.execute(TABLE)
    conn = db.connect()
    bundle = _bundle(tmp_path, AlterColumnType(table="public.people", column="email", type="text"))
    run_sql_file(db, bundle.forward)
    conn.execute("UPDATE public.people SET email = repeat('x', 50) || id WHERE id <= 3")
    s1 = catalog(conn)
    rows = conn.execute("SELECT * FROM public.people ORDER BY id").fetchall()
    expect_failure(db, bundle.rollback, "rollback refused before any change", "hold values the old type cannot hold",
                   "rows: 3 (old type character varying(40))")
    assert catalog(conn) == s1
    assert conn.execute("SELECT * FROM public.people ORDER BY id").fetchall() == rows
    assert log_status(conn, "001") == "completed"
    conn.execute("UPDATE public.people SET email = 'p' || id || '@example.com' WHERE id <= 3")
    run_sql_file(db, bundle.rollback)
    assert log_status(conn, "001") == "rolled_back"
