"""Issue 10, item 3: a backfill key is proven unique and NOT NULL, or the backfill is refused.

The issue's input: ``Backfill(table="shop.orders", key=["customer_id"])`` on a column shared by 60
orders of each customer rewrote the same rows over and over, and its rollback wrote one saved value
into all 60 rows; a nullable key skipped the NULL-key rows and reported completion.

The rule (README, "Backfill"): every key column is NOT NULL, and a valid, non-partial unique index on
plain columns (a primary key, a unique constraint's index or a plain unique index) has all its key
columns among the backfill's key columns, in any order — a unique index on a subset of the key proves
the whole key unique, one with a column outside the key proves nothing. Where it is checked:

- at ``generate`` (exit 2, the spec file, ``key``, the fix) when the specs created the table and no
  RawSQL may have changed it;
- always in the backfill's first step, before any UPDATE, from the catalog (``pg_index``,
  ``pg_attribute``) — under ``dbdeploy apply`` and under ``psql -f`` alike;
- in the rollback's preflight, before the restore puts saved values back by key.

A refusal at apply changes nothing: the rows are identical before and after; ``dbdeploy apply``
records the version ``failed`` (with the reason in its event), psql leaves it ``running`` (the
bundle's preamble recorded it and psql stops at the error) — both are re-run after the fix, and the
re-run then completes. Every database test runs on both servers (``fresh_db_each``; the default suite
on the primary one only, see PRIMARY_SERVER_ONLY_UNLESS_FULL) with 1,200 rows
(20 customers with 60 orders each).
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from dbdeploy.errors import SpecError
from dbdeploy.render.writer import build_bundles
from tests.executor_support import Project, write_spec
from tests.pg import PgServer, TestDatabase, temporary_database
from tests.roundtrip import backup_tables, log_status

# Fast form in the default suite: every 3rd test plus CI_KEEP (the issue's inputs);
# DBDEPLOY_FULL=1 runs every test (tests/conftest.py, README "Testing").
CI_FAST_FORM = 3
CI_KEEP = (
    "test_generate_refuses_the_issues_non_unique_key",
    "test_table_made_by_raw_sql_is_checked_at_apply",
    "test_a_not_valid_not_null_constraint_does_not_prove_the_key",
)

# The key rule is read from the catalog the same way on every version: the default suite runs this
# module on the primary server, DBDEPLOY_FULL=1 on every server (tests/conftest.py).
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

CUSTOMERS, PER_CUSTOMER = 20, 60
ROWS = CUSTOMERS * PER_CUSTOMER

# shop.orders as the application made it (not by the specs): 20 customers x 60 orders.
ORDERS_SQL = f"""
CREATE SCHEMA shop;
CREATE TABLE shop.orders (
    id bigint NOT NULL,
    customer_id bigint NOT NULL,
    line_no integer NOT NULL,
    status text NOT NULL,
    total numeric(12,2) NOT NULL,
    code text,
    region text
);
INSERT INTO shop.orders (id, customer_id, line_no, status, total, code, region)
SELECT g, 1 + (g - 1) / {PER_CUSTOMER}, 1 + (g - 1) % {PER_CUSTOMER},
       CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'new' END, (g % 97) * 1.25,
       CASE WHEN g % 10 = 0 THEN NULL ELSE 'C' || g END, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END
FROM generate_series(1, {ROWS}) g;
"""

BACKFILL_SPEC = '''
from dbdeploy import Backfill, Migration

migration = Migration(
    version="{version}",
    name="grow_totals",
    description="Every order total grows by one (not idempotent: a row done twice shows).",
    operations=[
        Backfill(table="shop.orders", set={{"total": "total + 1"}}, key={key!r}, batch_size={batch}),
    ],
)
'''


# --- helpers --------------------------------------------------------------------------------

def _project(tmp_path: Path, db: TestDatabase | None, specs: dict[str, str]) -> Project:
    """A project with ``specs`` (file name → source), not generated yet."""
    root = tmp_path / "project"
    for filename, text in specs.items():
        write_spec(root / "specs", filename, textwrap.dedent(text))
    config = [] if db is None else ["[environments.test]", f"dsn = {json.dumps(db.dsn)}", 'lock_timeout = "2s"',
                                    "retries = 1", ""]
    (root / "dbdeploy.toml").write_text("\n".join(config))
    return Project(root)


def _generated(project: Project) -> Project:
    result = project.run("generate")
    assert result.returncode == 0, result.stdout + result.stderr
    return project


def _backfill_project(tmp_path: Path, db: TestDatabase, key: list[str], batch: int = 50) -> Project:
    return _generated(_project(tmp_path, db, {"V001_grow_totals.py": BACKFILL_SPEC.format(
        version="001", key=key, batch=batch)}))


def _forward(project: Project, version: str) -> Path:
    folder = next(project.generated.glob(f"V{version}__*"))
    return next(p for p in folder.glob(f"V{version}__*.sql") if "__rollback_" not in p.name)


def _rollback(project: Project, version: str) -> Path:
    return next(project.generated.glob(f"V{version}__*/V{version}__rollback_*.sql"))


def _rows(db: TestDatabase) -> list[tuple]:
    return db.execute("SELECT id, customer_id, line_no, status, total::text, code, region FROM shop.orders"
                      " ORDER BY id, customer_id, line_no")


def _status(db: TestDatabase, version: str = "001") -> str | None:
    with db.connect() as conn:
        return log_status(conn, version)


def _backups(db: TestDatabase) -> list[str]:
    with db.connect() as conn:
        return backup_tables(conn)


def _checklist_says_proven(db: TestDatabase, project: Project) -> bool:
    """Run the checklist's pre-deployment query for the backfill key and return its answer."""
    text = next(project.generated.glob("V001__*/deployment_checklist.md")).read_text()
    match = re.search(r"\*\*The backfill key \(.*?\*\*\s*```sql\n(.*?)```", text, re.S)
    assert match, "the checklist has no backfill key query"
    return db.execute(textwrap.dedent(match.group(1)))[0][0]


def _assert_apply_refused(db: TestDatabase, project: Project, *fragments: str) -> None:
    """``dbdeploy apply`` and then the forward file under psql both stop before the first UPDATE,
    naming the reason; the rows are exactly as before, no backup or cursor table exists."""
    before = _rows(db)
    assert _checklist_says_proven(db, project) is False
    result = project.run("apply", "--env", "test")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    assert "cannot batch by key" in output, output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in dbdeploy apply's output:\n{output}"
    assert _rows(db) == before
    assert _status(db) == "failed"
    error = db.execute("SELECT error FROM migrations.migration_events WHERE version = '001'"
                       " ORDER BY id DESC LIMIT 1")[0][0]
    assert "cannot batch by key" in error, error
    assert _backups(db) == []

    proc = db.psql_file(_forward(project, "001"), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "cannot batch by key" in output, output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in psql's output:\n{output}"
    assert _rows(db) == before
    assert _status(db) == "running"
    assert _backups(db) == []


def _assert_applies_once(db: TestDatabase, project: Project, how: str) -> None:
    """The backfill completes and every row's total grew by exactly one."""
    before = {r[0]: r for r in db.execute("SELECT id, total FROM shop.orders")}
    assert _checklist_says_proven(db, project) is True
    if how == "executor":
        result = project.run("apply", "--env", "test")
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        proc = db.psql_file(_forward(project, "001"), check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    after = {r[0]: r for r in db.execute("SELECT id, total FROM shop.orders")}
    assert after.keys() == before.keys()
    assert all(after[i][1] == before[i][1] + 1 for i in before)
    assert _status(db) == "completed"


# --- the issue's input and the refusal at generate ----------------------------------------

SPEC_TABLE = '''
from dbdeploy import Column, CreateSchema, CreateTable, Index, Migration, Unique

migration = Migration(
    version="001",
    name="shop",
    description="Orders.",
    operations=[
        CreateSchema(name="shop"),
        CreateTable(table="shop.orders", columns=[
            Column(name="id", type="bigint", identity=True),
            Column(name="customer_id", type="bigint", nullable=False),
            Column(name="line_no", type="integer", nullable=False),
            Column(name="status", type="text", nullable=False),
            Column(name="total", type="numeric(12,2)", nullable=False),
            Column(name="code", type="text"),
            Column(name="region", type="text")],
            primary_key=["id"],
            uniques=[Unique(columns=["code"])],
            indexes=[Index(columns=["customer_id", "status"], unique=True, name="orders_cust_status_key"),
                     Index(columns=["line_no"], unique=True, where="status = 'paid'", name="orders_paid_line_key"),
                     Index(columns=["lower(status)"], unique=True, name="orders_lower_status_key"),
                     Index(columns=["customer_id", "line_no"], unique=True, name="orders_cust_line_key")]),
    ],
)
'''

LATER = '''
from dbdeploy import (AddColumn, AddUnique, Backfill, Column, CreateIndex, DropColumn, DropIndex, Index, Migration,
                      RawSQL, Unique)

migration = Migration(
    version="002",
    name="later",
    description="Later changes.",
    operations=[{ops}],
)
'''


def test_generate_refuses_the_issues_non_unique_key(tmp_path: Path) -> None:
    """The issue's input on a table the specs created: exit 2, one message naming the spec file, the
    key and the fix (the primary key); nothing is generated."""
    project = _project(tmp_path, None, {
        "V001_shop.py": SPEC_TABLE,
        "V002_later.py": LATER.format(ops='Backfill(table="shop.orders", set={"total": "total + 1"}, '
                                          'key=["customer_id"])')})
    result = project.run("generate")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    assert "V002_later.py" in output and "operations[0] (backfill shop.orders)" in output, output
    assert "key=[customer_id] is not a key of shop.orders" in output, output
    assert "several rows may share a key" in output, output
    assert "fix: use key=['id'] (the primary key)" in output, output
    assert not project.generated.exists() or not list(project.generated.glob("V002__*")), output


def _plan_error(tmp_path: Path, ops: str) -> str | None:
    """The spec error `generate` gives for V002's ``ops`` after SPEC_TABLE, or None when it plans."""
    specs = tmp_path / "specs"
    write_spec(specs, "V001_shop.py", textwrap.dedent(SPEC_TABLE))
    write_spec(specs, "V002_later.py", textwrap.dedent(LATER.format(ops=ops)))
    try:
        build_bundles(specs)
    except SpecError as exc:
        assert exc.file and exc.file.endswith("V002_later.py")
        return str(exc)
    return None


FILL = 'Backfill(table="shop.orders", set={{"total": "total + 1"}}, key={key})'


@pytest.mark.parametrize("ops, refusal", [
    pytest.param(FILL.format(key='["customer_id"]'), "several rows may share a key", id="issue-non-unique"),
    pytest.param(FILL.format(key='["code"]'), "column(s) code allow NULL", id="nullable-unique-constraint"),
    pytest.param(FILL.format(key='["region", "id"]'), "column(s) region allow NULL", id="nullable-column-in-key"),
    pytest.param(FILL.format(key='["line_no"]'), "several rows may share a key", id="partial-unique-index"),
    pytest.param(FILL.format(key='["status"]'), "several rows may share a key", id="expression-unique-index"),
    pytest.param(FILL.format(key='["customer_id"]'), "several rows may share a key", id="superset-unique-index"),
    pytest.param('DropIndex(name="shop.orders_cust_line_key"), ' + FILL.format(key='["customer_id", "line_no"]'),
                 "several rows may share a key", id="unique-index-dropped-earlier"),
    pytest.param(FILL.format(key='["id"]').replace('"total"', '"id"').replace("total + 1", "id + 1"),
                 "cannot change its own key column(s) id", id="key-column-set"),
    pytest.param('Backfill(table="shop.orders", set={"id": "id + 1"})',
                 "cannot change its own key column(s) id", id="default-key-column-set"),
    pytest.param(FILL.format(key='["line_no", "customer_id"]'), None, id="composite-unique-other-order"),
    pytest.param(FILL.format(key='["customer_id", "status", "line_no"]'), None, id="unique-subset-not-null"),
    pytest.param(FILL.format(key='["id", "status"]'), None, id="primary-key-subset"),
    pytest.param('Backfill(table="shop.orders", set={"total": "total + 1"})', None, id="default-primary-key"),
    pytest.param('CreateIndex(table="shop.orders", index=Index(columns=["status", "line_no", "customer_id"], '
                 'unique=True)), ' + FILL.format(key='["customer_id", "line_no", "status"]'), None,
                 id="unique-index-created-earlier"),
    pytest.param('AddUnique(table="shop.orders", unique=Unique(columns=["total", "status"])), '
                 + FILL.format(key='["status", "total"]').replace('"total": "total + 1"', '"region": "\'eu\'"'),
                 None, id="unique-constraint-added-earlier"),
    pytest.param('AddColumn(table="shop.orders", column=Column(name="public_id", type="uuid", nullable=False, '
                 'default="gen_random_uuid()")), CreateIndex(table="shop.orders", index=Index(columns=["public_id"], '
                 'unique=True)), ' + FILL.format(key='["public_id"]'), None, id="not-null-column-added-earlier"),
    pytest.param('AddColumn(table="shop.orders", column=Column(name="public_id", type="uuid", '
                 'default="gen_random_uuid()")), CreateIndex(table="shop.orders", index=Index(columns=["public_id"], '
                 'unique=True)), ' + FILL.format(key='["public_id"]'), "column(s) public_id allow NULL",
                 id="nullable-column-added-earlier"),
    pytest.param('DropColumn(table="shop.orders", column="line_no"), ' + FILL.format(key='["customer_id", "status"]'),
                 None, id="drop-column-keeps-other-unique"),
    # RawSQL may have made the key unique: generate cannot know, the backfill's first step checks.
    pytest.param('RawSQL(forward="CREATE UNIQUE INDEX orders_cust_only ON shop.orders (customer_id)", '
                 'rollback="DROP INDEX shop.orders_cust_only"), ' + FILL.format(key='["customer_id"]'), None,
                 id="raw-sql-defers-to-apply"),
])
def test_generate_proves_the_key_from_the_specs(tmp_path: Path, ops: str, refusal: str | None) -> None:
    error = _plan_error(tmp_path, ops)
    if refusal is None:
        assert error is None, error
    else:
        assert error is not None and refusal in error, error
        assert "operations[" in error and "fix:" in error, error


# --- the check at apply: tables the specs do not know ----------------------------------------

@pytest.mark.parametrize("setup, key, fragments", [
    pytest.param("", ["customer_id"], ["several rows may share a key", "keys of shop.orders that qualify: none"],
                 id="issue-non-unique"),
    pytest.param("ALTER TABLE shop.orders ADD PRIMARY KEY (id);", ["customer_id"],
                 ["several rows may share a key", "keys of shop.orders that qualify: (id)"], id="non-unique-with-pk"),
    pytest.param("CREATE UNIQUE INDEX ON shop.orders (code);", ["code"], ["column(s) code allow NULL"],
                 id="nullable-unique"),
    pytest.param("CREATE UNIQUE INDEX ON shop.orders (customer_id) WHERE status = 'paid' AND line_no = 3;",
                 ["customer_id"], ["several rows may share a key"], id="partial-unique-index"),
    pytest.param("CREATE UNIQUE INDEX ON shop.orders ((customer_id * 1000 + line_no));", ["customer_id", "line_no"],
                 ["several rows may share a key"], id="expression-unique-index"),
    pytest.param("CREATE UNIQUE INDEX ON shop.orders (customer_id, line_no);", ["customer_id"],
                 ["several rows may share a key", "keys of shop.orders that qualify: (customer_id, line_no)"],
                 id="superset-unique-index"),
    pytest.param("CREATE UNIQUE INDEX ON shop.orders (id) INCLUDE (customer_id);", ["customer_id"],
                 ["several rows may share a key"], id="include-column-is-not-a-key-column"),
    pytest.param("CREATE UNIQUE INDEX ON shop.orders (status COLLATE \"C\", id);", ["status", "id"],
                 ["several rows may share a key"], id="other-collation"),
    pytest.param("CREATE TABLE shop.orders_archive () INHERITS (shop.orders);"
                 " ALTER TABLE shop.orders ADD PRIMARY KEY (id);", ["id"],
                 ["inheritance child tables"], id="inheritance-children"),
])
def test_apply_refuses_a_key_the_catalog_does_not_prove(fresh_db_each: TestDatabase, tmp_path: Path, setup: str,
                                                        key: list[str], fragments: list[str]) -> None:
    db = fresh_db_each
    db.execute(ORDERS_SQL + setup)
    project = _backfill_project(tmp_path, db, key)
    _assert_apply_refused(db, project, *fragments)


def test_a_not_valid_not_null_constraint_does_not_prove_the_key(pg_servers: list[PgServer],
                                                                tmp_path: Path) -> None:
    """PostgreSQL 18's ``NOT NULL … NOT VALID`` sets ``pg_attribute.attnotnull`` while old rows may
    still be NULL (120 of the 1,200 codes are): the key is refused until the constraint is validated.
    Runs on every server of 18 or later in the default suite (earlier ones lack the syntax)."""
    servers = [s for s in pg_servers if s.major >= 18]
    if not servers:
        pytest.skip("no PostgreSQL 18 or later in this session")
    for number, server in enumerate(servers):
        with temporary_database(server) as db:
            db.execute(ORDERS_SQL + "CREATE UNIQUE INDEX ON shop.orders (code);"
                       " ALTER TABLE shop.orders ADD CONSTRAINT orders_code_nn NOT NULL code NOT VALID;")
            assert db.execute("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'shop.orders'::regclass"
                              " AND attname = 'code'") == [(True,)]
            project = _backfill_project(tmp_path / str(number), db, ["code"])
            _assert_apply_refused(db, project, "column(s) code allow NULL", "keys of shop.orders that qualify: none")


def test_an_invalid_index_left_by_a_failed_concurrent_build_does_not_count(fresh_db_each: TestDatabase,
                                                                           tmp_path: Path) -> None:
    db = fresh_db_each
    db.execute(ORDERS_SQL)
    with pytest.raises(Exception, match="could not create unique index"):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY orders_customer_key ON shop.orders (customer_id)")
    assert db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'shop.orders_customer_key'::regclass"
                      ) == [(False,)]
    project = _backfill_project(tmp_path, db, ["customer_id"])
    _assert_apply_refused(db, project, "several rows may share a key")


def test_the_refused_backfill_runs_once_the_key_is_proven(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """After the refusal (failed under the executor, running under psql) the fix — a unique index
    on the key and NOT NULL — lets the same bundle complete, each row done exactly once."""
    db = fresh_db_each
    db.execute(ORDERS_SQL)
    project = _backfill_project(tmp_path, db, ["customer_id", "line_no"], batch=7)
    _assert_apply_refused(db, project, "several rows may share a key")
    db.execute("CREATE UNIQUE INDEX orders_cust_line ON shop.orders (line_no, customer_id)")
    _assert_applies_once(db, project, "executor")


@pytest.mark.parametrize("how", ["executor", "psql"])
@pytest.mark.parametrize("setup, key", [
    pytest.param("ALTER TABLE shop.orders ADD PRIMARY KEY (id);", ["id"], id="primary-key"),
    pytest.param("CREATE UNIQUE INDEX ON shop.orders (line_no, customer_id);", ["customer_id", "line_no"],
                 id="composite-unique-other-order"),
    pytest.param("ALTER TABLE shop.orders ADD CONSTRAINT orders_cust_line UNIQUE (customer_id, line_no);",
                 ["customer_id", "line_no", "status"], id="unique-subset-not-null"),
    pytest.param("CREATE UNIQUE INDEX ON shop.orders (id DESC) INCLUDE (total);", ["id"], id="include-and-desc"),
])
def test_apply_accepts_a_proven_key(fresh_db_each: TestDatabase, tmp_path: Path, setup: str, key: list[str],
                                    how: str) -> None:
    db = fresh_db_each
    db.execute(ORDERS_SQL + setup)
    project = _backfill_project(tmp_path, db, key, batch=45)
    _assert_applies_once(db, project, how)


def test_table_made_by_raw_sql_is_checked_at_apply(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """generate cannot know what RawSQL made; the backfill's first step refuses."""
    db = fresh_db_each
    raw = ORDERS_SQL.replace('"', '\\"')
    spec = f'''
from dbdeploy import Backfill, Migration, RawSQL

migration = Migration(
    version="001",
    name="orders",
    description="Orders made by raw SQL, then a backfill by customer.",
    operations=[
        RawSQL(forward="""{raw}""", rollback="DROP SCHEMA shop CASCADE"),
        Backfill(table="shop.orders", set={{"total": "total + 1"}}, key=["customer_id"], batch_size=50),
    ],
)
'''
    project = _generated(_project(tmp_path, db, {"V001_orders.py": spec}))
    result = project.run("apply", "--env", "test")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "cannot batch by key (customer_id)" in output and "several rows may share a key" in output, output
    assert _status(db) == "failed"
    # The table RawSQL made is there with its rows as inserted: no batch ran.
    assert db.execute("SELECT count(*), sum(total)::text FROM shop.orders") == db.execute(
        f"SELECT {ROWS}::bigint, sum((g % 97) * 1.25)::numeric(12,2)::text FROM generate_series(1, {ROWS}) g")


# --- proven at generate, changed before apply or before rollback -------------------------------

PROVEN_SPEC = '''
from dbdeploy import Backfill, Column, CreateSchema, CreateTable, Index, Migration

migration = Migration(
    version="{version}",
    name="{name}",
    description="Orders keyed by code.",
    operations=[{ops}],
)
'''
PROVEN_TABLE = ('CreateSchema(name="shop"), CreateTable(table="shop.orders", columns=['
                'Column(name="code", type="text", nullable=False), Column(name="customer_id", type="bigint", '
                'nullable=False), Column(name="total", type="numeric(12,2)", nullable=False)], '
                'indexes=[Index(columns=["code"], unique=True, name="orders_code_key")])')
PROVEN_FILL = 'Backfill(table="shop.orders", set={"total": "total * 2"}, key=["code"], batch_size=64)'


def _proven_project(tmp_path: Path, db: TestDatabase) -> Project:
    return _generated(_project(tmp_path, db, {
        "V001_orders.py": PROVEN_SPEC.format(version="001", name="orders", ops=PROVEN_TABLE),
        "V002_double.py": PROVEN_SPEC.format(version="002", name="double", ops=PROVEN_FILL)}))


def _populate_codes(db: TestDatabase) -> None:
    db.execute(f"INSERT INTO shop.orders (code, customer_id, total) SELECT 'C' || g, 1 + (g - 1) / {PER_CUSTOMER},"
               f" (g % 97) * 1.25 FROM generate_series(1, {ROWS}) g")


def _codes(db: TestDatabase) -> list[tuple]:
    return db.execute("SELECT code, customer_id, total::text FROM shop.orders ORDER BY code, total")


def test_index_dropped_between_generate_and_apply_is_refused(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    project = _proven_project(tmp_path, db)
    result = project.run("apply", "--env", "test", "--to", "001")
    assert result.returncode == 0, result.stdout + result.stderr
    _populate_codes(db)
    db.execute("DROP INDEX shop.orders_code_key")
    before = _codes(db)
    result = project.run("apply", "--env", "test")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "cannot batch by key (code)" in output and "several rows may share a key" in output, output
    assert _codes(db) == before
    assert _status(db, "002") == "failed"


def test_rollback_refuses_once_the_key_stopped_being_unique(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """The backfill ran with a proven key; then the unique index was dropped and a second row took an
    existing code. The restore would write that code's saved value into both rows: the rollback
    refuses before any change (executor and psql) until the key is unique again, then restores."""
    db = fresh_db_each
    project = _proven_project(tmp_path, db)
    result = project.run("apply", "--env", "test", "--to", "001")
    assert result.returncode == 0, result.stdout + result.stderr
    _populate_codes(db)
    original = _codes(db)
    result = project.run("apply", "--env", "test")
    assert result.returncode == 0, result.stdout + result.stderr
    db.execute("DROP INDEX shop.orders_code_key")
    db.execute("INSERT INTO shop.orders (code, customer_id, total) VALUES ('C7', 999, 1.00)")
    before, backups = _codes(db), _backups(db)

    result = project.run("rollback", "--env", "test", "--to", "001")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "rollback refused before any change" in output, output
    assert "cannot restore the values the backfill of shop.orders overwrote by key (code)" in output, output
    assert _codes(db) == before and _backups(db) == backups
    assert _status(db, "002") == "completed"

    proc = db.psql_file(_rollback(project, "002"), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "rollback refused before any change" in output and "several rows may share a key" in output, output
    assert _codes(db) == before and _backups(db) == backups
    assert _status(db, "002") == "completed"

    # The fix: the extra row goes, the key is unique again; the rollback restores every value.
    db.execute("DELETE FROM shop.orders WHERE customer_id = 999")
    db.execute("CREATE UNIQUE INDEX orders_code_key ON shop.orders (code)")
    result = project.run("rollback", "--env", "test", "--to", "001")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _codes(db) == original


def test_rollback_refuses_once_a_key_column_allows_null(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    project = _proven_project(tmp_path, db)
    assert project.run("apply", "--env", "test", "--to", "001").returncode == 0
    _populate_codes(db)
    assert project.run("apply", "--env", "test").returncode == 0
    db.execute("ALTER TABLE shop.orders ALTER COLUMN code DROP NOT NULL")
    before = _codes(db)
    proc = db.psql_file(_rollback(project, "002"), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "column(s) code allow NULL" in output, output
    assert _codes(db) == before
    assert _status(db, "002") == "completed"


# --- the same kind in SeedRows: a NULL conflict key ----------------------------------------------

SEED_SPEC = '''
from dbdeploy import Column, CreateSchema, CreateTable, Migration, SeedRows, Unique

migration = Migration(
    version="001",
    name="statuses",
    description="Order statuses.",
    operations=[
        CreateSchema(name="shop"),
        CreateTable(table="shop.statuses", columns=[
            Column(name="code", type="text"), Column(name="label", type="text", nullable=False)],
            uniques=[Unique(columns=["code"])]),
        SeedRows(table="shop.statuses", conflict_columns=["code"], rows=[
            {"code": "new", "label": "New"}, {"code": "paid", "label": "Paid"}, {"code": None, "label": "Unknown"}]),
    ],
)
'''


def test_seed_rows_with_a_null_conflict_key_are_refused_at_generate(tmp_path: Path) -> None:
    """A NULL key never conflicts (a re-run inserts the row again) and never equals the recorded key
    (the rollback would report the row as already gone and leave it): refused at generate."""
    project = _project(tmp_path, None, {"V001_statuses.py": SEED_SPEC})
    result = project.run("generate")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    assert "V001_statuses.py" in output and "rows[2] has None (NULL) for conflict column code" in output, output
    assert "fix: give every row a non-NULL value for each conflict column" in output, output
    assert not project.generated.exists() or not list(project.generated.glob("V001__*")), output


def test_rollback_rebuilds_an_index_a_later_operation_dropped_before_restoring(fresh_db_each: TestDatabase,
                                                                               tmp_path: Path) -> None:
    """V002 backfills by code, then drops code's unique index. The rollback runs newest first: the
    index is rebuilt, then the restore checks the key and writes; the preflight must not refuse on
    the index the rollback itself rebuilds."""
    db = fresh_db_each
    ops = PROVEN_FILL + ', DropIndex(name="shop.orders_code_key")'
    project = _generated(_project(tmp_path, db, {
        "V001_orders.py": PROVEN_SPEC.format(version="001", name="orders", ops=PROVEN_TABLE),
        "V002_double.py": PROVEN_SPEC.replace("Index, Migration", "DropIndex, Index, Migration").format(
            version="002", name="double", ops=ops)}))
    assert project.run("apply", "--env", "test", "--to", "001").returncode == 0
    _populate_codes(db)
    original = _codes(db)
    result = project.run("apply", "--env", "test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert db.execute("SELECT to_regclass('shop.orders_code_key') IS NULL") == [(True,)]
    assert _codes(db) != original

    result = project.run("rollback", "--env", "test", "--to", "001")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _codes(db) == original
    assert db.execute("SELECT indisunique AND indisvalid FROM pg_index"
                      " WHERE indexrelid = 'shop.orders_code_key'::regclass") == [(True,)]


def test_restore_step_checks_the_key_when_the_preflight_cannot(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """A later RawSQL of the migration could rebuild what the key needs, so the preflight leaves the
    check to the restore step: it refuses right before writing, and no saved value is written."""
    db = fresh_db_each
    ops = PROVEN_FILL + ', RawSQL(forward="CREATE TABLE shop.notes (id int)", rollback="DROP TABLE shop.notes")'
    project = _generated(_project(tmp_path, db, {
        "V001_orders.py": PROVEN_SPEC.format(version="001", name="orders", ops=PROVEN_TABLE),
        "V002_double.py": PROVEN_SPEC.replace("Index, Migration", "Index, Migration, RawSQL").format(
            version="002", name="double", ops=ops)}))
    assert project.run("apply", "--env", "test", "--to", "001").returncode == 0
    _populate_codes(db)
    assert project.run("apply", "--env", "test").returncode == 0
    db.execute("DROP INDEX shop.orders_code_key")
    db.execute("INSERT INTO shop.orders (code, customer_id, total) VALUES ('C7', 999, 1.00)")
    before = _codes(db)

    proc = db.psql_file(_rollback(project, "002"), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "cannot restore the values the backfill of shop.orders overwrote by key (code)" in output, output
    assert "refused before any change" not in output, output
    assert _codes(db) == before
    assert "v002_op1_orders" in _backups(db)
