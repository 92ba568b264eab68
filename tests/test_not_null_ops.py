"""SetNotNull, DropNotNull, SetDefault and DropDefault beyond the round trip (issue 12), on real servers.

The round trips (tests/test_ops_roundtrip.py: set_not_null, drop_not_null, set_default, drop_default)
show forward → forward → rollback → rollback → forward on a populated table. Here: what a snapshot
comparison cannot show — a forward that meets NULL rows fails naming their number and leaves no
constraint behind; a DropNotNull rollback meeting NULLs written since the deploy refuses before any
change with their number; a missing saved default refuses the rollback; identity, generated and
primary-key columns are refused with clear messages; PostgreSQL 18's unvalidated NOT NULL; and the
``verify`` checks of the two new expectation kinds.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dbdeploy import DropDefault, DropNotNull, Migration, SetDefault, SetNotNull
from dbdeploy.bundle import catalog_checks
from dbdeploy.bundle.expectations import to_json
from dbdeploy.ops import SchemaState
from dbdeploy.plan.migration_plan import plan_migration
from tests.bundles import write_bundles
from tests.pg import TestDatabase
from tests.roundtrip import catalog, data_snapshot, expect_failure, log_status, run_sql_file
from tests.test_ops_roundtrip import ALTER_ROWS, PROFILES

ROWS = {"public.profiles": "id"}


def _bundle(tmp_path: Path, *operations, version: str = "001"):
    return write_bundles([Migration(version=version, name="change", operations=list(operations))], tmp_path)[version]


def _column(conn: psycopg.Connection, column: str) -> tuple:
    return conn.execute("SELECT a.attnotnull, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
                        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                        " WHERE a.attrelid = 'public.profiles'::regclass AND a.attname = %s", [column]).fetchone()


def _checks(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'public.profiles'::regclass"
                                       " AND contype = 'c' ORDER BY 1").fetchall()]


def test_set_not_null_on_null_rows_fails_with_their_count_and_leaves_nothing(fresh_db_each: TestDatabase,
                                                                           tmp_path: Path) -> None:
    db, conn = fresh_db_each, fresh_db_each.connect()
    db.execute(PROFILES)
    db.execute("UPDATE public.profiles SET handle = NULL WHERE id % 50 = 0")
    nulls = ALTER_ROWS // 50
    bundle = _bundle(tmp_path, SetNotNull(table="public.profiles", column="handle"))
    rows0 = data_snapshot(conn, ROWS)
    expect_failure(db, bundle.forward, f"{nulls} row(s) of public.profiles have handle NULL, so it cannot be made "
                                       "NOT NULL (give them a value first)",
                   "profiles_handle_not_null", "was dropped so it no longer rejects writes")
    assert _checks(conn) == []                       # the helper check is gone: writes of NULL work again
    assert _column(conn, "handle") == (False, None)
    assert data_snapshot(conn, ROWS) == rows0
    db.execute("INSERT INTO public.profiles (id, handle, visits) VALUES (-1, NULL, 0)")
    # the data fixed, the same bundle runs again and finishes
    db.execute("UPDATE public.profiles SET handle = 'h' || id WHERE handle IS NULL")
    run_sql_file(db, bundle.forward)
    assert log_status(conn, "001") == "completed"
    assert _column(conn, "handle") == (True, None)
    assert _checks(conn) == []


def test_drop_not_null_rollback_refuses_on_nulls_written_since(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db_each, fresh_db_each.connect()
    db.execute(PROFILES)
    bundle = _bundle(tmp_path, DropNotNull(table="public.profiles", column="bio"))
    run_sql_file(db, bundle.forward)
    assert _column(conn, "bio") == (False, "''::text")
    db.execute("INSERT INTO public.profiles (id, bio, visits) SELECT -g, NULL, 0 FROM generate_series(1, 3) g")
    db.execute("UPDATE public.profiles SET bio = NULL WHERE id = 1")
    s1, d1 = catalog(conn), data_snapshot(conn, ROWS)
    expect_failure(db, bundle.rollback, "rollback refused before any change",
                   "cannot make public.profiles.bio NOT NULL again: 4 row(s) hold NULL in it (written since the "
                   "deploy)",
                   "UPDATE public.profiles SET bio = … WHERE bio IS NULL")
    assert catalog(conn) == s1
    assert data_snapshot(conn, ROWS) == d1
    assert log_status(conn, "001") == "completed"
    # once the rows hold a value, the rollback restores NOT NULL online, and a second run is harmless
    db.execute("UPDATE public.profiles SET bio = '' WHERE bio IS NULL")
    run_sql_file(db, bundle.rollback)
    run_sql_file(db, bundle.rollback)
    assert log_status(conn, "001") == "rolled_back"
    assert _column(conn, "bio") == (True, "''::text")
    assert _checks(conn) == []


def test_drop_not_null_rollback_leaves_a_column_that_was_nullable(fresh_db: TestDatabase, tmp_path: Path) -> None:
    """Not dropped by this version (already nullable): the rollback does not make it NOT NULL."""
    db, conn = fresh_db, fresh_db.connect()
    db.execute(PROFILES)
    bundle = _bundle(tmp_path, DropNotNull(table="public.profiles", column="handle"))
    run_sql_file(db, bundle.forward)
    run_sql_file(db, bundle.rollback)
    assert _column(conn, "handle") == (False, None)


def test_set_default_rollback_refuses_when_the_saved_default_is_missing(fresh_db: TestDatabase,
                                                                       tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute(PROFILES)
    bundle = _bundle(tmp_path, SetDefault(table="public.profiles", column="country", default="'DE'"))
    run_sql_file(db, bundle.forward)
    run_sql_file(db, bundle.forward)                 # the keeper still holds the default from before the first run
    saved = conn.execute("SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a"
                         " ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE a.attrelid ="
                         " 'dbdeploy_backup.v001_op1_profiles_country_default'::regclass").fetchall()
    assert saved == [("'NL'::text",)]
    assert conn.execute("SELECT has_table_privilege('public', 'dbdeploy_backup.v001_op1_profiles_country_default',"
                        " 'SELECT')").fetchone() == (False,)
    db.execute("DROP TABLE dbdeploy_backup.v001_op1_profiles_country_default")
    expect_failure(db, bundle.rollback, "rollback refused before any change",
                   "dbdeploy_backup.v001_op1_profiles_country_default, is missing")
    assert _column(conn, "country") == (False, "'DE'::text")
    assert log_status(conn, "001") == "completed"


IDENTITY_AND_GENERATED = """
CREATE TABLE public.things (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    n integer NOT NULL,
    doubled integer GENERATED ALWAYS AS (n * 2) STORED
);
INSERT INTO public.things (n) SELECT g FROM generate_series(1, 500) g;
"""


@pytest.mark.parametrize(("op", "message"), [
    (SetDefault(table="public.things", column="id", default="0"),
     "column public.things.id is an identity or generated column, which has no default to change"),
    (SetDefault(table="public.things", column="doubled", default="0"),
     "column public.things.doubled is an identity or generated column"),
    (DropDefault(table="public.things", column="doubled"), "column public.things.doubled is an identity or generated"),
    (DropNotNull(table="public.things", column="id"),
     "cannot drop the NOT NULL of public.things.id: it is part of the primary key"),
    (SetNotNull(table="public.things", column="nope"), "column public.things.nope does not exist"),
])
def test_columns_postgresql_refuses_are_refused_before_any_change(op, message: str, fresh_db_each: TestDatabase,
                                                                 tmp_path: Path) -> None:
    db, conn = fresh_db_each, fresh_db_each.connect()
    db.execute(IDENTITY_AND_GENERATED)
    before = catalog(conn)
    expect_failure(db, _bundle(tmp_path, op).forward, message)
    assert catalog(conn) == before


def test_set_not_null_replaces_an_unvalidated_not_null(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """PostgreSQL 18: a NOT NULL … NOT VALID sets attnotnull while NULL rows may remain; SetNotNull ends
    with a validated NOT NULL, and its rollback leaves it (the version did not add the NOT NULL)."""
    db, conn = fresh_db_each, fresh_db_each.connect()
    if conn.info.server_version < 180000:
        pytest.skip("NOT NULL … NOT VALID exists from PostgreSQL 18")
    db.execute(PROFILES)
    db.execute("ALTER TABLE public.profiles ADD CONSTRAINT handle_required NOT NULL handle NOT VALID")
    bundle = _bundle(tmp_path, SetNotNull(table="public.profiles", column="handle"))
    run_sql_file(db, bundle.forward)
    assert conn.execute("SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'public.profiles'::regclass"
                        " AND contype = 'n' AND conkey[1] = 2").fetchall() == [("profiles_handle_not_null", True)]
    run_sql_file(db, bundle.rollback)
    assert _column(conn, "handle") == (True, None)


def _plan(*migrations: Migration):
    state = SchemaState(complete=True)
    return [plan_migration(m, state) for m in migrations][-1]


def test_verify_checks_nullability_and_default(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db
    db.execute(PROFILES)
    ops = [SetNotNull(table="public.profiles", column="handle"), DropNotNull(table="public.profiles", column="bio"),
           SetDefault(table="public.profiles", column="score", default="floor(random() * 10)::integer"),
           DropDefault(table="public.profiles", column="joined")]
    migration = Migration(version="001", name="change", operations=ops)
    run_sql_file(db, _bundle(tmp_path, *ops).forward)
    entries = to_json(_plan(migration).expects)
    assert [e["object"] for e in entries] == ["column_not_null"] * 2 + ["column_default"] * 2
    check = psycopg.connect(db.dsn, autocommit=True, options="-c search_path=pg_catalog,pg_temp")
    assert [catalog_checks.run_check(check, e) for e in entries] == [None] * 4
    db.execute("ALTER TABLE public.profiles ALTER COLUMN handle DROP NOT NULL, ALTER COLUMN bio SET NOT NULL,"
               " ALTER COLUMN score SET DEFAULT 3, ALTER COLUMN joined SET DEFAULT now()")
    assert [catalog_checks.run_check(check, e) for e in entries] == [
        "column public.profiles.handle is nullable, expected NOT NULL",
        "column public.profiles.bio is NOT NULL, expected nullable",
        "column public.profiles.score has default '3', expected "
        "'(floor((random() * (10)::double precision)))::integer'",
        "column public.profiles.joined has default 'now()', expected none"]


def test_a_later_change_supersedes_the_column_check_of_the_version_that_made_it() -> None:
    column = {"object": "column", "table": "public.t", "name": "a", "present": True, "not_null": False,
              "type": "text", "default": None, "identity": False}
    later = {"object": "column_not_null", "table": "public.t", "name": "a", "not_null": True, "columns": ["a"],
             "present": True}
    assert catalog_checks.supersedes(later, column) == "changes the nullability of column public.t.a"
    default = dict(later, object="column_default", default="'x'")
    assert catalog_checks.supersedes(default, column) == "changes the default of column public.t.a"
    dropped = {"object": "column", "table": "public.t", "name": "a", "present": False}
    assert catalog_checks.supersedes(dropped, later) == "drops column public.t.a"
    assert catalog_checks.supersedes(dict(later, not_null=False), later) == "redefines column_not_null public.t.a"


MEMBERS_ROWS = ("INSERT INTO public.members (id, handle, bio, country) SELECT g, 'm' || g,"
                " CASE WHEN g % 3 = 0 THEN '' ELSE 'bio ' || g END, (ARRAY['NL', 'DE'])[g % 2 + 1]"
                " FROM generate_series(1, 1500) g")


def _generated_test(db: TestDatabase, folder: Path, *args: str):
    import os
    import subprocess
    import sys
    (test_file,) = folder.glob("test_*.py")
    env = dict(os.environ, DBDEPLOY_TEST_DSN=db.dsn)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder),
                           str(test_file), *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_generated_tests_check_the_change_and_its_rollback(fresh_db: TestDatabase, tmp_path: Path) -> None:
    """On a table the specs created (so the state before is known): the generated test of the version
    passes after the forward (and the V001 column checks it changes are superseded, not failed), its
    ``rolled_back`` group passes after the rollback and fails before it."""
    from dbdeploy import Column, CreateTable
    base = Migration(version="001", name="members", operations=[CreateTable(
        table="public.members", primary_key=["id"], columns=[
            Column(name="id", type="bigint"), Column(name="handle", type="text"),
            Column(name="bio", type="text", nullable=False, default="''"),
            Column(name="country", type="text", default="'NL'"),
            Column(name="joined", type="timestamptz", nullable=False, default="now()")])])
    change = Migration(version="002", name="change", operations=[
        SetNotNull(table="public.members", column="handle"), DropNotNull(table="public.members", column="bio"),
        SetDefault(table="public.members", column="country", default="'DE'"),
        DropDefault(table="public.members", column="joined")])
    bundles = write_bundles([base, change], tmp_path)
    db = fresh_db
    run_sql_file(db, bundles["001"].forward)
    db.execute(MEMBERS_ROWS)
    run_sql_file(db, bundles["002"].forward)
    for version in ("001", "002"):
        result = _generated_test(db, bundles[version].folder)
        assert result.returncode == 0, result.stdout
    v001 = _generated_test(db, bundles["001"].folder, "-rs")
    assert "superseded by V002, which changes the nullability of column public.members.handle" in v001.stdout
    assert "superseded by V002, which changes the default of column public.members.joined" in v001.stdout
    before = _generated_test(db, bundles["002"].folder, "-m", "rolled_back")
    assert before.returncode == 1, before.stdout
    run_sql_file(db, bundles["002"].rollback)
    after = _generated_test(db, bundles["002"].folder, "-m", "rolled_back")
    assert after.returncode == 0, after.stdout
    assert "4 passed" in after.stdout or " passed" in after.stdout
    assert _generated_test(db, bundles["001"].folder).returncode == 0


DROP_BIO = '''
from dbdeploy import DropNotNull, Migration

# The suite runs these focused tests on the primary server (the round trips of the same operations in
# tests/test_ops_roundtrip.py run on every server); DBDEPLOY_FULL=1 runs them on every server.
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

migration = Migration(version="001", name="optional_bio", operations=[
    DropNotNull(table="public.profiles", column="bio"),
])
'''


def test_dbdeploy_rollback_refuses_on_nulls_and_records_it(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """The same refusal through the executor (``dbdeploy apply`` / ``rollback``): exit 1, the count in the
    message, nothing changed, the version still applied; after the rows are fixed the rollback runs."""
    from tests.executor_support import make_project, write_spec
    db, conn = fresh_db_each, fresh_db_each.connect()
    db.execute(PROFILES)
    write_spec(tmp_path / "specs", "V001_optional_bio.py", DROP_BIO)
    project = make_project(tmp_path / "project", db.dsn, specs=tmp_path / "specs")
    applied = project.run("apply", "--env", "test")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    db.execute("INSERT INTO public.profiles (id, bio, visits) VALUES (-1, NULL, 0), (-2, NULL, 0)")
    s1 = catalog(conn)
    refused = project.run("rollback", "--env", "test", "--to", "000")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "cannot make public.profiles.bio NOT NULL again: 2 row(s) hold NULL" in refused.stdout + refused.stderr
    assert catalog(conn) == s1
    assert log_status(conn, "001") == "completed"
    db.execute("UPDATE public.profiles SET bio = '' WHERE bio IS NULL")
    done = project.run("rollback", "--env", "test", "--to", "000")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _column(conn, "bio") == (True, "''::text")
