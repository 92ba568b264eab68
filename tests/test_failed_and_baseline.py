"""Issue 9, kinds 9 and 14, on real PostgreSQL 15 and 16 with populated tables.

Kind 9 — a failed migration has a way forward: a version that fails half-way leaves nothing
that rejects the application's formerly legal writes (a failed VALIDATE drops its NOT VALID
constraint, a unique build refuses before it builds anything, the executor drops the INVALID
indexes a failed build left), and the documented procedure — roll back the failed version with
the bundle that ran, fix the spec, generate, apply — reaches applied, via the executor and psql.

Kind 14 — baseline checks the database against the manifests' expectations before it records
anything, a baselined version is rolled back only with --include-baseline (and its RawSQL
rollback only with --include-baseline-rawsql), and `dbdeploy history forget` repairs a wrong
history.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import psycopg
import pytest

from tests.executor_support import make_project, write_spec

# The suite runs this module on the primary server (the round trips in tests/test_ops_roundtrip.py and the
# step-lock checks run on every server); DBDEPLOY_FULL=1 runs it on every server (README, "Testing").
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

LOG = "SELECT version, status FROM migrations.migration_log ORDER BY version"

BASE = '''
from dbdeploy import Column, CreateSchema, CreateTable, Migration

migration = Migration(version="001", name="shop", operations=[
    CreateSchema(name="shop"),
    CreateTable(table="shop.customers", columns=[
        Column(name="id", type="bigint", nullable=False),
        Column(name="code", type="text", nullable=False),
        Column(name="email", type="text"),
    ], primary_key=["id"]),
    CreateTable(table="shop.orders", columns=[
        Column(name="id", type="bigint", nullable=False),
        Column(name="customer_id", type="bigint"),
        Column(name="status", type="text", nullable=False, default="'new'"),
        Column(name="total", type="numeric(12,2)", nullable=False, default="0"),
    ], primary_key=["id"]),
])
'''

# 500 customers (every 50th email shared with its neighbour), 2,000 orders (every 100th with a
# negative total, every 250th referencing a customer that does not exist, half of them 'new').
POPULATE = [
    "INSERT INTO shop.customers (id, code, email) SELECT g, 'c' || g,"
    " CASE WHEN g % 50 = 0 THEN 'shared' || g || '@example.com' WHEN g % 50 = 1 AND g > 1"
    " THEN 'shared' || (g - 1) || '@example.com' ELSE 'user' || g || '@example.com' END"
    " FROM generate_series(1, 500) g",
    "INSERT INTO shop.orders (id, customer_id, status, total) SELECT g,"
    " CASE WHEN g % 250 = 0 THEN 100000 + g ELSE 1 + g % 500 END,"
    " CASE WHEN g % 2 = 0 THEN 'new' ELSE 'paid' END,"
    " CASE WHEN g % 100 = 0 THEN -5 ELSE g % 90 END FROM generate_series(1, 2000) g",
]


@dataclass(frozen=True)
class Case:
    name: str
    failing: str          # V002 spec source that fails on the populated rows
    fixed: str            # the corrected V002 spec
    app_insert: str       # a write that was legal before V002 and must stay legal after it failed


HEAD = "from dbdeploy import AddCheck, AddColumn, AddForeignKey, AddUnique, Backfill, Check, Column, ForeignKey, " \
       "Migration, Unique\n"

CASES = [
    Case("check",
         HEAD + 'migration = Migration(version="002", name="totals", operations=[AddCheck(table="shop.orders",'
                ' check=Check(expression="total >= 0", name="orders_total_check"))])\n',
         HEAD + 'migration = Migration(version="002", name="totals", operations=[AddCheck(table="shop.orders",'
                ' check=Check(expression="total >= -1000", name="orders_total_check"))])\n',
         "INSERT INTO shop.orders (id, customer_id, total) VALUES (900001, 1, -7)"),
    Case("foreign_key",
         HEAD + 'migration = Migration(version="002", name="order_customer", operations=[AddForeignKey('
                'table="shop.orders", foreign_key=ForeignKey(columns=["customer_id"], references="shop.customers",'
                ' ref_columns=["id"], name="orders_customer_fk"))])\n',
         HEAD + 'migration = Migration(version="002", name="order_customer", operations=['
                'Backfill(table="shop.orders", set={"customer_id": "NULL"}, where="customer_id > 100000"),'
                ' AddForeignKey(table="shop.orders", foreign_key=ForeignKey(columns=["customer_id"],'
                ' references="shop.customers", ref_columns=["id"], name="orders_customer_fk"))])\n',
         "INSERT INTO shop.orders (id, customer_id) VALUES (900001, 777777)"),
    Case("not_null_fill",
         HEAD + 'migration = Migration(version="002", name="channel", operations=[AddColumn(table="shop.orders",'
                ' column=Column(name="channel", type="text", nullable=False)), Backfill(table="shop.orders",'
                ' set={"channel": "CASE WHEN status = \'new\' THEN \'web\' END"})])\n',
         HEAD + 'migration = Migration(version="002", name="channel", operations=[AddColumn(table="shop.orders",'
                ' column=Column(name="channel", type="text", nullable=False)), Backfill(table="shop.orders",'
                ' set={"channel": "COALESCE(CASE WHEN status = \'new\' THEN \'web\' END, \'shop\')"})])\n',
         "INSERT INTO shop.orders (id, customer_id, total) VALUES (900001, 1, 3)"),
    Case("unique",
         HEAD + 'migration = Migration(version="002", name="emails", operations=[AddUnique(table="shop.customers",'
                ' unique=Unique(columns=["email"], name="customers_email_key"))])\n',
         HEAD + 'migration = Migration(version="002", name="emails", operations=[AddUnique(table="shop.customers",'
                ' unique=Unique(columns=["code"], name="customers_code_key"))])\n',
         "INSERT INTO shop.customers (id, code, email) VALUES (900001, 'c900001', 'user7@example.com')"),
]


def _project(tmp_path, db):
    specs = tmp_path / "specs"
    write_spec(specs, "V001_shop.py", BASE)
    project = make_project(tmp_path / "p", db.dsn, specs=specs)
    assert project.run("apply", "--env", "test").returncode == 0
    for statement in POPULATE:
        db.execute(statement)
    return project


def _enforcing_leftovers(db) -> list[tuple]:
    """NOT VALID constraints and INVALID indexes on the shop tables: what a half-run leaves enforcing."""
    return db.execute(
        "SELECT 'constraint', conname FROM pg_constraint WHERE connamespace = 'shop'::regnamespace"
        " AND NOT convalidated UNION ALL SELECT 'index', c.relname FROM pg_index i JOIN pg_class c"
        " ON c.oid = i.indexrelid WHERE c.relnamespace = 'shop'::regnamespace AND NOT i.indisvalid")


def _v002_objects(db) -> list[tuple]:
    return db.execute("SELECT object_type, object_name FROM migrations.migration_objects WHERE version = '002'"
                      " ORDER BY 1, 2")


def _status(project) -> dict[str, dict]:
    result = project.run("status", "--env", "test", "--json")
    assert result.returncode == 0, result.stderr
    return {r["version"]: r for r in json.loads(result.stdout)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_failed_version_leaves_nothing_enforcing_and_the_procedure_reaches_applied(fresh_db_each, tmp_path,
                                                                                   case: Case) -> None:
    db = fresh_db_each
    project = _project(tmp_path, db)
    spec = project.root / "specs" / "V002_change.py"
    spec.write_text(case.failing)
    assert project.run("generate").returncode == 0

    failed = project.run("apply", "--env", "test")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "marked failed" in failed.stderr
    assert "dbdeploy rollback --to 001 --env test" in failed.stderr, failed.stderr
    assert "dbdeploy generate" in failed.stderr and "dbdeploy apply --env test" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert db.execute(LOG) == [("001", "completed"), ("002", "failed")]

    # nothing the failed version left behind rejects the application's formerly legal write
    assert _enforcing_leftovers(db) == []
    db.execute(case.app_insert)

    status = _status(project)
    assert status["002"]["state"] == "failed"
    assert "dbdeploy rollback --to 001 --env test" in status["002"]["next"]
    table = project.run("status", "--env", "test")
    assert "V002 is failed" in table.stdout and "dbdeploy rollback --to 001 --env test" in table.stdout

    # the procedure: 1. roll back with the bundle that ran (after the spec was already fixed and
    # regenerated, to prove the stored rollback is used), 2. fix + generate, 3. apply
    spec.write_text(case.fixed)
    assert project.run("generate").returncode == 0
    early = project.run("apply", "--env", "test")
    assert early.returncode == 3, early.stdout + early.stderr
    assert "roll it back first" in early.stderr and "dbdeploy rollback --to 001" in early.stderr

    back = project.run("rollback", "--env", "test", "--to", "001")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "rolled back V002" in back.stdout
    assert db.execute(LOG) == [("001", "completed"), ("002", "rolled_back")]
    assert _v002_objects(db) == []
    stored = db.execute("SELECT details->>'stored_rollback' FROM migrations.migration_events"
                        " WHERE event = 'rollback' AND version = '002'")
    assert stored and stored[0][0] and "rollback" in stored[0][0]

    applied = project.run("apply", "--env", "test")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert db.execute(LOG) == [("001", "completed"), ("002", "completed")]
    assert _status(project)["002"]["state"] == "applied"
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert db.execute("SELECT count(*) FROM shop.orders")[0][0] >= 2000


def _forward(folder):
    return next(p for p in folder.glob("V002__*.sql") if "__rollback_" not in p.name)


@pytest.mark.parametrize("case", CASES[:3], ids=[c.name for c in CASES[:3]])
def test_failed_validate_under_psql_drops_its_constraint_and_the_procedure_works(fresh_db_each, tmp_path,
                                                                                  case: Case) -> None:
    """The same bundles run with nothing but psql: the failed VALIDATE drops its NOT VALID
    constraint itself; the regenerated bundle is refused until the old one's rollback ran."""
    db = fresh_db_each
    project = _project(tmp_path, db)
    spec = project.root / "specs" / "V002_change.py"
    spec.write_text(case.failing)
    assert project.run("generate").returncode == 0
    (folder,) = project.generated.glob("V002__*")
    ran = tmp_path / "ran"
    shutil.copytree(folder, ran)                      # the bundle that ran, as version control keeps it

    proc = db.psql_file(_forward(ran), check=False)
    assert proc.returncode != 0
    assert "was dropped so it no longer rejects writes" in proc.stderr, proc.stderr
    assert "The way on" in proc.stderr
    assert _enforcing_leftovers(db) == []
    db.execute(case.app_insert)

    spec.write_text(case.fixed)
    assert project.run("generate").returncode == 0
    (new_folder,) = project.generated.glob("V002__*")
    refused = db.psql_file(_forward(new_folder), check=False)
    assert refused.returncode != 0 and "roll it back with the bundle that ran" in refused.stderr
    db.psql_file(next(ran.glob("V002__rollback_*.sql")))
    assert db.execute("SELECT status FROM migrations.migration_log WHERE version = '002'") == [("rolled_back",)]
    assert _v002_objects(db) == []
    db.psql_file(_forward(new_folder))
    assert db.execute("SELECT status FROM migrations.migration_log WHERE version = '002'") == [("completed",)]
    assert _enforcing_leftovers(db) == []
    assert project.run("verify", "--env", "test").returncode == 0


def test_unique_on_duplicates_builds_nothing_under_psql(fresh_db_each, tmp_path) -> None:
    db = fresh_db_each
    project = _project(tmp_path, db)
    (project.root / "specs" / "V002_change.py").write_text(CASES[3].failing)
    assert project.run("generate").returncode == 0
    (folder,) = project.generated.glob("V002__*")
    proc = db.psql_file(_forward(folder), check=False)
    assert proc.returncode != 0
    assert "9 key(s) appear more than once" in proc.stderr and "Nothing was built" in proc.stderr
    assert db.execute("SELECT to_regclass('shop.customers_email_key')") == [(None,)]
    db.execute(CASES[3].app_insert)


def test_executor_drops_the_invalid_index_a_failed_build_left(fresh_db_each, tmp_path) -> None:
    """A concurrent build that fails inside PostgreSQL (an index expression that divides by zero
    on one row) leaves an INVALID index; the executor drops it, the procedure still works."""
    db = fresh_db_each
    project = _project(tmp_path, db)
    db.execute("UPDATE shop.orders SET total = 5 WHERE id = 7")
    spec = project.root / "specs" / "V002_change.py"
    source = ('from dbdeploy import CreateIndex, Index, Migration\n'
              'migration = Migration(version="002", name="ratio", operations=[CreateIndex(table="shop.orders",'
              ' index=Index(columns=["(1 / (total - {}))"], name="orders_ratio_idx"))])\n')
    spec.write_text(source.format(5))
    assert project.run("generate").returncode == 0
    failed = project.run("apply", "--env", "test")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "dropped the INVALID index shop.orders_ratio_idx" in failed.stderr
    assert _enforcing_leftovers(db) == []
    spec.write_text(source.format(1000))
    assert project.run("generate").returncode == 0
    assert project.run("rollback", "--env", "test", "--to", "1").returncode == 0
    applied = project.run("apply", "--env", "test")
    assert applied.returncode == 0, applied.stderr
    assert db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'shop.orders_ratio_idx'::regclass") \
        == [(True,)]


def test_release_drops_a_unique_index_whose_constraint_was_never_added(fresh_db_each, tmp_path) -> None:
    """AddUnique's attach step failed (say, on a lock) after its index was built: that index
    enforces uniqueness like the constraint would. The executor's clean-up after a failure drops
    it (it owns it), and leaves alone a unique index it does not own."""
    from dbdeploy.executor.bundles import load_bundles
    from dbdeploy.executor.config import load_config
    from dbdeploy.executor.deploy import Deployment

    db = fresh_db_each
    project = _project(tmp_path, db)
    (project.root / "specs" / "V002_change.py").write_text(CASES[3].fixed)      # AddUnique on code
    assert project.run("generate").returncode == 0
    # the state a failed attach leaves: the index built and recorded as V002's, no constraint
    db.execute("CREATE UNIQUE INDEX customers_code_key ON shop.customers (code)")
    db.execute("CREATE UNIQUE INDEX customers_by_hand ON shop.customers (id, code)")
    db.execute("INSERT INTO migrations.migration_objects (version, object_type, object_name)"
               " VALUES ('002', 'index', 'shop.customers_code_key')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO shop.customers (id, code) VALUES (900002, 'c7')")
    config = load_config(project.root)
    env = config.environment("test")
    bundle = next(b for b in load_bundles(config.generated) if b.version == "002")
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        lines = Deployment(config=config, env=env, dsn=db.dsn)._release(conn, bundle)
    assert lines == ["dropped the unique index shop.customers_code_key whose constraint was never added (it would "
                     "keep enforcing uniqueness / costing writes)"]
    assert db.execute("SELECT to_regclass('shop.customers_code_key')") == [(None,)]
    assert db.execute("SELECT to_regclass('shop.customers_by_hand') IS NOT NULL") == [(True,)]
    assert _v002_objects(db) == []
    db.execute("INSERT INTO shop.customers (id, code) VALUES (900002, 'c7x')")
    db.execute("INSERT INTO shop.customers (id, code) VALUES (900003, 'c8')")   # duplicate code: legal again


def test_lock_timeout_on_validate_keeps_the_constraint_for_the_retry(fresh_db_each, tmp_path) -> None:
    """A VALIDATE that cannot get its lock is not a data error: the constraint stays for the
    executor's retry, and once the blocker is gone the version completes."""
    db = fresh_db_each
    project = _project(tmp_path, db)
    db.execute("UPDATE shop.orders SET total = 1 WHERE total < 0")
    (project.root / "specs" / "V002_change.py").write_text(CASES[0].failing)
    assert project.run("generate").returncode == 0
    # the NOT VALID constraint is already there (step 1 then takes no lock); only VALIDATE waits
    db.execute("ALTER TABLE shop.orders ADD CONSTRAINT orders_total_check CHECK (total >= 0) NOT VALID")
    blocker = db.connect(autocommit=False)
    blocker.execute("LOCK TABLE shop.orders IN SHARE UPDATE EXCLUSIVE MODE")
    try:
        (project.root / "dbdeploy.toml").write_text((project.root / "dbdeploy.toml").read_text()
                                                    + 'concurrent_lock_timeout = "200ms"\n')
        failed = project.run("apply", "--env", "test")
    finally:
        blocker.rollback()
        blocker.close()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "lock" in failed.stderr
    assert db.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_total_check'") == [(False,)]
    again = project.run("apply", "--env", "test")
    assert again.returncode == 0, again.stderr
    assert db.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_total_check'") == [(True,)]


# --- kind 14: baseline ----------------------------------------------------------------------

ADOPT_V001 = '''
from dbdeploy import Column, CreateSchema, CreateTable, Migration

migration = Migration(version="001", name="accounts", operations=[
    CreateSchema(name="app"),
    CreateTable(table="app.accounts", columns=[
        Column(name="id", type="bigint", nullable=False),
        Column(name="name", type="text", nullable=False),
    ], primary_key=["id"]),
])
'''

ADOPT_V002 = '''
from dbdeploy import AddColumn, Column, Migration, RawSQL

migration = Migration(version="002", name="profiles", operations=[
    AddColumn(table="app.accounts", column=Column(name="nickname", type="text")),
    AddColumn(table="app.accounts", column=Column(name="score", type="integer")),
    RawSQL(forward="CREATE OR REPLACE VIEW app.account_names AS SELECT id, name FROM app.accounts",
           rollback="DROP VIEW IF EXISTS app.account_names",
           verify="SELECT pg_catalog.to_regclass('app.account_names') IS NOT NULL"),
])
'''

HAND_MADE = [
    "CREATE SCHEMA app",
    "CREATE TABLE app.accounts (id bigint NOT NULL PRIMARY KEY, name text NOT NULL)",
    "INSERT INTO app.accounts SELECT g, 'account ' || g FROM generate_series(1, 1500) g",
    "CREATE VIEW app.account_names AS SELECT id, name FROM app.accounts",
]


def _adopt_project(tmp_path, db, *, with_columns: bool):
    for statement in HAND_MADE:
        db.execute(statement)
    if with_columns:
        db.execute("ALTER TABLE app.accounts ADD COLUMN nickname text, ADD COLUMN score integer")
        db.execute("UPDATE app.accounts SET nickname = 'n' || id, score = id % 7")
    specs = tmp_path / "specs"
    write_spec(specs, "V001_accounts.py", ADOPT_V001)
    write_spec(specs, "V002_profiles.py", ADOPT_V002)
    return make_project(tmp_path / "p", db.dsn, specs=specs)


def test_baseline_refuses_when_the_columns_do_not_exist(fresh_db_each, tmp_path) -> None:
    db = fresh_db_each
    project = _adopt_project(tmp_path, db, with_columns=False)
    refused = project.run("baseline", "--env", "test", "--version", "002")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "column app.accounts.nickname is missing" in refused.stderr
    assert "column app.accounts.score is missing" in refused.stderr
    assert "nothing was recorded" in refused.stderr and "Traceback" not in refused.stderr
    assert db.execute(LOG) == []

    partial = project.run("baseline", "--env", "test", "--version", "002", "--partial")
    assert partial.returncode == 0, partial.stdout + partial.stderr
    assert "recorded V001 as applied; not recorded: V002" in partial.stdout
    assert db.execute(LOG) == [("001", "baseline")]
    assert db.execute("SELECT count(*) FROM migrations.migration_objects") == [(0,)]

    # the rest is applied normally: V002 adds the columns (and owns only those)
    applied = project.run("apply", "--env", "test")
    assert applied.returncode == 0, applied.stderr
    assert db.execute("SELECT object_type, object_name FROM migrations.migration_objects ORDER BY 2") == [
        ("column", "app.accounts.nickname"), ("column", "app.accounts.score")]


def test_rollback_of_a_baselined_version_needs_explicit_flags(fresh_db_each, tmp_path) -> None:
    db = fresh_db_each
    project = _adopt_project(tmp_path, db, with_columns=True)
    baseline = project.run("baseline", "--env", "test", "--version", "002")
    assert baseline.returncode == 0, baseline.stdout + baseline.stderr
    assert db.execute(LOG) == [("001", "baseline"), ("002", "baseline")]
    # dbdeploy created nothing, so it claims nothing
    assert db.execute("SELECT count(*) FROM migrations.migration_objects") == [(0,)]
    rows = db.execute("SELECT count(*), count(nickname) FROM app.accounts")

    refused = project.run("rollback", "--env", "test", "--to", "0")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "V002, V001 were recorded by `dbdeploy baseline`" in refused.stderr
    assert "--include-baseline" in refused.stderr and "history forget" in refused.stderr
    assert db.execute(LOG) == [("001", "baseline"), ("002", "baseline")]

    raw = project.run("rollback", "--env", "test", "--to", "0", "--include-baseline")
    assert raw.returncode == 2, raw.stdout + raw.stderr
    assert "V002 was recorded by `dbdeploy baseline`" in raw.stderr and "RawSQL" in raw.stderr
    assert "--include-baseline-rawsql" in raw.stderr
    assert db.execute("SELECT to_regclass('app.account_names') IS NOT NULL") == [(True,)]
    assert db.execute(LOG) == [("001", "baseline"), ("002", "baseline")]

    # psql: the rollback file itself refuses before its first change
    (folder,) = project.generated.glob("V002__*")
    proc = db.psql_file(next(folder.glob("V002__rollback_*.sql")), check=False)
    assert proc.returncode != 0 and "recorded by `dbdeploy baseline`" in proc.stderr
    assert db.execute("SELECT to_regclass('app.account_names') IS NOT NULL") == [(True,)]
    assert db.execute(LOG) == [("001", "baseline"), ("002", "baseline")]

    # both flags: the RawSQL runs because it was named; the columns dbdeploy never added stay
    both = project.run("rollback", "--env", "test", "--to", "1", "--include-baseline", "--include-baseline-rawsql")
    assert both.returncode == 0, both.stdout + both.stderr
    assert db.execute("SELECT to_regclass('app.account_names')") == [(None,)]
    assert db.execute("SELECT count(*), count(nickname) FROM app.accounts") == rows
    assert db.execute(LOG) == [("001", "baseline"), ("002", "rolled_back")]


def test_history_forget_repairs_a_wrong_history(fresh_db_each, tmp_path) -> None:
    db = fresh_db_each
    project = _adopt_project(tmp_path, db, with_columns=True)
    assert project.run("baseline", "--env", "test", "--version", "002").returncode == 0
    # the history turns wrong: someone drops a column by hand (verify now fails)
    db.execute("ALTER TABLE app.accounts DROP COLUMN score")
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 1 and "score is missing" in verify.stdout + verify.stderr

    below = project.run("history", "forget", "--env", "test", "--version", "001")
    assert below.returncode == 2 and "V002 is recorded above V001" in below.stderr
    forgot = project.run("history", "forget", "--env", "test", "--version", "002")
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    assert "forgot V002 (was baseline)" in forgot.stdout
    assert db.execute(LOG) == [("001", "baseline")]
    event = db.execute("SELECT details->>'status' FROM migrations.migration_events WHERE event = 'forget'")
    assert event == [("baseline",)]

    applied = project.run("apply", "--env", "test")
    assert applied.returncode == 0, applied.stderr
    assert db.execute(LOG) == [("001", "baseline"), ("002", "completed")]
    # V002 added score (it owns it) but not nickname, which was there before
    assert db.execute("SELECT object_name FROM migrations.migration_objects ORDER BY 1") == [
        ("app.accounts.score",)]
    assert project.run("verify", "--env", "test").returncode == 0
    completed = project.run("history", "forget", "--env", "test", "--version", "002")
    assert completed.returncode == 2 and "roll it back instead" in completed.stderr


def test_history_forget_on_a_protected_environment_needs_yes(fresh_db_each, tmp_path) -> None:
    db = fresh_db_each
    project = _adopt_project(tmp_path, db, with_columns=True)
    toml = project.root / "dbdeploy.toml"
    toml.write_text(toml.read_text().replace("[environments.test]", "[environments.test]\nprotected = true"))
    assert project.run("baseline", "--env", "test", "--version", "002", "--yes").returncode == 0
    refused = project.run("history", "forget", "--env", "test", "--version", "002")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert db.execute(LOG) == [("001", "baseline"), ("002", "baseline")]
    assert project.run("history", "forget", "--env", "test", "--version", "002", "--yes").returncode == 0
    assert db.execute(LOG) == [("001", "baseline")]


def test_refused_baseline_changes_nothing(fresh_db_each, tmp_path) -> None:
    """A refused baseline changes nothing in the application schema or the log."""
    db = fresh_db_each
    project = _adopt_project(tmp_path, db, with_columns=False)
    with psycopg.connect(db.dsn) as conn:
        before = conn.execute("SELECT count(*) FROM app.accounts").fetchone()
    assert project.run("baseline", "--env", "test", "--version", "002").returncode == 3
    assert db.execute("SELECT count(*) FROM app.accounts")[0] == before
    assert db.execute("SELECT count(*) FROM migrations.migration_events WHERE event = 'baseline'") == [(0,)]
