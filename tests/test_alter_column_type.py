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

# The suite runs these focused tests on the primary server (the round trips of the same operations in
# tests/test_ops_roundtrip.py run on every server); DBDEPLOY_FULL=1 runs them on every server.
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

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


# --------------------------------------------------------------------------- the online form

def _ledger(tmp_path: Path, db: TestDatabase):
    """The round trip's ledger (accounts referenced by entries), populated, and the bundle of V002 that
    widens public.ledger_accounts.id (and so public.ledger_entries.account_id) to bigint."""
    from tests.test_ops_roundtrip import LEDGER_ROWS, _ledger_migrations, mig

    migrations = [*_ledger_migrations(), mig("002", "bigint_accounts", AlterColumnType(
        table="public.ledger_accounts", column="id", type="bigint", batch_size=500))]
    bundles = write_bundles(migrations, tmp_path)
    run_sql_file(db, bundles["001"].forward)
    db.execute(LEDGER_ROWS)
    return bundles["002"]


def _run_step_by_step(db: TestDatabase, path: Path, between, batch_rows: int = 50, *, stop_before: str | None = None,
                      stop_after: str | None = None) -> None:
    """Run a bundle file step by step like the executor (batches one at a time), calling
    ``between(step)`` after every batch and every step: the application's writes in between.
    ``stop_before``/``stop_after``: end at the first step of that kind, as a killed run would."""
    from dbdeploy.executor.bundles import parse_script

    script = parse_script(path.read_text())
    conn = db.connect()
    for statement in script.preamble:
        conn.execute(statement)
    for step in script.steps:
        if step.kind == stop_before:
            conn.close()
            return
        if step.batch is not None:
            conn.execute("SELECT pg_catalog.set_config('dbdeploy.batch_rows', %s, false)", [str(batch_rows)])
            while True:
                with conn.transaction():
                    seen = conn.execute(step.batch).fetchone()[0]
                between(step)
                if seen == 0:
                    break
        elif step.transactional:
            with conn.transaction():
                for statement in step.statements:
                    conn.execute(statement)
        else:
            for statement in step.statements:
                conn.execute(statement)
        between(step)
        if step.kind == stop_after:
            conn.close()
            return
    for statement in script.postamble:
        conn.execute(statement)
    conn.close()


def _accounts(conn, key: str = "id") -> list[tuple]:
    return conn.execute(f"SELECT {key}, name FROM public.ledger_accounts ORDER BY {key}").fetchall()


def _entries(conn, key: str = "account_id") -> list[tuple]:
    return conn.execute(f"SELECT id, {key}, amount, code FROM public.ledger_entries ORDER BY id").fetchall()


def test_writes_during_the_online_change_are_kept(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """Inserts, updates and deletes between every batch and step of the forward (before and after the swap)
    all end up in the new column; the rollback keeps the writes made meanwhile, converted back."""
    db = fresh_db_each
    bundle = _ledger(tmp_path, db)
    app = db.connect()
    counter = {"n": 0, "swapped": False}

    def write(step) -> None:
        n = counter["n"] = counter["n"] + 1
        if step.kind == "alter_type_swap":
            counter["swapped"] = True
        new_id = 1_000_000 + n if not counter["swapped"] else 3_000_000_000 + n
        app.execute("INSERT INTO public.ledger_accounts (id, name) VALUES (%s, %s)", [new_id, f"written {n}"])
        app.execute("INSERT INTO public.ledger_entries (id, account_id, amount, code) VALUES (%s, %s, %s, %s)",
                    [1_000_000 + n, new_id, n, str(n)])
        app.execute("UPDATE public.ledger_entries SET account_id = %s WHERE id = %s", [new_id, n])   # moved
        app.execute("UPDATE public.ledger_accounts SET name = name || '!' WHERE id = %s", [n])
        app.execute("DELETE FROM public.ledger_entries WHERE id = %s", [ALTER_ROWS - n])

    _run_step_by_step(db, bundle.forward, write)
    assert log_status(app, "002") == "completed"
    assert counter["n"] > 10, "the test wrote too rarely to mean anything"
    # every row that existed at the swap (written before or during the backfill) has its old value in the
    # new column; rows written after the swap have only the new column
    assert app.execute("SELECT id, name FROM public.ledger_accounts WHERE id_v002_swap IS NULL"
                       " AND id < 3000000000").fetchall() == []
    assert app.execute("SELECT count(*) FROM public.ledger_accounts WHERE id_v002_swap IS NOT NULL"
                       " AND id <> id_v002_swap").fetchone() == (0,)
    # (entries 1..n were moved to new accounts after the swap too: the kept column keeps their old value)
    assert app.execute("SELECT count(*) FROM public.ledger_entries WHERE account_id_v002_swap IS NOT NULL"
                       " AND account_id <> account_id_v002_swap AND id > %s", [counter["n"]]).fetchone() == (0,)
    rows_after = _accounts(app)
    entries_after = _entries(app)
    # the rows the application wrote after the swap (ids above 2^31) cannot go back: refused, nothing changed
    s1 = catalog(app)
    expect_failure(db, bundle.rollback, "rollback refused before any change",
                   "do not fit its old type integer; rows:")
    assert catalog(app) == s1 and _accounts(app) == rows_after and _entries(app) == entries_after
    assert log_status(app, "002") == "completed"
    # once those rows are gone, the rollback converts every other value written meanwhile back
    app.execute("DELETE FROM public.ledger_entries WHERE account_id >= 3000000000")
    app.execute("DELETE FROM public.ledger_accounts WHERE id >= 3000000000")
    expected_accounts, expected_entries = _accounts(app), _entries(app)
    run_sql_file(db, bundle.rollback)
    assert log_status(app, "002") == "rolled_back"
    assert _accounts(app) == expected_accounts and _entries(app) == expected_entries
    assert app.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid ="
                       " 'public.ledger_accounts'::regclass AND attname = 'id'").fetchone() == ("integer",)


# --------------------------------------------------------------------------- what the specs record

def test_the_schema_state_records_the_new_types() -> None:
    """The changed column, and the referencing columns the online form widens with it, have the new type
    in the state the walk, planning and lint see (tests/test_schema_state.py lists no column types)."""
    from tests.test_ops_roundtrip import _ledger_migrations
    from tests.test_schema_state import _states_after

    ops = [*_ledger_migrations()[0].operations,
           AlterColumnType(table="public.ledger_accounts", column="id", type="bigint")]
    for how, state in _states_after(ops).items():
        assert state.tables["public.ledger_accounts"].columns["id"].type == "bigint", how
        assert state.tables["public.ledger_entries"].columns["account_id"].type == "bigint", how
        assert state.tables["public.ledger_entries"].columns["amount"].type == "integer", how
        # the kept old columns are known too (a later DropColumn may drop them)
        assert state.tables["public.ledger_accounts"].columns["id_v900_swap"].type == "integer", how
        assert state.tables["public.ledger_entries"].columns["account_id_v900_swap"].nullable, how


def test_the_kept_old_column_can_be_dropped_by_a_later_migration(tmp_path: Path) -> None:
    from dbdeploy import DropColumn
    from tests.test_ops_roundtrip import _ledger_migrations, mig

    migrations = [*_ledger_migrations(), mig("002", "bigint", AlterColumnType(
        table="public.ledger_accounts", column="id", type="bigint")),
        mig("003", "drop_kept", DropColumn(table="public.ledger_accounts", column="id_v002_swap"))]
    bundles = write_bundles(migrations, tmp_path)   # plans without a refusal
    assert "id_v002_swap" in bundles["003"].forward.read_text()


def _run_until(db: TestDatabase, path: Path, stop_kind: str, *, including: bool) -> None:
    """Run a bundle step by step and stop at the first step of kind ``stop_kind`` (``including``: after
    running it), as a forward killed there would have left the database."""
    _run_step_by_step(db, path, lambda step: None, stop_before=None if including else stop_kind,
                      stop_after=stop_kind if including else None)


def test_a_forward_stopped_before_the_swap_rolls_back_cleanly(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    bundle = _ledger(tmp_path, db)
    s0_before_bundle = catalog(conn)
    rows = _accounts(conn), _entries(conn)
    _run_until(db, bundle.forward, "alter_type_swap", including=False)
    assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.ledger_accounts'::regclass"
                        " AND attname = 'id_v002_swap' AND NOT attisdropped").fetchone() == (1,)
    run_sql_file(db, bundle.rollback)
    assert catalog(conn) == s0_before_bundle
    assert (_accounts(conn), _entries(conn)) == rows


def test_a_forward_stopped_after_the_swap_finishes_when_run_again(fresh_db_each: TestDatabase,
                                                                   tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    bundle = _ledger(tmp_path, db)
    s0, rows = catalog(conn), (_accounts(conn), _entries(conn))
    _run_until(db, bundle.forward, "alter_type_swap", including=True)
    run_sql_file(db, bundle.forward)
    assert log_status(conn, "002") == "completed"
    assert conn.execute("SELECT count(*) FROM pg_constraint WHERE NOT convalidated").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone() == (0,)
    run_sql_file(db, bundle.rollback)
    assert catalog(conn) == s0 and (_accounts(conn), _entries(conn)) == rows


def test_serial_key_keeps_its_sequence(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """A serial primary key widened online: the default and the sequence's ownership move to the new column
    (inserts keep numbering; dropping the kept old column later does not drop the sequence)."""
    from dbdeploy import Column, CreateTable, ForeignKey
    from tests.test_ops_roundtrip import mig

    db = fresh_db_each
    conn = db.connect()
    migrations = [mig("001", "serial", CreateTable(table="public.users", columns=[
        Column(name="id", type="serial"), Column(name="name", type="text", nullable=False)], primary_key=["id"]),
        CreateTable(table="public.logins", columns=[Column(name="id", type="bigint", nullable=False),
                                                    Column(name="user_id", type="integer", nullable=False)],
                    primary_key=["id"], foreign_keys=[ForeignKey(columns=["user_id"], references="public.users",
                                                                 ref_columns=["id"])])),
        mig("002", "bigint_users", AlterColumnType(table="public.users", column="id", type="bigint"))]
    bundles = write_bundles(migrations, tmp_path)
    run_sql_file(db, bundles["001"].forward)
    db.execute(f"INSERT INTO public.users (name) SELECT 'u' || g FROM generate_series(1, {ALTER_ROWS}) g;"
               "INSERT INTO public.logins SELECT g, 1 + g % 100 FROM generate_series(1, 500) g;")
    s0 = catalog(conn)
    run_sql_file(db, bundles["002"].forward)
    assert conn.execute("INSERT INTO public.users (name) VALUES ('after') RETURNING id").fetchone() == (ALTER_ROWS + 1,)
    assert conn.execute("SELECT pg_get_serial_sequence('public.users', 'id')").fetchone() == ("public.users_id_seq",)
    assert conn.execute("SELECT format_type(seqtypid, NULL), seqmax FROM pg_sequence"
                        " WHERE seqrelid = 'public.users_id_seq'::regclass").fetchone() == ("bigint", 2**63 - 1)
    assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid ="
                        " 'public.logins'::regclass AND attname = 'user_id'").fetchone() == ("bigint",)
    conn.execute("DELETE FROM public.users WHERE name = 'after'")
    run_sql_file(db, bundles["002"].rollback)
    assert catalog(conn) == s0
    assert conn.execute("SELECT format_type(seqtypid, NULL), seqmax FROM pg_sequence"
                        " WHERE seqrelid = 'public.users_id_seq'::regclass").fetchone() == ("integer", 2**31 - 1)
