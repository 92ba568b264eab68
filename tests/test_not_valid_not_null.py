"""PostgreSQL 18's ``NOT NULL … NOT VALID``: ``pg_attribute.attnotnull`` is true while rows written
before the constraint may still be NULL (pg_constraint contype ``'n'``, ``convalidated`` false).

Every catalog read in ``dbdeploy/ops`` that took ``attnotnull`` as "holds no NULL" is checked here
on a real 18 server with NULL rows under such a constraint added by hand:

- the existing-column comparison (``ops/existing.py``): a hand-made column with an unvalidated NOT
  NULL is not the spec's NOT NULL column;
- ``not_null_steps`` (``ops/add_column.py``): the helper CHECK is validated (and fails on NULL rows)
  instead of the steps being skipped; once the rows are fixed they end in a validated NOT NULL;
- the checklist's column health checks (``ops/checklist_queries.py``);
- ``dbdeploy verify`` and the generated tests (``bundle/catalog_checks.py``): they name the constraint;
- the DropColumn keeper (``ops/drop_column.py``): the rollback restores the constraint NOT VALID,
  as it was, instead of failing to validate a NOT NULL the column never had.

Each test runs on every server of 18 or later in the session (the embedded 18 in the default
suite) and skips when there is none: earlier servers lack the syntax and have no ``'n'`` rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.add_column import not_null_steps
from dbdeploy.ops.base import PlanContext, SchemaState
from tests.executor_support import make_project, write_spec
from tests.pg import PgServer, TestDatabase, temporary_database

TABLE_SQL = """
CREATE SCHEMA shop;
CREATE TABLE shop.t (id bigint PRIMARY KEY, qty integer);
INSERT INTO shop.t SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g END FROM generate_series(1, 500) g;
ALTER TABLE shop.t ADD CONSTRAINT t_qty_nn NOT NULL qty NOT VALID;
"""
"""50 of the 500 rows hold NULL in ``qty`` under an unvalidated NOT NULL."""


def _servers_18(pg_servers: list[PgServer]) -> list[PgServer]:
    servers = [s for s in pg_servers if s.major >= 18]
    if not servers:
        pytest.skip("no PostgreSQL 18 or later in this session (NOT NULL … NOT VALID is new in 18)")
    return servers


def _setup(db: TestDatabase) -> None:
    db.execute(TABLE_SQL)
    assert db.execute("SELECT a.attnotnull, c.convalidated FROM pg_attribute a JOIN pg_constraint c"
                      " ON c.conrelid = a.attrelid AND c.conname = 't_qty_nn'"
                      " WHERE a.attrelid = 'shop.t'::regclass AND a.attname = 'qty'") == [(True, False)]
    assert db.execute("SELECT count(*) FROM shop.t WHERE qty IS NULL") == [(50,)]


def _project(tmp_path: Path, db: TestDatabase, source: str):
    specs = tmp_path / "specs_src"
    write_spec(specs, "V001_spec.py", source)
    return make_project(tmp_path / "p", db.dsn, specs=specs)


def _file(project, rollback: bool) -> Path:
    folder = next(project.generated.glob("V001__*"))
    return next(p for p in folder.glob("V001__*.sql") if ("__rollback_" in p.name) == rollback)


CREATE_SPEC = '''
from dbdeploy import Column, CreateTable, Migration

migration = Migration(version="001", name="things", operations=[CreateTable(
    table="shop.t", primary_key=["id"],
    columns=[Column(name="id", type="bigint"), Column(name="qty", type="integer", nullable=False)])])
'''


def test_an_existing_column_with_an_unvalidated_not_null_is_not_the_specs_not_null(
        pg_servers: list[PgServer], tmp_path: Path) -> None:
    """CreateTable of a table that exists: the hand-made ``qty`` is NOT NULL NOT VALID (50 NULL rows),
    the spec says NOT NULL; the forward refuses, naming the difference, and changes nothing."""
    for number, server in enumerate(_servers_18(pg_servers)):
        with temporary_database(server) as db:
            _setup(db)
            project = _project(tmp_path / str(number), db, CREATE_SPEC)
            result = db.psql_file(_file(project, rollback=False), check=False)
            assert result.returncode != 0, result.stdout + result.stderr
            assert "column qty is integer NOT NULL NOT VALID, expected integer NOT NULL" in result.stderr, \
                result.stderr
            assert db.execute("SELECT count(*) FROM shop.t WHERE qty IS NULL") == [(50,)]


def _steps(db: TestDatabase) -> None:
    ctx = PlanContext(version="001", migration_name="m", index=1, state=SchemaState())
    for step in not_null_steps(ctx, "shop.t", "qty"):
        db.execute(step.sql)


def test_not_null_steps_validate_an_unvalidated_not_null(pg_servers: list[PgServer]) -> None:
    """The NOT NULL steps of AddColumn are not skipped for an unvalidated NOT NULL: the helper CHECK's
    VALIDATE fails on the NULL rows (nothing else changed); with the rows filled they end in a
    validated NOT NULL, the helper CHECK gone, and the checklist's health check says NOT NULL."""
    for server in _servers_18(pg_servers):
        with temporary_database(server) as db:
            _setup(db)
            with pytest.raises(Exception, match="violated by some row"):
                _steps(db)
            assert db.execute("SELECT count(*) FROM shop.t WHERE qty IS NULL") == [(50,)]
            db.execute("UPDATE shop.t SET qty = 0 WHERE qty IS NULL")
            _steps(db)
            assert db.execute("SELECT a.attnotnull, c.contype, c.convalidated FROM pg_attribute a"
                              " JOIN pg_constraint c ON c.conrelid = a.attrelid AND a.attnum = ANY (c.conkey)"
                              " WHERE a.attrelid = 'shop.t'::regclass AND a.attname = 'qty'") == [(True, "n", True)]
            assert db.execute(queries.column_state("shop.t", "qty", True).sql) == [(True,)]
            _steps(db)   # a re-run changes nothing
            assert db.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'shop.t'::regclass") == [(3,)]


def test_checklist_health_checks_do_not_take_an_unvalidated_not_null_for_not_null(
        pg_servers: list[PgServer]) -> None:
    for server in _servers_18(pg_servers):
        with temporary_database(server) as db:
            _setup(db)
            assert db.execute(queries.column_state("shop.t", "qty", True).sql) == [(False,)]
            # declared NOT NULL (rejects NULL writes): not nullable either
            assert db.execute(queries.column_state("shop.t", "qty", False).sql) == [(False,)]
            assert db.execute(queries.column_state("shop.t", "qty", None).sql) == [(True,)]
            assert db.execute(queries.columns_state("shop.t", [("id", True), ("qty", True)]).sql) == [(1,)]
            assert db.execute(queries.columns_state("shop.t", [("id", True), ("qty", False)]).sql) == [(1,)]
            db.execute("UPDATE shop.t SET qty = 0 WHERE qty IS NULL; ALTER TABLE shop.t VALIDATE CONSTRAINT t_qty_nn")
            assert db.execute(queries.column_state("shop.t", "qty", True).sql) == [(True,)]
            assert db.execute(queries.columns_state("shop.t", [("id", True), ("qty", True)]).sql) == [(0,)]


DROP_SPEC = '''
from dbdeploy import DropColumn, Migration

migration = Migration(version="001", name="drop_qty", operations=[DropColumn(table="shop.t", column="qty")])
'''


def test_drop_column_rollback_restores_an_unvalidated_not_null_as_it_was(
        pg_servers: list[PgServer], tmp_path: Path) -> None:
    """DropColumn of ``qty`` (NOT NULL NOT VALID, 50 NULL rows), rows inserted while it is gone, then
    the rollback: every value comes back (NULLs too), the new rows get NULL, and the constraint is
    back NOT VALID under its name; the keeper said unvalidated, so no CHECK was validated."""
    for number, server in enumerate(_servers_18(pg_servers)):
        with temporary_database(server) as db:
            _setup(db)
            before = db.execute("SELECT id, qty FROM shop.t ORDER BY id")
            project = _project(tmp_path / str(number), db, DROP_SPEC)
            db.psql_file(_file(project, rollback=False))
            assert db.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'shop.t'::regclass"
                              " AND attname = 'qty' AND NOT attisdropped") == [(0,)]
            recorded = db.execute("SELECT not_null FROM dbdeploy_backup.dropped_columns")
            db.execute("INSERT INTO shop.t (id) SELECT g FROM generate_series(501, 505) g")
            result = db.psql_file(_file(project, rollback=True), check=False)
            assert result.returncode == 0, result.stdout + result.stderr
            after = db.execute("SELECT id, qty FROM shop.t ORDER BY id")
            assert after == before + [(g, None) for g in range(501, 506)]
            assert db.execute("SELECT c.conname, c.contype, c.convalidated, a.attnotnull FROM pg_attribute a"
                              " JOIN pg_constraint c ON c.conrelid = a.attrelid AND a.attnum = ANY (c.conkey)"
                              " WHERE a.attrelid = 'shop.t'::regclass AND a.attname = 'qty'"
                              ) == [("t_qty_nn", "n", False, True)]
            with pytest.raises(Exception, match="null value"):
                db.execute("INSERT INTO shop.t (id) VALUES (999)")
            assert recorded == [(False,)]   # for the operator: not proven NOT NULL when dropped


def test_verify_and_the_generated_test_report_an_unvalidated_not_null(
        pg_servers: list[PgServer], tmp_path: Path) -> None:
    """The spec's NOT NULL column replaced by hand with ``NOT NULL … NOT VALID`` over NULL rows:
    ``dbdeploy verify`` and the bundle's generated test both report it, naming the constraint and the
    VALIDATE that fixes it; validated again, both pass."""
    import os
    import subprocess
    import sys

    for number, server in enumerate(_servers_18(pg_servers)):
        with temporary_database(server) as db:
            db.execute("CREATE SCHEMA shop")
            project = _project(tmp_path / str(number), db, CREATE_SPEC)
            applied = project.run("apply", "--env", "test")
            assert applied.returncode == 0, applied.stdout + applied.stderr
            db.execute("INSERT INTO shop.t (id, qty) SELECT g, g FROM generate_series(1, 200) g")
            db.execute("ALTER TABLE shop.t ALTER COLUMN qty DROP NOT NULL")
            db.execute("UPDATE shop.t SET qty = NULL WHERE id <= 20")
            db.execute("ALTER TABLE shop.t ADD CONSTRAINT t_qty_nn NOT NULL qty NOT VALID")

            def generated(project=project, db=db) -> subprocess.CompletedProcess:
                env = dict(os.environ, DBDEPLOY_TEST_DSN=db.dsn)
                return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                       str(project.generated)], cwd=project.root, capture_output=True, text=True,
                                      env=env, timeout=300, check=False)

            verify = project.run("verify", "--env", "test")
            assert verify.returncode == 1, verify.stdout + verify.stderr
            assert "NOT VALID constraint t_qty_nn" in verify.stderr, verify.stderr
            assert "VALIDATE CONSTRAINT t_qty_nn" in verify.stderr, verify.stderr
            tests = generated()
            assert tests.returncode == 1 and "NOT VALID constraint t_qty_nn" in tests.stdout, tests.stdout[-3000:]

            db.execute("UPDATE shop.t SET qty = 0 WHERE qty IS NULL")
            db.execute("ALTER TABLE shop.t VALIDATE CONSTRAINT t_qty_nn")
            assert project.run("verify", "--env", "test").returncode == 0
            assert generated().returncode == 0
