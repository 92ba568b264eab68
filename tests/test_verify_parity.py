"""``dbdeploy verify`` and the generated tests check the same things (issue 11, item 4).

Two bundles cover every expectation kind a spec makes (schema, table, column with type, default
and identity, primary key, unique, CHECK, foreign key, index, seed rows, backfill, RawSQL verify
query). Each case applies them with the real CLI to a fresh database (TEMPLATE template0) holding
customers' rows, injects one drift by hand, and asserts that ``dbdeploy verify`` exits 1 naming
it AND that the generated test files fail naming it; undrifted, both pass. A manifest holding an
expectation kind nobody knows makes verify exit 3 naming the kind, and the generated test error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dbdeploy.bundle import catalog_checks, expectations
from tests.executor_support import make_project, write_spec

# The suite checks every second drift (and every other test of the module); DBDEPLOY_FULL=1 checks them all
# (tests/conftest.py, README "Testing").
CI_FAST_FORM = 2
CI_KEEP = ("test_undrifted_both_pass", "test_an_unknown_kind_errors_in_verify_and_in_the_generated_test",
           "test_every_kind_has_one_check", "test_the_expectation_and_check_modules_load_no_parser_and_no_models",
           "test_a_copy_seed_value_changed_fails_both")

V030 = '''
from dbdeploy import (Check, Column, CreatePartition, CreateSchema, CreateTable, ForeignKey, Index, Migration, RawSQL,
                      SeedRows, Unique)

migration = Migration(version="030", name="crm", operations=[
    CreateSchema(name="crm"),
    CreateTable(table="crm.tiers", columns=[Column(name="id", type="integer"),
                                            Column(name="label", type="text", nullable=False),
                                            Column(name="discount", type="numeric(5,2)", default="0")],
                primary_key=["id"]),
    SeedRows(table="crm.tiers", conflict_columns=["id"],
             rows=[{"id": 1, "label": "Basic", "discount": "0.00"}, {"id": 2, "label": "Gold", "discount": "12.50"}]),
    CreateTable(
        table="crm.customers",
        columns=[
            Column(name="id", type="bigint", identity=True),
            Column(name="email", type="varchar(120)", nullable=False),
            Column(name="status", type="text", nullable=False, default="'active'"),
            Column(name="tier_id", type="integer"),
            Column(name="signed_up", type="date", default="CURRENT_DATE"),
        ],
        primary_key=["id"],
        uniques=[Unique(name="uq_customers_email", columns=["email"])],
        checks=[Check(name="chk_customers_status", expression="status IN ('active', 'closed')")],
        foreign_keys=[ForeignKey(name="fk_customers_tier", columns=["tier_id"], references="crm.tiers",
                                 ref_columns=["id"])],
        indexes=[Index(name="idx_customers_tier", columns=["tier_id"])],
    ),
    RawSQL(forward="COMMENT ON TABLE crm.customers IS 'people who buy';",
           rollback="COMMENT ON TABLE crm.customers IS NULL;",
           verify="SELECT pg_catalog.obj_description('crm.customers'::regclass, 'pg_class') = 'people who buy'"),
    # a range-partitioned table and one partition (CreateTable(partition_by), CreatePartition)
    CreateTable(table="crm.visits", columns=[Column(name="id", type="bigint", nullable=False),
                                             Column(name="day", type="date", nullable=False)],
                primary_key=["id", "day"], partition_by="RANGE (day)"),
    CreatePartition(parent="crm.visits", table="crm.visits_2026",
                    bounds="FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"),
    # a table the specs do not know (made by hand): V031 changes its nullability and default
    RawSQL(forward="CREATE TABLE IF NOT EXISTS crm.notes (id integer PRIMARY KEY, body text, kind text DEFAULT 'm');",
           rollback="DROP TABLE IF EXISTS crm.notes;"),
])
'''

V031 = '''
from dbdeploy import AddColumn, Backfill, Column, CreateIndex, Index, Migration, SetDefault, SetNotNull
from dbdeploy import CreateView
from dbdeploy import CreateCompositeType, CreateDomain, CreateEnum
from dbdeploy import CommentOn, CreateSequence, SetSequenceValue
from dbdeploy import CreateFunction, CreateTrigger

migration = Migration(version="031", name="crm_scores", operations=[
    AddColumn(table="crm.customers", column=Column(name="score", type="integer")),
    Backfill(table="crm.customers", set={"score": "10"}, where="score IS NULL"),
    CreateIndex(table="crm.customers", index=Index(name="idx_customers_status_score", columns=["status", "score"],
                                                   where="status = 'active'")),
    SetNotNull(table="crm.notes", column="body"),
    SetDefault(table="crm.notes", column="kind", default="'note'"),
    CreateView(name="crm.discounted_tiers", query="SELECT t.id, t.label FROM crm.tiers AS t WHERE t.discount > 0"),
    CreateEnum(name="crm.tier_level", values=["bronze", "silver", "gold"]),
    CreateDomain(name="crm.percent", type="numeric(5,2)", checks=["VALUE BETWEEN 0 AND 100"], default="0"),
    CreateCompositeType(name="crm.contact_point", attributes=[Column(name="kind", type="text"),
                                                              Column(name="address", type="text")]),
    CommentOn(object_kind="COLUMN", name="crm.customers.email", comment="Where we write to"),
    CreateSequence(name="crm.note_numbers", as_type="integer", start=100, owned_by="crm.notes.id"),
    SetSequenceValue(name="crm.note_numbers", value=500),
    CreateFunction(name="crm.keep_row", returns="trigger", language="plpgsql", body="BEGIN RETURN NEW; END"),
    CreateTrigger(table="crm.customers", name="customers_keep_row", function="crm.keep_row", timing="BEFORE",
                  events=["UPDATE"]),
])
'''

CUSTOMERS = """
INSERT INTO crm.customers (email, status, tier_id, signed_up)
SELECT 'c' || g || '@example.org', CASE WHEN g % 7 = 0 THEN 'closed' ELSE 'active' END, 1 + g % 2,
       DATE '2024-01-01' + g
  FROM generate_series(1, 1500) g
"""

# (drift statement, what both verify and the generated test must say)
DRIFTS = {
    "column type changed": ("ALTER TABLE crm.customers ALTER COLUMN email TYPE varchar(200)",
                            "column crm.customers.email has type character varying(200), expected "
                            "character varying(120)"),
    "column default changed": ("ALTER TABLE crm.customers ALTER COLUMN status SET DEFAULT 'closed'",
                               "column crm.customers.status has default"),
    "column default dropped": ("ALTER TABLE crm.tiers ALTER COLUMN discount DROP DEFAULT",
                               "column crm.tiers.discount has default None, expected '0'"),
    "identity dropped": ("ALTER TABLE crm.customers ALTER COLUMN id DROP IDENTITY",
                         "column crm.customers.id is not an identity column"),
    "NOT NULL dropped": ("ALTER TABLE crm.customers ALTER COLUMN email DROP NOT NULL",
                         "column crm.customers.email is nullable, expected NOT NULL"),
    "column dropped": ("ALTER TABLE crm.customers DROP COLUMN signed_up", "column crm.customers.signed_up is missing"),
    "seed row value changed": ("UPDATE crm.tiers SET label = 'Platinum' WHERE id = 2",
                               "seed rows of crm.tiers changed since they were inserted: (2): label is 'Platinum', "
                               "expected 'Gold'"),
    "seed row deleted": ("UPDATE crm.customers SET tier_id = 2 WHERE tier_id = 1; DELETE FROM crm.tiers WHERE id = 1",
                         "seed rows missing from crm.tiers: [{'id': 1}]"),
    "index definition changed": ("DROP INDEX crm.idx_customers_status_score;"
                                 " CREATE INDEX idx_customers_status_score ON crm.customers (status, score)",
                                 "index crm.idx_customers_status_score is defined as"),
    "index dropped": ("DROP INDEX crm.idx_customers_tier", "index crm.idx_customers_tier is missing"),
    "NOT NULL of an existing table's column dropped": ("ALTER TABLE crm.notes ALTER COLUMN body DROP NOT NULL",
                                                       "column crm.notes.body is nullable, expected NOT NULL"),
    "default of an existing table's column changed": ("ALTER TABLE crm.notes ALTER COLUMN kind SET DEFAULT 'm'",
                                                      "column crm.notes.kind has default \"'m'::text\", expected "
                                                      "\"'note'::text\""),
    "check constraint dropped": ("ALTER TABLE crm.customers DROP CONSTRAINT chk_customers_status",
                                 "check chk_customers_status on crm.customers is missing"),
    "foreign key dropped": ("ALTER TABLE crm.customers DROP CONSTRAINT fk_customers_tier",
                            "foreign key fk_customers_tier on crm.customers is missing"),
    "foreign key made NOT VALID": ("ALTER TABLE crm.customers DROP CONSTRAINT fk_customers_tier;"
                                   " ALTER TABLE crm.customers ADD CONSTRAINT fk_customers_tier FOREIGN KEY (tier_id)"
                                   " REFERENCES crm.tiers (id) NOT VALID",
                                   "foreign key fk_customers_tier on crm.customers is NOT VALID"),
    "backfilled value reset": ("UPDATE crm.customers SET score = NULL WHERE id IN (3, 4)",
                               "backfill of crm.customers undone in 2 row(s): score back to the value before the "
                               "backfill"),
    "table dropped": ("DROP TABLE crm.customers", "table crm.customers is missing"),
    "verify query false": ("COMMENT ON TABLE crm.customers IS 'someone else'", "returned false"),
    "view redefined": ("CREATE OR REPLACE VIEW crm.discounted_tiers AS SELECT t.id, t.label FROM crm.tiers AS t",
                       "view crm.discounted_tiers is defined as"),
    "view dropped": ("DROP VIEW crm.discounted_tiers", "view crm.discounted_tiers is missing"),
    "enum label added": ("ALTER TYPE crm.tier_level ADD VALUE 'platinum'",
                         "enum crm.tier_level has labels ['bronze', 'silver', 'gold', 'platinum'], expected"),
    "domain check dropped": ("ALTER DOMAIN crm.percent DROP CONSTRAINT percent_check",
                             "domain crm.percent differs: checks []"),
    "composite attribute added": ("ALTER TYPE crm.contact_point ADD ATTRIBUTE note text",
                                  "composite type crm.contact_point has attributes"),
    "comment changed": ("COMMENT ON COLUMN crm.customers.email IS 'x'",
                        "column crm.customers.email has the comment 'x', expected 'Where we write to'"),
    "sequence altered": ("ALTER SEQUENCE crm.note_numbers AS bigint",
                         "sequence crm.note_numbers: as_type is 'bigint', expected 'integer'"),
    "sequence moved back": ("SELECT setval('crm.note_numbers', 200)", "sequence crm.note_numbers is at 200"),
    "function body changed": ("CREATE OR REPLACE FUNCTION crm.keep_row() RETURNS trigger LANGUAGE plpgsql AS"
                              " 'BEGIN RETURN NULL; END'", "function crm.keep_row() has another body"),
    "trigger dropped": ("DROP TRIGGER customers_keep_row ON crm.customers",
                        "trigger customers_keep_row on crm.customers is missing"),
    "partition detached": ("ALTER TABLE crm.visits DETACH PARTITION crm.visits_2026",
                           "table crm.visits_2026 is not a partition of crm.visits"),
}


def _applied(tmp_path: Path, db):
    """V030 and V031 applied with the CLI, with 1,500 customers inserted between them (so the
    backfill has rows to write)."""
    specs = tmp_path / "specs"
    write_spec(specs, "V030_crm.py", V030)
    write_spec(specs, "V031_crm_scores.py", V031)
    project = make_project(tmp_path / "project", db.dsn, specs=specs)
    for args in (("--to", "030"), ()):
        result = project.run("apply", "--env", "test", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        if args:
            db.execute(CUSTOMERS)
    assert db.execute("SELECT count(*) FROM crm.customers WHERE score = 10")[0][0] == 1500
    return project


def _generated_tests(project, dsn: str) -> subprocess.CompletedProcess:
    """Every generated test file, with pytest in a subprocess as a user runs it."""
    env = dict(os.environ, DBDEPLOY_TEST_DSN=dsn)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider",
                           str(project.generated)], cwd=project.root, capture_output=True, text=True, env=env,
                          timeout=600, check=False)


def test_undrifted_both_pass(fresh_db, tmp_path):
    project = _applied(tmp_path, fresh_db)
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    result = _generated_tests(project, fresh_db.dsn)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "superseded" not in result.stdout, result.stdout[-3000:]   # only the rolled-back group is skipped
    manifest = json.loads(next(project.generated.glob("V030__*/manifest.json")).read_text())
    seen = {e["object"] for e in manifest["expects"]}
    seen |= {e["object"] for e in json.loads(next(project.generated.glob("V031__*/manifest.json")).read_text())[
        "expects"]}
    # every kind a spec can make here is covered (extension needs a server-side package; backup is rollback-only)
    assert seen == set(expectations.KINDS) - {"extension", "backup"}


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_one_drift_fails_verify_and_the_generated_tests(fresh_db, tmp_path, drift):
    statement, message = DRIFTS[drift]
    project = _applied(tmp_path, fresh_db)
    fresh_db.execute(statement)
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert message in verify.stderr, verify.stderr
    result = _generated_tests(project, fresh_db.dsn)
    assert result.returncode == 1, result.stdout[-6000:]
    assert message in result.stdout, result.stdout[-6000:]


def test_an_unknown_kind_errors_in_verify_and_in_the_generated_test(fresh_db, tmp_path):
    project = _applied(tmp_path, fresh_db)
    (folder,) = project.generated.glob("V030__*")
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = {"object": "nope", "table": "crm.customers", "name": "whatever", "present": True}
    manifest["expects"].append(entry)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 3, verify.stdout + verify.stderr   # README "Exit codes": integrity refusal
    assert "V030: nope whatever: expectation kind 'nope' is unknown to this check code" in verify.stderr, \
        verify.stderr

    # the generated file holds its own copy of the expectations: add the entry there too
    test_file = folder / f"test_{folder.name}.py"
    text = test_file.read_text()
    test_file.write_text(text.replace("\nAPPLIED = [", f"\nAPPLIED = [{entry!r},\n", 1))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                            cwd=project.root, capture_output=True, text=True, timeout=600, check=False,
                            env=dict(os.environ, DBDEPLOY_TEST_DSN=fresh_db.dsn))
    assert result.returncode == 1, result.stdout[-6000:]
    assert "UnknownExpectationKind" in result.stdout and "expectation kind 'nope'" in result.stdout, \
        result.stdout[-6000:]


def test_every_kind_has_one_check():
    assert set(catalog_checks.CHECKS) == set(expectations.KINDS)
    assert all(catalog_checks.CHECKS[kind].__name__ == f"check_{kind}" for kind in expectations.KINDS)


def test_the_expectation_and_check_modules_load_no_parser_and_no_models():
    """The executor imports them: neither may pull in pglast, pydantic or the operations."""
    code = ("import sys, dbdeploy.bundle.expectations, dbdeploy.bundle.catalog_checks; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pglast', 'pydantic')"
            " or m.startswith(('dbdeploy.ops', 'dbdeploy.model', 'dbdeploy.plan', 'dbdeploy.render'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout


COPY_SEED = '''
from dbdeploy import Column, CreateSchema, CreateTable, Migration, SeedRows

migration = Migration(version="040", name="geo", operations=[
    CreateSchema(name="geo"),
    CreateTable(table="geo.postcodes", columns=[Column(name="code", type="text"), Column(name="town", type="text"),
                                                Column(name="lat", type="numeric(8,5)")],
                primary_key=["code"]),
    SeedRows(table="geo.postcodes", conflict_columns=["code"],
             rows=[{"code": f"P{n:05d}", "town": f"Town {n}", "lat": f"{40 + n / 1000:.5f}"} for n in range(1200)]),
])
'''


def test_a_copy_seed_value_changed_fails_both(fresh_db, tmp_path):
    """A seed large enough to travel as COPY data: its values are read back from the bundle."""
    write_spec(tmp_path / "specs", "V040_geo.py", COPY_SEED)
    project = make_project(tmp_path / "project", fresh_db.dsn, specs=tmp_path / "specs")
    result = project.run("apply", "--env", "test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"data"' in next(project.generated.glob("V040__*/manifest.json")).read_text()   # the COPY form
    assert project.run("verify", "--env", "test").returncode == 0
    assert _generated_tests(project, fresh_db.dsn).returncode == 0
    fresh_db.execute("UPDATE geo.postcodes SET lat = 1.5 WHERE code = 'P00007'")
    message = "seed rows of geo.postcodes changed since they were inserted: (P00007): lat is '1.50000', expected"
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 1 and message in verify.stderr, verify.stderr
    generated = _generated_tests(project, fresh_db.dsn)
    assert generated.returncode == 1 and message in generated.stdout, generated.stdout[-6000:]
