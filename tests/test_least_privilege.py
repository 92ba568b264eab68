"""Least-privilege deploys (issue 9, kind 8), on both servers.

A role with LOGIN but NOSUPERUSER, NOCREATEDB, NOCREATEROLE and no CREATE on its database; a
DBA (the test's superuser) prepares it with exactly the SQL of the README's "Least-privilege
deploys" section, parsed out of README.md so the two cannot drift. As that role, a set of specs
that uses every operation kind is applied, checked (status, verify), and rolled back to 0 over
populated tables, comparing catalog and rows with the start. Each missing privilege is one
clear error with exit code 4, no traceback, and nothing applied. Every role is dropped again.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dbdeploy import DropTable
from tests.bundles import write_bundles
from tests.executor_support import REPO, Project, make_project, write_spec
from tests.pg import TestDatabase
from tests.roundtrip import catalog, data_snapshot, expect_failure, relation_exists, run_sql_file

# The suite runs this module on the primary server (the round trips in tests/test_ops_roundtrip.py and the
# step-lock checks run on every server); DBDEPLOY_FULL=1 runs it on every server (README, "Testing").
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

PASSWORD = "lp-secret-" + secrets.token_hex(4)   # trust auth ignores it; it must never be printed
APP = "app"
TABLES = {"app.customers": "id", "app.orders": "id", "app.legacy": "id"}


def readme_sql(marker: str) -> str:
    """The ```sql block that follows ``<!-- least-privilege:<marker> -->`` in README.md."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- least-privilege:{marker} -->\s*```sql\n(.*?)```", text, re.S)
    assert match, f"README.md has no SQL block after <!-- least-privilege:{marker} -->"
    return match.group(1)


def run_readme_block(target: TestDatabase, tmp: Path, marker: str, **variables: str) -> None:
    """Run the README's block with psql as the DBA, its :"variables" set with -v (psql quotes them)."""
    path = tmp / f"readme_{marker}.sql"
    path.write_text(readme_sql(marker))
    args = [arg for name, value in variables.items() for arg in ("-v", f"{name}={value}")]
    target.psql(*args, "-f", str(path))


@dataclass
class Deployer:
    role: str
    db: TestDatabase
    dsn: str

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True)


def _prepare(db: TestDatabase, role: str, tmp: Path) -> None:
    """The DBA's part: no CREATE on the database for anyone but its owner, then the README's grants."""
    db.execute(sql.SQL("REVOKE CREATE ON DATABASE {d} FROM PUBLIC; REVOKE CREATE ON DATABASE {d} FROM {r}").format(
        d=sql.Identifier(db.name), r=sql.Identifier(role)))
    run_readme_block(db, tmp, "grants", db=db.name, deployer=role, app_schema=APP)


def _drop_role(role: str, dbs: list[TestDatabase]) -> None:
    for db in dbs:
        db.close()
        db.execute(sql.SQL("REASSIGN OWNED BY {r} TO CURRENT_USER; DROP OWNED BY {r}").format(r=sql.Identifier(role)))
    dbs[0].execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def deployer(fresh_db_each: TestDatabase, tmp_path: Path) -> Iterator[Deployer]:
    """A fresh least-privilege role, set up in a fresh database with the README's SQL."""
    db = fresh_db_each
    role = f"dbd_lp_{secrets.token_hex(4)}"
    run_readme_block(db, tmp_path, "role", deployer=role)
    try:
        _prepare(db, role, tmp_path)
        yield Deployer(role, db, make_conninfo(db.dsn, user=role, password=PASSWORD))
    finally:
        _drop_role(role, [db])


def _populate(deployer: Deployer) -> None:
    """The application's tables before dbdeploy: owned by the deploy role, with rows."""
    with deployer.connect() as conn:
        conn.execute("""
            CREATE TABLE app.customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL,
                                        tier text);
            INSERT INTO app.customers (email, tier)
            SELECT 'c' || g || '@example.com', CASE WHEN g % 3 = 0 THEN NULL ELSE 'tier' || g % 4 END
            FROM generate_series(1, 1500) g;
            CREATE TABLE app.orders (id serial PRIMARY KEY, customer_id bigint NOT NULL, amount numeric(10,2) NOT NULL,
                                     note text, ref text);
            INSERT INTO app.orders (customer_id, amount, note, ref)
            SELECT g % 1500 + 1, (g % 250) * 1.5, 'note ' || g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'r' || g END
            FROM generate_series(1, 2000) g;
            CREATE TABLE app.legacy (id integer PRIMARY KEY, payload text UNIQUE, n serial);
            CREATE INDEX legacy_lower_payload_idx ON app.legacy (lower(payload));
            INSERT INTO app.legacy (id, payload) SELECT g, 'p' || g FROM generate_series(1, 800) g;
        """)


SPECS = {
    "V001_create.py": '''
from dbdeploy import Column, CreateTable, ForeignKey, Migration, SeedRows

migration = Migration(version="001", name="create", operations=[
    CreateTable(table="app.tiers", columns=[Column(name="code", type="text", nullable=False),
                                            Column(name="label", type="text")], primary_key=["code"]),
    SeedRows(table="app.tiers", rows=[{"code": "basic", "label": "Basic"}, {"code": "gold", "label": "Gold"}],
             conflict_columns=["code"]),
    CreateTable(table="app.shipments",
                columns=[Column(name="id", type="bigint", identity=True, nullable=False),
                         Column(name="order_id", type="integer", nullable=False),
                         Column(name="shipped_at", type="timestamptz")],
                primary_key=["id"],
                foreign_keys=[ForeignKey(columns=["order_id"], references="app.orders", ref_columns=["id"])]),
])
''',
    "V002_evolve.py": '''
from dbdeploy import (AddCheck, AddColumn, AddForeignKey, AddUnique, Backfill, Check, Column, CreateIndex,
                      ForeignKey, Index, Migration, Unique)

migration = Migration(version="002", name="evolve", operations=[
    AddColumn(table="app.customers", column=Column(name="tier_code", type="text")),
    Backfill(table="app.customers", set={"tier_code": "coalesce(tier, 'basic')"}, where="tier_code IS NULL",
             batch_size=400, key=["id"]),
    CreateIndex(table="app.orders", index=Index(columns=["customer_id"])),
    AddForeignKey(table="app.orders", foreign_key=ForeignKey(columns=["customer_id"], references="app.customers",
                                                             ref_columns=["id"])),
    AddCheck(table="app.orders", check=Check(expression="amount >= 0")),
    AddUnique(table="app.orders", unique=Unique(columns=["ref"])),
])
''',
    "V003_retire.py": '''
from dbdeploy import DropColumn, DropTable, Migration, RawSQL

migration = Migration(version="003", name="retire", operations=[
    DropColumn(table="app.orders", column="note"),
    DropTable(table="app.legacy"),
    RawSQL(forward="CREATE VIEW app.big_orders AS SELECT id, amount FROM app.orders WHERE amount > 300",
           rollback="DROP VIEW IF EXISTS app.big_orders"),
])
''',
}


def _project(tmp_path: Path) -> Project:
    specs = tmp_path / "specs"
    for name, source in SPECS.items():
        write_spec(specs, name, source)
    return make_project(tmp_path / "project", specs=specs)


def _clean(result) -> str:
    """The command's output; asserts it has no traceback and no password."""
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    assert PASSWORD not in text, "the password was printed"
    return text


def _schemas(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'"
                                       " AND nspname <> 'information_schema' ORDER BY 1")]


def _history_rows(conn: psycopg.Connection) -> int:
    if conn.execute("SELECT to_regclass('migrations.migration_log')").fetchone()[0] is None:
        return 0
    return conn.execute("SELECT count(*) FROM migrations.migration_log").fetchone()[0]


def test_readme_sql_sets_up_a_role_without_create_on_the_database(deployer: Deployer) -> None:
    with deployer.db.connect() as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = %s",
            [deployer.role]).fetchone()
        assert row == (False, False, False, True)
        assert conn.execute("SELECT has_database_privilege(%s, current_database(), 'CREATE')",
                            [deployer.role]).fetchone()[0] is False
        owners = dict(conn.execute("SELECT nspname, nspowner::regrole::text FROM pg_namespace"
                                   " WHERE nspname IN ('app', 'migrations', 'dbdeploy_backup')").fetchall())
        assert owners == {"app": deployer.role, "migrations": deployer.role, "dbdeploy_backup": deployer.role}
        public = conn.execute("SELECT bool_or(has_schema_privilege('public', oid, 'USAGE')) FROM pg_namespace"
                              " WHERE nspname IN ('migrations', 'dbdeploy_backup')").fetchone()[0]
        assert public is False


def test_every_operation_applies_verifies_and_rolls_back_as_the_role(deployer: Deployer, tmp_path: Path) -> None:
    _populate(deployer)
    project = _project(tmp_path)
    with deployer.db.connect() as conn:
        s0, rows0, schemas0 = catalog(conn), data_snapshot(conn, TABLES), _schemas(conn)

    result = project.run("apply", "--dsn", deployer.dsn, "--plain")
    assert result.returncode == 0, _clean(result)
    _clean(result)
    with deployer.db.connect() as conn:
        assert _schemas(conn) == schemas0, "a drop must not need a schema of its own"
        assert not relation_exists(conn, "app.legacy")
        kept = conn.execute("SELECT backup_table, renamed FROM dbdeploy_backup.dropped_tables").fetchall()
        assert [k[0] for k in kept] == ["v003_op2_app_legacy"]
        assert conn.execute("SELECT count(*) FROM dbdeploy_backup.v003_op2_app_legacy").fetchone()[0] == 800
        assert sorted(e["name"] for e in kept[0][1]) == ["legacy_lower_payload_idx", "legacy_n_seq",
                                                        "legacy_payload_key", "legacy_pkey"]
        assert conn.execute("SELECT count(*) FROM app.customers WHERE tier_code IS NULL").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM app.big_orders").fetchone()[0] > 0

    status = project.run("status", "--dsn", deployer.dsn, "--json")
    assert status.returncode == 0, _clean(status)
    assert [r["state"] for r in json.loads(status.stdout)] == ["applied"] * 3
    verify = project.run("verify", "--dsn", deployer.dsn)
    assert verify.returncode == 0, _clean(verify)

    back = project.run("rollback", "--to", "0", "--dsn", deployer.dsn, "--plain")
    assert back.returncode == 0, _clean(back)
    with deployer.db.connect() as conn:
        assert catalog(conn) == s0
        assert data_snapshot(conn, TABLES) == rows0
        assert _schemas(conn) == schemas0
        assert conn.execute("SELECT count(*) FROM dbdeploy_backup.dropped_tables").fetchone()[0] == 0


def _break_backup_usage(db: TestDatabase) -> None:
    db.execute("ALTER SCHEMA dbdeploy_backup OWNER TO CURRENT_USER")   # made by the DBA, never granted


def _drop_backup_schema(db: TestDatabase) -> None:
    db.execute("DROP SCHEMA dbdeploy_backup")                          # never created, and no CREATE


def _drop_history_schema(db: TestDatabase) -> None:
    db.execute("DROP SCHEMA migrations")


def _take_table(db: TestDatabase) -> None:
    db.execute("ALTER TABLE app.orders OWNER TO CURRENT_USER")         # a table the role does not own


MISSING = {
    "no usage on dbdeploy_backup": (_break_backup_usage, 'GRANT USAGE, CREATE ON SCHEMA "dbdeploy_backup" TO'),
    "dbdeploy_backup missing, no CREATE": (_drop_backup_schema, 'CREATE SCHEMA "dbdeploy_backup" AUTHORIZATION'),
    "migrations missing, no CREATE": (_drop_history_schema, 'CREATE SCHEMA "migrations" AUTHORIZATION'),
    "table owned by another role": (_take_table, 'ALTER TABLE "app"."orders" OWNER TO'),
}


@pytest.mark.parametrize("case", list(MISSING))
def test_a_missing_privilege_is_one_clear_error_and_nothing_runs(case: str, deployer: Deployer,
                                                                 tmp_path: Path) -> None:
    _populate(deployer)
    project = _project(tmp_path)
    breaks, grant = MISSING[case]
    breaks(deployer.db)
    with deployer.db.connect() as conn:
        s0, rows0, schemas0 = catalog(conn), data_snapshot(conn, TABLES), _schemas(conn)
        tables0 = conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace IN (SELECT oid FROM pg_namespace"
                               " WHERE nspname IN ('migrations', 'dbdeploy_backup'))").fetchone()[0]

    result = project.run("apply", "--dsn", deployer.dsn, "--plain")
    text = _clean(result)
    assert result.returncode == 4, text
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and f"role {deployer.role} lacks" in error[0] and "nothing was run" in error[0], text
    assert grant in text and f'"{deployer.role}";' in text, text
    with deployer.db.connect() as conn:
        assert catalog(conn) == s0 and data_snapshot(conn, TABLES) == rows0 and _schemas(conn) == schemas0
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace IN (SELECT oid FROM pg_namespace"
                            " WHERE nspname IN ('migrations', 'dbdeploy_backup'))").fetchone()[0] == tables0
        assert _history_rows(conn) == 0


def test_status_and_verify_without_usage_on_dbdeploy_schemas(deployer: Deployer, tmp_path: Path) -> None:
    _populate(deployer)
    project = _project(tmp_path)
    assert project.run("apply", "--dsn", deployer.dsn).returncode == 0
    deployer.db.execute("ALTER SCHEMA migrations OWNER TO CURRENT_USER")
    for command in ("status", "verify"):
        result = project.run(command, "--dsn", deployer.dsn)
        text = _clean(result)
        assert result.returncode == 4, text
        assert 'GRANT USAGE ON SCHEMA "migrations" TO' in text, text
    rollback = project.run("rollback", "--to", "0", "--dsn", deployer.dsn)
    assert rollback.returncode == 4, _clean(rollback)
    with deployer.db.connect() as conn:
        assert relation_exists(conn, "app.shipments")   # the refused rollback changed nothing


def test_rollback_refuses_up_front_when_it_may_not_alter_a_table(deployer: Deployer, tmp_path: Path) -> None:
    _populate(deployer)
    project = _project(tmp_path)
    assert project.run("apply", "--dsn", deployer.dsn).returncode == 0
    deployer.db.execute("ALTER TABLE app.customers OWNER TO CURRENT_USER")   # V002's rollback drops tier_code
    with deployer.db.connect() as conn:
        before, rows = catalog(conn), data_snapshot(conn, TABLES)
        log = conn.execute("SELECT version, status FROM migrations.migration_log ORDER BY 1").fetchall()
    result = project.run("rollback", "--to", "0", "--dsn", deployer.dsn, "--plain")
    text = _clean(result)
    assert result.returncode == 4, text
    assert "ownership of table app.customers" in text and 'ALTER TABLE "app"."customers" OWNER TO' in text, text
    assert "V002 step" in text, text
    with deployer.db.connect() as conn:   # V003's rollback, which it could run, did not run either
        assert catalog(conn) == before and data_snapshot(conn, TABLES) == rows
        assert conn.execute("SELECT version, status FROM migrations.migration_log ORDER BY 1").fetchall() == log


def test_psql_run_of_a_bundle_names_the_missing_schema_and_the_fix(deployer: Deployer, tmp_path: Path) -> None:
    project = _project(tmp_path)
    _drop_backup_schema(deployer.db)
    forward = next(project.generated.glob("V001__*/V001__create.sql"))
    as_role = TestDatabase(replace(deployer.db.server, admin_dsn=make_conninfo(deployer.db.server.admin_dsn,
                                                                               user=deployer.role)),
                           deployer.db.name)
    proc = expect_failure(as_role, forward, "schema dbdeploy_backup does not exist",
                          f"no CREATE privilege on database {deployer.db.name}",
                          "CREATE SCHEMA \"dbdeploy_backup\" AUTHORIZATION")
    assert "permission denied" not in proc.stderr
    with deployer.db.connect() as conn:
        assert not relation_exists(conn, "app.tiers")
        assert _history_rows(conn) == 0


def test_dbdeploy_test_without_createdb_and_with_existing(deployer: Deployer, db_factory, tmp_path: Path) -> None:
    project = _project(tmp_path)
    _populate(deployer)
    scratch = project.run("test", "--dsn", deployer.dsn, "--plain")
    text = _clean(scratch)
    assert scratch.returncode == 4, text
    assert f'ALTER ROLE "{deployer.role}" CREATEDB;' in text and "--existing" in text, text
    with deployer.db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datdba = %s::regrole",
                            [deployer.role]).fetchone()[0] == 0

    # --existing refuses a database that holds applied versions ...
    assert project.run("apply", "--dsn", deployer.dsn).returncode == 0
    refused = project.run("test", "--existing", "--dsn", deployer.dsn, "--plain")
    assert refused.returncode == 2 and "needs a database without applied versions" in _clean(refused)

    # ... and passes in an empty one prepared with the README's SQL, which it leaves rolled back.
    ci = db_factory(deployer.db.server)
    try:
        _prepare(ci, deployer.role, tmp_path)
        ci_dsn = make_conninfo(ci.dsn, user=deployer.role, password=PASSWORD)
        with psycopg.connect(ci_dsn, autocommit=True) as conn:   # the application's tables the specs change
            conn.execute("CREATE TABLE app.customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                         " email text NOT NULL, tier text);"
                         " INSERT INTO app.customers (email) SELECT 'c' || g FROM generate_series(1, 300) g;"
                         " CREATE TABLE app.orders (id serial PRIMARY KEY, customer_id bigint NOT NULL,"
                         " amount numeric(10,2) NOT NULL, note text, ref text);"
                         " INSERT INTO app.orders (customer_id, amount, ref) SELECT g, g, 'r' || g"
                         " FROM generate_series(1, 300) g;"
                         " CREATE TABLE app.legacy (id integer PRIMARY KEY, payload text UNIQUE, n serial);")
        existing = project.run("test", "--existing", "--dsn", ci_dsn, "--plain")
        assert existing.returncode == 0, _clean(existing)
        assert "dbdeploy test passed" in existing.stdout
        status = project.run("status", "--dsn", ci_dsn, "--json")
        assert [r["state"] for r in json.loads(status.stdout)] == ["rolled back"] * 3
    finally:
        ci.close()
        ci.execute(sql.SQL("REASSIGN OWNED BY {r} TO CURRENT_USER; DROP OWNED BY {r}").format(
            r=sql.Identifier(deployer.role)))


# --- DropTable: unique names in dbdeploy_backup, every original name given back -------------

SAME_NAMES = """
CREATE SCHEMA a; CREATE SCHEMA b;
CREATE TABLE a.t (id serial PRIMARY KEY, code text CONSTRAINT t_code_key UNIQUE,
                  n bigint GENERATED BY DEFAULT AS IDENTITY, CONSTRAINT t_n_check CHECK (n > 0));
CREATE TABLE b.t (id serial PRIMARY KEY, code text CONSTRAINT t_code_key UNIQUE,
                  n bigint GENERATED BY DEFAULT AS IDENTITY, CONSTRAINT t_n_check CHECK (n > 0));
CREATE INDEX t_lower_code_idx ON a.t (lower(code)); CREATE INDEX t_lower_code_idx ON b.t (lower(code));
INSERT INTO a.t (code) SELECT 'a' || g FROM generate_series(1, 500) g;
INSERT INTO b.t (code) SELECT 'b' || g FROM generate_series(1, 700) g;
"""


def test_drop_table_of_same_named_tables_restores_every_name(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db_each, fresh_db_each.connect()
    db.execute(SAME_NAMES)
    s0, rows0 = catalog(conn), data_snapshot(conn, {"a.t": "id", "b.t": "id"})
    seqs0 = conn.execute("SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2").fetchall()
    files = write_bundles([_migration(DropTable(table="a.t"), DropTable(table="b.t"))], tmp_path)["001"]
    run_sql_file(db, files.forward)
    assert not relation_exists(conn, "a.t") and not relation_exists(conn, "b.t")
    moved = conn.execute("SELECT relname FROM pg_class WHERE relnamespace = 'dbdeploy_backup'::regnamespace"
                         " AND relname LIKE 'v001%' ORDER BY 1").fetchall()
    assert len(moved) == 2 * (1 + 3 + 2), moved   # per table: itself, 3 indexes, 2 sequences
    run_sql_file(db, files.rollback)
    assert catalog(conn) == s0
    assert data_snapshot(conn, {"a.t": "id", "b.t": "id"}) == rows0
    assert conn.execute("SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2"
                        ).fetchall() == seqs0


def test_drop_table_rollback_refuses_when_a_name_was_taken_and_changes_nothing(fresh_db: TestDatabase,
                                                                                 tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute(SAME_NAMES)
    files = write_bundles([_migration(DropTable(table="a.t"))], tmp_path)["001"]
    run_sql_file(db, files.forward)
    db.execute("CREATE TABLE a.other (x integer); CREATE INDEX t_lower_code_idx ON a.other (x)")
    before = catalog(conn)
    expect_failure(db, files.rollback, "other relations now use the names", "a.t_lower_code_idx")
    assert catalog(conn) == before
    db.execute("DROP TABLE a.other")
    run_sql_file(db, files.rollback)
    assert relation_exists(conn, "a.t") and relation_exists(conn, "a.t_lower_code_idx")


def _migration(*operations):
    from dbdeploy import Migration

    return Migration(version="001", name="drop_things", operations=list(operations))
