"""Issue 10, items 5 (last part), 8 and 9 (static part): what ``generate`` refuses, and proof that it must.

Every refused spec goes through the real ``dbdeploy generate``: exit 2, one ``error:`` line naming
the spec file, the field and the fix, no traceback, nothing written. Then, on a real server, the
naive SQL for the same input is run in a fresh database to prove the refusal is not over-broad:

- "rejects": PostgreSQL itself raises an error (so the bundle would have failed at apply, leaving a
  ``failed`` version) — subqueries, aggregates, window and set-returning functions in defaults and
  CHECKs, non-IMMUTABLE functions in indexes, column references in defaults, foreign keys to a table
  not created yet or between incomparable types, 1,700 columns, ``pg_`` schemas, pg_catalog;
- "harms": PostgreSQL accepts it, and the test shows the damage dbdeploy's policy prevents — a CHECK
  calling ``pg_sleep`` stalls every insert, an advisory lock or ``set_config`` in a CHECK/default
  outlives the insert, ``nextval`` in a CHECK moves a sequence, a table in ``pg_temp`` is gone for
  every other session, a spec that changes dbdeploy's history or backups changes the deployment's
  records.

Accepted look-alikes (``now()``, ``random()`` and ``nextval`` defaults, a ``lower(email)`` index, an
``int4 → int8`` foreign key, a CHECK with an IN list, schemas named like reserved ones) generate and
apply on a real server with rows, through the executor and through psql.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.executor_support import make_project, write_spec
from tests.pg import TestDatabase

# Fast form in the default suite: every 3rd test plus CI_KEEP (the inputs);
# DBDEPLOY_FULL=1 runs every test (tests/conftest.py, README "Testing").
CI_FAST_FORM = 3
CI_KEEP = (
    "test_lookalikes_generate_and_apply_with_the_executor",
    "test_lookalikes_apply_with_psql",
    "test_raw_sql_objects_are_what_the_statements_write",   # no database: all of them, always
    "test_functions_new_in_18_are_judged_like_postgresql_18_judges_them",
)

DBDEPLOY = Path(sys.executable).parent / "dbdeploy"

HEADER = ("from dbdeploy import (AddCheck, AddColumn, AddForeignKey, AddUnique, Backfill, Check, Column, "
          "CreateIndex, CreateSchema, CreateTable, DropColumn, DropIndex, DropTable, ForeignKey, Index, Migration, "
          "RawSQL, RequireExtension, Unique)\n")


def _spec(version: str, operations: str) -> str:
    return HEADER + f"migration = Migration(version={version!r}, name='v{version}', operations=[\n{operations}\n])\n"


def _wide(count: int) -> str:
    return "[" + ", ".join(f"Column(name='c{i}', type='integer')" for i in range(count)) + "]"


USERS = "CreateTable(table='app.users', columns=[Column(name='id', type='bigint', nullable=False), " \
        "Column(name='email', type='text'), Column(name='qty', type='integer'), " \
        "Column(name='created_at', type='timestamptz')], primary_key=['id']),"

# The naive SQL's table, for the proofs.
PROOF_TABLE = "CREATE SCHEMA app; CREATE TABLE app.users (id bigint PRIMARY KEY, email text, qty integer, " \
              "created_at timestamptz); " \
              "INSERT INTO app.users SELECT g, 'u' || g, g, now() FROM generate_series(1, 50) g;"


@dataclass(frozen=True)
class Case:
    """One refused input: its spec operations, what the message must say, and the server-side proof."""

    id: str
    operations: str | tuple[str, ...]       # one migration, or several (one spec file each)
    field: str                              # a fragment of the field path the error names
    reason: str                             # a fragment of the reason
    fix: str                                # a fragment of the fix
    rejects: str | None = None              # naive SQL PostgreSQL refuses (run after PROOF_TABLE)
    harm: str | None = None                 # name of a harm proof (see HARMS) when PostgreSQL accepts it
    config: str = ""                        # extra dbdeploy.toml text
    specs: dict = field(default_factory=dict)


CASES = [
    # --- item 5: side effects in constraints and defaults (PostgreSQL accepts them) -------------------
    Case("check_pg_sleep", USERS + "AddCheck(table='app.users', check=Check(expression='pg_sleep(5) IS NOT NULL')),",
         "Check.expression", "calls pg_sleep()", "remove the call", harm="pg_sleep_check"),
    Case("check_pg_sleep_for_in_create_table",
         "CreateTable(table='app.t', columns=[Column(name='a', type='integer')], "
         "checks=[Check(expression=\"a > 0 AND pg_sleep_for('1 second') IS NOT NULL\")]),",
         "Check.expression", "calls pg_sleep_for()", "remove the call", harm="pg_sleep_check"),
    Case("check_advisory_lock",
         "AddCheck(table='app.users', check=Check(expression='pg_advisory_lock(42) IS NOT NULL'))",
         "Check.expression", "takes an advisory lock", "remove the call", harm="advisory_lock_check"),
    Case("check_set_config",
         "AddCheck(table='app.users', check=Check(expression=\"set_config('search_path', 'evil', false) <> ''\"))",
         "Check.expression", "changes a setting", "remove the call", harm="set_config_check"),
    Case("check_nextval", "AddCheck(table='app.users', check=Check(expression=\"nextval('app.s') > 0\"))",
         "Check.expression", "advances a sequence", "remove the call", harm="nextval_check"),
    Case("default_advisory_lock",
         "AddColumn(table='app.users', column=Column(name='locked', type='boolean', "
         "default='pg_try_advisory_lock(7)'))",
         "Column.default", "takes an advisory lock", "remove the call", harm="advisory_lock_default"),
    Case("default_pg_terminate_backend",
         "AddColumn(table='app.users', column=Column(name='k', type='boolean', "
         "default='pg_terminate_backend(pg_backend_pid())'))",
         "Column.default", "ends another session", "remove the call", harm="terminate_default"),
    Case("index_dblink_schema_qualified",
         "CreateIndex(table='app.users', index=Index(columns=[\"ext.dblink_exec('select 1')\"]))",
         "Index.columns", "runs SQL on another connection", "remove the call",
         rejects="CREATE INDEX ON app.users ((ext.dblink_exec('select 1')))"),
    # --- item 5/9: what PostgreSQL rejects in a CHECK ---------------------------------------------------
    Case("check_subquery", "CreateTable(table='app.t', columns=[Column(name='qty', type='integer')], "
                           "checks=[Check(expression='qty <= (SELECT 10)')]),",
         "Check.expression", "contains a subquery", "foreign key",
         rejects="CREATE TABLE app.t (qty integer CHECK (qty <= (SELECT 10)))"),
    Case("check_exists_subquery",
         "AddCheck(table='app.users', check=Check(expression='EXISTS (SELECT 1 FROM app.users u WHERE u.id = 1)'))",
         "Check.expression", "contains a subquery", "foreign key",
         rejects="ALTER TABLE app.users ADD CHECK (EXISTS (SELECT 1 FROM app.users u WHERE u.id = 1))"),
    Case("check_in_subquery", "AddCheck(table='app.users', check=Check(expression='qty IN (SELECT 1)'))",
         "Check.expression", "contains a subquery", "foreign key",
         rejects="ALTER TABLE app.users ADD CHECK (qty IN (SELECT 1))"),
    Case("check_aggregate", "AddCheck(table='app.users', check=Check(expression='max(qty) > 0'))",
         "Check.expression", "aggregate function max()", "Backfill or a view",
         rejects="ALTER TABLE app.users ADD CHECK (max(qty) > 0)"),
    Case("check_count_star", "AddCheck(table='app.users', check=Check(expression='count(*) < 100'))",
         "Check.expression", "aggregate function count()", "Backfill or a view",
         rejects="ALTER TABLE app.users ADD CHECK (count(*) < 100)"),
    Case("check_window", "AddCheck(table='app.users', check=Check(expression='row_number() OVER () > 0'))",
         "Check.expression", "window function row_number()", "Backfill or a view",
         rejects="ALTER TABLE app.users ADD CHECK (row_number() OVER () > 0)"),
    Case("check_set_returning", "AddCheck(table='app.users', check=Check(expression='generate_series(1, qty) > 0'))",
         "Check.expression", "returns a set of rows", "use one value",
         rejects="ALTER TABLE app.users ADD CHECK (generate_series(1, qty) > 0)"),
    Case("check_unknown_column_of_known_table",
         USERS + "AddCheck(table='app.users', check=Check(expression='qtty > 0'))",
         "operations[1]", "qtty", "use one of its columns",
         rejects="ALTER TABLE app.users ADD CHECK (qtty > 0)"),
    # --- DEFAULT ------------------------------------------------------------------------------------------
    Case("default_set_returning",
         "CreateTable(table='app.t', columns=[Column(name='a', type='integer', default='generate_series(1,3)')]),",
         "Column.default", "returns a set of rows", "ARRAY[1, 2, 3]",
         rejects="CREATE TABLE app.t (a integer DEFAULT generate_series(1,3))"),
    Case("default_unnest",
         "AddColumn(table='app.users', column=Column(name='a', type='integer', default='unnest(ARRAY[1, 2])'))",
         "Column.default", "returns a set of rows", "use one value",
         rejects="ALTER TABLE app.users ADD COLUMN a integer DEFAULT unnest(ARRAY[1, 2])"),
    Case("default_subquery",
         "AddColumn(table='app.users', column=Column(name='a', type='integer', "
         "default='(SELECT max(qty) FROM app.users)'))",
         "Column.default", "contains a subquery", "Backfill",
         rejects="ALTER TABLE app.users ADD COLUMN a integer DEFAULT (SELECT max(qty) FROM app.users)"),
    Case("default_column_reference",
         "AddColumn(table='app.users', column=Column(name='a', type='integer', default='qty + 1'))",
         "Column.default", "refers to the column 'qty'", "fill it with a Backfill",
         rejects="ALTER TABLE app.users ADD COLUMN a integer DEFAULT qty + 1"),
    Case("default_unquoted_word",
         "AddColumn(table='app.users', column=Column(name='status', type='text', default='active'))",
         "Column.default", "refers to the column 'active'", "quote it",
         rejects="ALTER TABLE app.users ADD COLUMN status text DEFAULT active"),
    Case("default_aggregate",
         "AddColumn(table='app.users', column=Column(name='a', type='bigint', default='count(*)'))",
         "Column.default", "aggregate function count()", "Backfill or a view",
         rejects="ALTER TABLE app.users ADD COLUMN a bigint DEFAULT count(*)"),
    Case("default_window",
         "AddColumn(table='app.users', column=Column(name='a', type='bigint', default='rank() OVER ()'))",
         "Column.default", "window function rank()", "Backfill or a view",
         rejects="ALTER TABLE app.users ADD COLUMN a bigint DEFAULT rank() OVER ()"),
    Case("default_parameter",
         "AddColumn(table='app.users', column=Column(name='a', type='integer', default='$1'))",
         "Column.default", "parameter $1", "write the value itself",
         rejects="ALTER TABLE app.users ADD COLUMN a integer DEFAULT $1"),
    # --- indexes: only IMMUTABLE built-ins ------------------------------------------------------------------
    Case("index_random", USERS + "CreateIndex(table='app.users', index=Index(columns=['random()']))",
         "Index.columns", "random(), which is VOLATILE", "index that column",
         rejects="CREATE INDEX ON app.users ((random()))"),
    Case("index_random_qualified",
         "CreateIndex(table='app.users', index=Index(columns=['(qty * pg_catalog.random())']))",
         "Index.columns", "VOLATILE", "index that column",
         rejects="CREATE INDEX ON app.users ((qty * pg_catalog.random()))"),
    Case("index_now_in_create_table",
         "CreateTable(table='app.t', columns=[Column(name='a', type='timestamptz')], "
         "indexes=[Index(columns=['(a < now())'])]),",
         "Index.columns", "now(), which is STABLE", "index that column",
         rejects="CREATE TABLE app.t (a timestamptz); CREATE INDEX ON app.t ((a < now()))"),
    Case("index_to_char_stable",
         "CreateIndex(table='app.users', index=Index(columns=[\"to_char(created_at, 'YYYY')\"]))",
         "Index.columns", "STABLE", "index that column",
         rejects="CREATE INDEX ON app.users ((to_char(created_at, 'YYYY')))"),
    Case("index_where_now",
         "CreateIndex(table='app.users', index=Index(columns=['id'], where='created_at > now()'))",
         "Index.where", "now(), which is STABLE", "index that column",
         rejects="CREATE INDEX ON app.users (id) WHERE created_at > now()"),
    Case("index_where_current_timestamp",
         "CreateIndex(table='app.users', index=Index(columns=['id'], where='created_at > CURRENT_TIMESTAMP'))",
         "Index.where", "CURRENT_TIMESTAMP, which is not IMMUTABLE", "index that",
         rejects="CREATE INDEX ON app.users (id) WHERE created_at > CURRENT_TIMESTAMP"),
    Case("index_where_subquery",
         "CreateIndex(table='app.users', index=Index(columns=['id'], where='qty > (SELECT 1)'))",
         "Index.where", "contains a subquery", "IMMUTABLE functions",
         rejects="CREATE INDEX ON app.users (id) WHERE qty > (SELECT 1)"),
    Case("index_aggregate", "CreateIndex(table='app.users', index=Index(columns=['sum(qty)']))",
         "Index.columns", "aggregate function sum()", "Backfill or a view",
         rejects="CREATE INDEX ON app.users ((sum(qty)))"),
    Case("index_set_returning", "CreateIndex(table='app.users', index=Index(columns=['generate_series(1, qty)']))",
         "Index.columns", "returns a set of rows", "use one value",
         rejects="CREATE INDEX ON app.users ((generate_series(1, qty)))"),
    Case("index_pg_sleep", "CreateIndex(table='app.users', index=Index(columns=['(pg_sleep(1) IS NULL)']))",
         "Index.columns", "calls pg_sleep()", "remove the call",
         rejects="CREATE INDEX ON app.users ((pg_sleep(1) IS NULL))"),
    Case("index_unique_hash",
         "CreateIndex(table='app.users', index=Index(columns=['email'], unique=True, method='hash'))",
         "method", "does not support unique indexes", 'method="btree"',
         rejects="CREATE UNIQUE INDEX ON app.users USING hash (email)"),
    Case("index_include_brin", "CreateIndex(table='app.users', index=Index(columns=['qty'], method='brin', "
                               "include=['email']))",
         "include", "does not support included columns", 'method="btree"',
         rejects="CREATE INDEX ON app.users USING brin (qty) INCLUDE (email)"),
    Case("index_hash_two_columns",
         "CreateIndex(table='app.users', index=Index(columns=['email', 'qty'], method='hash'))",
         "columns", "does not support multicolumn indexes", "index one column",
         rejects="CREATE INDEX ON app.users USING hash (email, qty)"),
    Case("index_brin_desc", "CreateIndex(table='app.users', index=Index(columns=['qty DESC'], method='brin'))",
         "columns", "does not support ASC/DESC", "remove the ordering",
         rejects="CREATE INDEX ON app.users USING brin (qty DESC)"),
    # --- item 9: foreign keys, column counts -------------------------------------------------------------------
    Case("fk_circular",
         "CreateTable(table='app.a', columns=[Column(name='id', type='bigint', nullable=False), "
         "Column(name='b_id', type='bigint')], primary_key=['id'], "
         "foreign_keys=[ForeignKey(columns=['b_id'], references='app.b', ref_columns=['id'])]),\n"
         "CreateTable(table='app.b', columns=[Column(name='id', type='bigint', nullable=False), "
         "Column(name='a_id', type='bigint')], primary_key=['id'], "
         "foreign_keys=[ForeignKey(columns=['a_id'], references='app.a', ref_columns=['id'])]),",
         "operations[0] (create_table app.a)", "creates later in this migration", "AddForeignKey after both",
         rejects="CREATE TABLE app.a (id bigint PRIMARY KEY, b_id bigint REFERENCES app.b (id))"),
    Case("fk_add_before_create",
         "CreateTable(table='app.a', columns=[Column(name='id', type='bigint', nullable=False), "
         "Column(name='b_id', type='bigint')], primary_key=['id']),\n"
         "AddForeignKey(table='app.a', foreign_key=ForeignKey(columns=['b_id'], references='app.b', "
         "ref_columns=['id'])),\n"
         "CreateTable(table='app.b', columns=[Column(name='id', type='bigint', nullable=False)], primary_key=['id']),",
         "operations[1] (add_foreign_key app.a)", "creates later in this migration", "put the CreateTable",
         rejects="CREATE TABLE app.a (id bigint PRIMARY KEY, b_id bigint); "
                 "ALTER TABLE app.a ADD FOREIGN KEY (b_id) REFERENCES app.b (id)"),
    Case("fk_integer_to_text",
         "CreateTable(table='app.codes', columns=[Column(name='code', type='text', nullable=False)], "
         "primary_key=['code']),\n"
         "CreateTable(table='app.t', columns=[Column(name='code', type='integer')], "
         "foreign_keys=[ForeignKey(columns=['code'], references='app.codes', ref_columns=['code'])]),",
         "operations[1] (create_table app.t)", "no equality operator", "give code the referenced column's type",
         rejects="CREATE TABLE app.codes (code text PRIMARY KEY); "
                 "CREATE TABLE app.t (code integer REFERENCES app.codes (code))"),
    Case("fk_uuid_to_bigint_across_specs",
         (USERS, "CreateTable(table='app.t', columns=[Column(name='user_id', type='uuid')]),\n"
                 "AddForeignKey(table='app.t', foreign_key=ForeignKey(columns=['user_id'], references='app.users', "
                 "ref_columns=['id'])),"),
         "Migration 002.operations[1] (add_foreign_key app.t)", "no equality operator", "referenced column's type",
         rejects="CREATE TABLE app.t (user_id uuid); "
                 "ALTER TABLE app.t ADD FOREIGN KEY (user_id) REFERENCES app.users (id)"),
    Case("fk_array_to_scalar_self",
         "CreateTable(table='app.tree', columns=[Column(name='id', type='integer', nullable=False), "
         "Column(name='parents', type='integer[]')], primary_key=['id'], "
         "foreign_keys=[ForeignKey(columns=['parents'], references='app.tree', ref_columns=['id'])]),",
         "foreign_keys[0]", "(an array)", "referenced column's type",
         rejects="CREATE TABLE app.tree (id integer PRIMARY KEY, parents integer[] REFERENCES app.tree (id))"),
    Case("fk_timestamptz_to_boolean",
         "CreateTable(table='app.flags', columns=[Column(name='f', type='boolean', nullable=False)], "
         "primary_key=['f']),\n"
         "CreateTable(table='app.t', columns=[Column(name='at', type='timestamptz')]),\n"
         "AddForeignKey(table='app.t', foreign_key=ForeignKey(columns=['at'], references='app.flags', "
         "ref_columns=['f'])),",
         "operations[2] (add_foreign_key app.t)", "no equality operator", "referenced column's type",
         rejects="CREATE TABLE app.flags (f boolean PRIMARY KEY); CREATE TABLE app.t (at timestamptz "
                 "REFERENCES app.flags (f))"),
    Case("primary_key_json",
         "CreateTable(table='app.docs', columns=[Column(name='doc', type='json', nullable=False)], "
         "primary_key=['doc']),",
         "primary_key", "no btree operator class", "use jsonb",
         rejects="CREATE TABLE app.docs (doc json PRIMARY KEY)"),
    Case("unique_point_in_create_table",
         "CreateTable(table='app.places', columns=[Column(name='at', type='point')], "
         "uniques=[Unique(columns=['at'])]),",
         "uniques[0].columns", "no btree operator class", "gist",
         rejects="CREATE TABLE app.places (at point UNIQUE)"),
    Case("add_unique_xml_known_table",
         "CreateTable(table='app.feeds', columns=[Column(name='body', type='xml')]),\n"
         "AddUnique(table='app.feeds', unique=Unique(columns=['body'])),",
         "operations[1] (add_unique app.feeds)", "no btree operator class", "leave the column out",
         rejects="CREATE TABLE app.feeds (body xml); ALTER TABLE app.feeds ADD UNIQUE (body)"),
    Case("btree_index_json_known_table",
         "CreateTable(table='app.docs', columns=[Column(name='doc', type='json')]),\n"
         "CreateIndex(table='app.docs', index=Index(columns=['doc'])),",
         "operations[1] (create_index app.docs)", "no btree operator class", "use jsonb",
         rejects="CREATE TABLE app.docs (doc json); CREATE INDEX ON app.docs (doc)"),
    Case("columns_1700", f"CreateTable(table='app.wide', columns={_wide(1700)}),",
         "CreateTable.columns", "1700 columns", "split the columns",
         rejects="CREATE TABLE app.wide (" + ", ".join(f"c{i} integer" for i in range(1700)) + ")"),
    Case("add_column_1601",
         (f"CreateTable(table='app.wide', columns={_wide(1600)}),",
          "AddColumn(table='app.wide', column=Column(name='one_more', type='integer')),"),
         "Migration 002.operations[0] (add_column app.wide)", "1601 columns", "split the columns",
         rejects="CREATE TABLE app.wide (" + ", ".join(f"c{i} integer" for i in range(1600)) + "); "
                 "ALTER TABLE app.wide ADD COLUMN one_more integer"),
    # --- item 8: PostgreSQL's schemas ----------------------------------------------------------------------------
    Case("create_table_pg_temp", "CreateTable(table='pg_temp.t', columns=[Column(name='a', type='integer')]),",
         "operations[0] (create_table pg_temp.t)", "temporary schema", "application schema", harm="pg_temp_gone"),
    Case("create_table_pg_temp_3", "CreateTable(table='pg_temp_3.t', columns=[Column(name='a', type='integer')]),",
         "operations[0]", "temporary schema", "application schema", harm="pg_temp_gone"),
    Case("create_table_pg_catalog", "CreateTable(table='pg_catalog.t', columns=[Column(name='a', type='integer')]),",
         "operations[0]", "PostgreSQL system schema", "application schema",
         rejects="CREATE TABLE pg_catalog.t (a integer)"),
    Case("add_column_pg_catalog", "AddColumn(table='pg_catalog.pg_class', column=Column(name='x', type='integer')),",
         "operations[0]", "PostgreSQL system schema", "application schema",
         rejects="ALTER TABLE pg_catalog.pg_class ADD COLUMN x integer"),
    Case("create_table_pg_toast", "CreateTable(table='pg_toast.t', columns=[Column(name='a', type='integer')]),",
         "operations[0]", "PostgreSQL system schema", "application schema",
         rejects="CREATE TABLE pg_toast.t (a integer)"),
    Case("create_schema_pg_prefix", "CreateSchema(name='pg_app'),",
         "operations[0] (create_schema pg_app)", "PostgreSQL reserves", "application schema",
         rejects="CREATE SCHEMA pg_app"),
    Case("create_table_information_schema",
         "CreateTable(table='information_schema.t', columns=[Column(name='a', type='integer')]),",
         "operations[0]", "PostgreSQL system schema", "application schema", harm="information_schema_shadow"),
    Case("drop_index_pg_catalog", "DropIndex(name='pg_catalog.pg_class_oid_index'),",
         "operations[0]", "PostgreSQL system schema", "application schema",
         rejects="DROP INDEX pg_catalog.pg_class_oid_index"),
    Case("extension_into_pg_catalog", "RequireExtension(name='pgcrypto', create=True, schema='pg_catalog'),",
         "operations[0]", "PostgreSQL system schema", "application schema", harm="extension_shadows_builtins"),
    Case("raw_sql_create_in_pg_catalog",
         "RawSQL(forward='CREATE TABLE pg_catalog.t (a integer)', rollback='DROP TABLE pg_catalog.t'),",
         "operations[0] (raw_sql -)", "forward: relation pg_catalog.t", "application schema",
         rejects="CREATE TABLE pg_catalog.t (a integer)"),
    # --- item 8: dbdeploy's own schemas ----------------------------------------------------------------------------
    Case("drop_history_table", "DropTable(table='migrations.migration_log'),",
         "operations[0] (drop_table migrations.migration_log)", "dbdeploy's history schema", "application schema",
         harm="history_dropped"),
    Case("add_column_history_table",
         "AddColumn(table='migrations.migration_log', column=Column(name='x', type='integer')),",
         "operations[0]", "dbdeploy's history schema", "application schema", harm="history_dropped"),
    Case("backfill_history_table", "Backfill(table='migrations.migration_log', set={'status': \"'applied'\"}, "
                                   "key=['version']),",
         "operations[0]", "dbdeploy's history schema", "application schema", harm="history_dropped"),
    Case("drop_column_history_table", "DropColumn(table='migrations.migration_objects', column='object_name'),",
         "operations[0]", "dbdeploy's history schema", "application schema", harm="history_dropped"),
    Case("fk_to_history_table",
         "CreateTable(table='app.t', columns=[Column(name='v', type='text')], "
         "foreign_keys=[ForeignKey(columns=['v'], references='migrations.migration_log', ref_columns=['version'])]),",
         "operations[0]", "dbdeploy's history schema", "application schema", harm="history_dropped"),
    Case("configured_history_schema", "CreateTable(table='deploy_log.t', columns=[Column(name='a', type='integer')]),",
         "operations[0]", "dbdeploy's history schema", "application schema", harm="history_dropped",
         config='history_schema = "deploy_log"\n'),
    Case("raw_sql_alters_history",
         "RawSQL(forward='ALTER TABLE migrations.migration_log ADD COLUMN x integer', "
         "rollback='ALTER TABLE migrations.migration_log DROP COLUMN x'),",
         "operations[0] (raw_sql -)", "forward: relation migrations.migration_log", "application schema",
         harm="history_dropped"),
    Case("raw_sql_inserts_into_history",
         "RawSQL(forward=\"INSERT INTO migrations.migration_log (version) SELECT '999'\", "
         "rollback=\"DELETE FROM migrations.migration_log WHERE version = '999'\"),",
         "operations[0] (raw_sql -)", "migrations.migration_log", "application schema", harm="history_dropped"),
    Case("drop_backup_table", "DropTable(table='dbdeploy_backup.dropped_tables'),",
         "operations[0]", "dbdeploy's backup schema", "application schema", harm="history_dropped"),
    Case("create_table_backup_variant",
         "CreateTable(table='dbdeploy_backup_v1.t', columns=[Column(name='a', type='integer')]),",
         "operations[0]", "dbdeploy's backup schema", "application schema", harm="history_dropped"),
    Case("raw_sql_grant_on_backup_schema",
         "RawSQL(forward='GRANT USAGE ON SCHEMA dbdeploy_backup TO PUBLIC', "
         "rollback='REVOKE USAGE ON SCHEMA dbdeploy_backup FROM PUBLIC'),",
         "operations[0] (raw_sql -)", "schema dbdeploy_backup", "application schema", harm="history_dropped"),
]


# --- the refusals, through the real CLI -------------------------------------------------------------

@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    workdir: Path


def _generate(case: Case, workdir: Path) -> Run:
    specs = workdir / "specs"
    specs.mkdir(parents=True)
    versions = case.operations if isinstance(case.operations, tuple) else (case.operations,)
    for number, operations in enumerate(versions, 1):
        (specs / f"V00{number}_{case.id}.py").write_text(_spec(f"00{number}", operations))
    (workdir / "dbdeploy.toml").write_text(case.config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DBDEPLOY"))}
    proc = subprocess.run([str(DBDEPLOY), "generate", "--specs", "specs", "--out", "out"], cwd=workdir,
                          capture_output=True, text=True, env=env, timeout=300)
    return Run(proc.returncode, proc.stdout, proc.stderr, workdir)


@pytest.fixture(scope="module")
def refused(tmp_path_factory, request) -> dict[str, Run]:
    """One `dbdeploy generate` per case the session runs (all of them with DBDEPLOY_FULL=1)."""
    wanted = {item.callspec.params["case"].id for item in request.session.items
              if getattr(item, "originalname", "") == "test_generate_refuses_with_one_clear_message"}
    cases = [c for c in CASES if c.id in wanted] or CASES
    root = tmp_path_factory.mktemp("static_refusals")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = pool.map(lambda case: _generate(case, root / case.id), cases)
        return {case.id: run for case, run in zip(cases, runs, strict=True)}


def test_case_ids_are_unique():
    assert len({c.id for c in CASES}) == len(CASES)
    assert all((c.rejects is None) != (c.harm is None) for c in CASES), "each case has exactly one proof"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_generate_refuses_with_one_clear_message(refused, case):
    run = refused[case.id]
    assert run.returncode == 2, f"{case.id}: exit {run.returncode}\n{run.stdout}{run.stderr}"
    assert "Traceback" not in run.stdout + run.stderr
    assert run.stdout == ""
    lines = run.stderr.rstrip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: specs/V00"), run.stderr
    message, fix = lines[0].split(" — fix: ", 1) if " — fix: " in lines[0] else (lines[0], "")
    assert case.field in message, f"the field {case.field!r} is not named:\n{run.stderr}"
    assert case.reason in message, f"the reason {case.reason!r} is not given:\n{run.stderr}"
    assert case.fix in fix, f"the fix does not say {case.fix!r}:\n{run.stderr}"
    assert not (run.workdir / "out").exists(), "something was written"


# --- PostgreSQL rejects the naive SQL: the refusal is not over-broad ---------------------------------------

@pytest.mark.parametrize("case", [c for c in CASES if c.rejects], ids=lambda c: c.id)
def test_postgresql_rejects_the_naive_sql(fresh_db: TestDatabase, case):
    fresh_db.execute(PROOF_TABLE)
    with pytest.raises(psycopg.Error) as info, fresh_db.connect() as conn, conn.transaction():
        conn.execute(case.rejects)
    state = info.value.sqlstate or ""
    assert state and not state.startswith("08"), info.value     # refused by the server, not a lost connection
    assert fresh_db.execute("SELECT count(*) FROM app.users") == [(50,)]


# --- PostgreSQL accepts it, and it does harm: the policy refusals ----------------------------------------------

def _harm_pg_sleep_check(db: TestDatabase) -> None:
    db.execute("ALTER TABLE app.users ADD CONSTRAINT slow CHECK (pg_sleep(5) IS NOT NULL) NOT VALID")
    with db.connect() as conn:
        conn.execute("SET statement_timeout = '200ms'")
        with pytest.raises(psycopg.errors.QueryCanceled):   # every insert now sleeps inside the CHECK
            conn.execute("INSERT INTO app.users (id) VALUES (1000)")


def _harm_advisory_lock_check(db: TestDatabase) -> None:
    # NOT VALID: validating would leave lock 42 with this session, and the writer below would wait for ever.
    db.execute("ALTER TABLE app.users ADD CHECK (pg_advisory_lock(42) IS NOT NULL) NOT VALID")
    with db.connect() as writer:
        writer.execute("INSERT INTO app.users (id) VALUES (1000)")     # committed; the lock stays
        held = db.execute("SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND objid = 42 "
                          "AND pid = %s", [writer.info.backend_pid])
        assert held == [(1,)]


def _harm_advisory_lock_default(db: TestDatabase) -> None:
    db.execute("ALTER TABLE app.users ADD COLUMN locked boolean")   # (a default here would lock for every row now)
    db.execute("ALTER TABLE app.users ALTER COLUMN locked SET DEFAULT pg_try_advisory_lock(7)")
    with db.connect() as writer:
        writer.execute("INSERT INTO app.users (id) VALUES (1000)")
        held = db.execute("SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND objid = 7 "
                          "AND pid = %s", [writer.info.backend_pid])
        assert held == [(1,)]


def _harm_set_config_check(db: TestDatabase) -> None:
    db.execute("ALTER TABLE app.users ADD CHECK (set_config('search_path', 'evil', false) <> '')")
    with db.connect() as writer:
        writer.execute("INSERT INTO app.users (id) VALUES (1000)")
        assert writer.execute("SHOW search_path").fetchone() == ("evil",)   # the writer's session changed


def _harm_nextval_check(db: TestDatabase) -> None:
    db.execute("CREATE SEQUENCE app.s; ALTER TABLE app.users ADD CHECK (nextval('app.s') > 0)")
    db.execute("UPDATE app.users SET qty = qty + 1")
    assert db.execute("SELECT last_value FROM app.s")[0][0] >= 50 + 50   # VALIDATE and every update moved it


def _harm_terminate_default(db: TestDatabase) -> None:
    db.execute("ALTER TABLE app.users ADD COLUMN k boolean")
    db.execute("ALTER TABLE app.users ALTER COLUMN k SET DEFAULT pg_terminate_backend(pg_backend_pid())")
    with db.connect() as writer, pytest.raises(psycopg.OperationalError):
        writer.execute("INSERT INTO app.users (id) VALUES (1000)")   # the insert kills its own session


def _harm_pg_temp_gone(db: TestDatabase) -> None:
    with db.connect() as deployer:
        deployer.execute("CREATE TABLE pg_temp.t (a integer)")    # "applied"
        deployer.execute("INSERT INTO pg_temp.t VALUES (1)")
    assert db.execute("SELECT pg_catalog.to_regclass('pg_temp.t') IS NULL") == [(True,)]


def _harm_information_schema_shadow(db: TestDatabase) -> None:
    db.execute("CREATE TABLE information_schema.t (a integer)")   # a superuser may: it lands among the system views
    assert db.execute("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'information_schema' "
                      "AND tablename = 't'") == [(1,)]


def _harm_extension_shadows_builtins(db: TestDatabase) -> None:
    # Whatever an extension installs into pg_catalog is found first by every bundle statement
    # (bundles run with search_path = pg_catalog, pg_temp): shown with a plain function.
    db.execute("CREATE FUNCTION pg_catalog.dbdeploy_static_probe() RETURNS integer LANGUAGE sql AS 'SELECT 1'")
    try:
        with db.connect() as conn:
            conn.execute("SET search_path = pg_catalog, pg_temp")
            assert conn.execute("SELECT dbdeploy_static_probe()").fetchone() == (1,)
    finally:
        db.execute("DROP FUNCTION pg_catalog.dbdeploy_static_probe()")


def _harm_history_dropped(db: TestDatabase) -> None:
    # dbdeploy's history is ordinary tables: nothing in PostgreSQL stops a migration from changing them.
    from dbdeploy.executor.history import ensure_history

    with db.connect() as conn:
        ensure_history(conn, "migrations")
    db.execute("DROP TABLE migrations.migration_log CASCADE")
    assert db.execute("SELECT pg_catalog.to_regclass('migrations.migration_log') IS NULL") == [(True,)]


HARMS = {name.removeprefix("_harm_"): fn for name, fn in globals().items() if name.startswith("_harm_")}


@pytest.mark.parametrize("case", [c for c in CASES if c.harm], ids=lambda c: c.id)
def test_postgresql_accepts_it_and_it_does_harm(fresh_db: TestDatabase, case):
    fresh_db.execute(PROOF_TABLE)
    HARMS[case.harm](fresh_db)


# --- accepted look-alikes generate, apply and hold rows ------------------------------------------------------

LOOKALIKES_V1 = '''
from dbdeploy import Check, Column, CreateIndex, CreateSchema, CreateTable, ForeignKey, Index, Migration, RawSQL

migration = Migration(
    version="001",
    name="lookalikes",
    operations=[
        CreateSchema(name="app"),
        CreateSchema(name="migrations_archive"),      # named like the history schema, but not it
        CreateSchema(name="dbdeploy_backups"),        # not dbdeploy_backup nor dbdeploy_backup_*
        CreateSchema(name="pgapp"),                   # no pg_ prefix
        RawSQL(forward="CREATE TEMP TABLE scratch AS SELECT 1 AS x; DROP TABLE scratch; "
                       "CREATE SEQUENCE app.ticket_seq",
               rollback="DROP SEQUENCE app.ticket_seq",
               verify="SELECT count(*) > 0 FROM pg_catalog.pg_class WHERE relname = 'ticket_seq'"),
        CreateTable(
            table="app.accounts",
            columns=[
                Column(name="id", type="bigint", nullable=False),
                Column(name="email", type="text", nullable=False),
                Column(name="status", type="text", nullable=False, default="'active'"),
                Column(name="created_at", type="timestamptz", nullable=False, default="now()"),
                Column(name="day", type="timestamp", default="LOCALTIMESTAMP"),
                Column(name="score", type="double precision", default="random()"),
                Column(name="ticket", type="bigint", default="nextval('app.ticket_seq')"),
                Column(name="owner", type="text", default="CURRENT_USER"),
                Column(name="tags", type="text[]", default="ARRAY['new']"),
            ],
            primary_key=["id"],
            checks=[Check(expression="status IN ('active', 'closed')"),
                    Check(expression="score >= 0 AND length(email) < 200")],
            indexes=[Index(columns=["lower(email)"], unique=True),
                     Index(columns=["date_trunc('day', day)"]),
                     Index(columns=["id"], where="status = 'active' AND coalesce(score, 0) < 2"),
                     Index(columns=["(id + 1)", "upper(status)"])],
        ),
        CreateTable(
            table="migrations_archive.entries",
            columns=[Column(name="id", type="integer", nullable=False),
                     Column(name="account_id", type="integer"),
                     Column(name="code", type="varchar(20)")],
            primary_key=["id"],
            foreign_keys=[ForeignKey(columns=["account_id"], references="app.accounts", ref_columns=["id"])],
        ),
        CreateTable(table="pgapp.codes", columns=[Column(name="code", type="text", nullable=False)],
                    primary_key=["code"]),
        CreateTable(table="dbdeploy_backups.notes", columns=[Column(name="note", type="text")]),
    ],
)
'''

LOOKALIKES_V2 = '''
from dbdeploy import AddCheck, AddColumn, AddForeignKey, Check, Column, CreateIndex, ForeignKey, Index, Migration

migration = Migration(
    version="002",
    name="lookalikes_on_rows",
    operations=[
        AddColumn(table="app.accounts", column=Column(name="seen_at", type="timestamptz", default="now()")),
        AddColumn(table="app.accounts", column=Column(name="coin", type="double precision", default="random()")),
        AddCheck(table="app.accounts", check=Check(expression="status IN ('active', 'closed', 'frozen')")),
        CreateIndex(table="migrations_archive.entries", index=Index(columns=["lower(code)"])),
        AddForeignKey(table="migrations_archive.entries",
                      foreign_key=ForeignKey(columns=["code"], references="pgapp.codes", ref_columns=["code"])),
    ],
)
'''

ROWS = """
INSERT INTO app.accounts (id, email) SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 300) g;
INSERT INTO pgapp.codes SELECT 'C' || g FROM generate_series(1, 20) g;
INSERT INTO migrations_archive.entries SELECT g, g, 'C' || (g % 20 + 1) FROM generate_series(1, 300) g;
"""


def _check_applied(db: TestDatabase) -> None:
    assert db.execute("SELECT count(*), count(DISTINCT ticket), min(score) >= 0, bool_and(created_at <= now()),"
                      " bool_and(tags = ARRAY['new']) FROM app.accounts") == [(300, 300, True, True, True)]
    assert db.execute("SELECT count(*) FROM app.accounts WHERE seen_at IS NOT NULL AND coin IS NOT NULL") == [(300,)]
    fks = db.execute("SELECT conname, convalidated FROM pg_catalog.pg_constraint "
                     "WHERE conrelid = 'migrations_archive.entries'::regclass AND contype = 'f' ORDER BY 1")
    assert len(fks) == 2 and all(valid for _, valid in fks), fks
    assert db.execute("SELECT count(*) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid "
                      "WHERE c.relname IN ('accounts', 'entries') AND i.indisvalid") == [(7,)]
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO app.accounts (id, email, status) VALUES (999, 'x@example.com', 'bogus')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO app.accounts (id, email) VALUES (999, 'USER1@example.com')")


def _lookalike_project(tmp_path: Path, db: TestDatabase):
    source = tmp_path / "spec_sources"
    write_spec(source, "V001_lookalikes.py", textwrap.dedent(LOOKALIKES_V1))
    write_spec(source, "V002_lookalikes_on_rows.py", textwrap.dedent(LOOKALIKES_V2))
    return make_project(tmp_path / "project", db.dsn, specs=source)


def test_lookalikes_generate_and_apply_with_the_executor(tmp_path, fresh_db: TestDatabase):
    project = _lookalike_project(tmp_path, fresh_db)
    first = project.run("apply", "--env", "test", "--to", "1")
    assert first.returncode == 0, first.stderr
    fresh_db.execute(ROWS)
    second = project.run("apply", "--env", "test")
    assert second.returncode == 0, second.stderr
    _check_applied(fresh_db)
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_lookalikes_apply_with_psql(tmp_path, fresh_db: TestDatabase):
    project = _lookalike_project(tmp_path, fresh_db)
    forward = {v: next(p for p in next(project.generated.glob(f"V{v}__*")).glob(f"V{v}__*.sql")
                       if "__rollback_" not in p.name) for v in ("001", "002")}
    fresh_db.psql_file(forward["001"])
    fresh_db.execute(ROWS)
    fresh_db.psql_file(forward["002"])
    _check_applied(fresh_db)


def test_configured_history_schema_frees_migrations(tmp_path):
    """With history_schema = "deploy_log", a spec may use a schema named migrations (and not deploy_log)."""
    work = tmp_path / "w"
    (work / "specs").mkdir(parents=True)
    (work / "specs" / "V001_x.py").write_text(_spec("001", "CreateTable(table='migrations.t', "
                                                           "columns=[Column(name='a', type='integer')]),"))
    (work / "dbdeploy.toml").write_text('history_schema = "deploy_log"\n')
    proc = subprocess.run([str(DBDEPLOY), "generate"], cwd=work, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if not k.startswith("DBDEPLOY")})
    assert proc.returncode == 0, proc.stderr
    assert any((work / "generated").glob("V001__*/V001__*.sql"))
    shutil.rmtree(work)


# --- RawSQL: what its statements write, read with pglast ------------------------------------------------------

@pytest.mark.parametrize("text, schemas", [
    ("DROP SCHEMA migrations CASCADE", {"migrations"}),
    ("ALTER TABLE app.t SET SCHEMA dbdeploy_backup", {"app", "dbdeploy_backup"}),
    ("CREATE FUNCTION migrations.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", {"migrations"}),
    ("COMMENT ON TABLE migrations.migration_log IS 'x'", {"migrations"}),
    ("COMMENT ON COLUMN migrations.migration_log.version IS 'x'", {"migrations"}),
    ("TRUNCATE migrations.migration_log", {"migrations"}),
    ("CREATE TRIGGER t BEFORE INSERT ON migrations.migration_log FOR EACH ROW EXECUTE FUNCTION app.f()",
     {"migrations"}),
    ("DROP TRIGGER t ON migrations.migration_log", {"migrations"}),
    ("GRANT SELECT ON migrations.migration_log TO PUBLIC", {"migrations"}),
    ("GRANT ALL ON ALL TABLES IN SCHEMA dbdeploy_backup TO PUBLIC", {"dbdeploy_backup"}),
    ("ALTER DEFAULT PRIVILEGES IN SCHEMA migrations GRANT SELECT ON TABLES TO PUBLIC", {"migrations"}),
    ("ALTER SCHEMA migrations RENAME TO old", {"migrations"}),
    ("DELETE FROM migrations.migration_log", {"migrations"}),
    ("WITH d AS (DELETE FROM migrations.migration_log RETURNING 1) SELECT 1", {"migrations"}),
    # data-modifying WITH queries of INSERT/UPDATE/DELETE write too, however deeply nested
    ("WITH d AS (DELETE FROM migrations.migration_log RETURNING version) INSERT INTO app.t SELECT * FROM d",
     {"migrations", "app"}),
    ("WITH d AS (UPDATE dbdeploy_backup.x SET a = 1 RETURNING a) UPDATE app.t SET a = d.a FROM d",
     {"dbdeploy_backup", "app"}),
    ("WITH d AS (WITH e AS (DELETE FROM migrations.migration_log RETURNING 1) INSERT INTO app.u SELECT * FROM e"
     " RETURNING 1) DELETE FROM app.t", {"migrations", "app"}),
    ("WITH r AS (SELECT * FROM migrations.migration_log) INSERT INTO app.t SELECT * FROM r", {"app"}),
    ("CREATE INDEX ON pg_catalog.pg_class (relname)", {"pg_catalog"}),
    ("DROP TYPE pg_catalog.int4", {"pg_catalog"}),
    # reads and unqualified names: nothing
    ("SELECT * FROM migrations.migration_log", set()),
    ("INSERT INTO app.t SELECT * FROM migrations.migration_log", {"app"}),
    ("UPDATE app.t SET a = 1 FROM migrations.migration_log m WHERE m.version = '1'", {"app"}),
    ("CREATE VIEW app.v AS SELECT relname FROM pg_catalog.pg_class", {"app"}),
    ("COMMENT ON COLUMN t.version IS 'x'", set()),
    ("DROP TABLE t", set()),
])
def test_raw_sql_objects_are_what_the_statements_write(text, schemas):
    from dbdeploy.ops.reserved import raw_sql_objects

    assert {schema for schema, _ in raw_sql_objects(text)} == schemas


# --- PostgreSQL 18's new built-ins are in the snapshot (scripts/update_builtin_catalog.py) ----------------

def test_functions_new_in_18_are_judged_like_postgresql_18_judges_them(pg_servers) -> None:
    """``uuidv7()`` (volatile) is refused in an index key and ``casefold``/``crc32`` (immutable) are
    accepted, as the embedded PostgreSQL 18 does; before 18 these were unknown names, left to the server."""
    from dbdeploy.sql.expression_rules import check_index_key
    from tests.pg import temporary_database

    with pytest.raises(ValueError, match=r"uuidv7\(\), which is VOLATILE"):
        check_index_key("uuidv7()")
    check_index_key("casefold(email)")
    check_index_key("crc32(email::bytea)")
    servers = [s for s in pg_servers if s.major >= 18]
    if not servers:
        pytest.skip("no PostgreSQL 18 or later in this session (uuidv7, casefold and crc32 are new in 18)")
    for server in servers:
        with temporary_database(server) as db:
            db.execute("CREATE TABLE t (email text)")
            with pytest.raises(psycopg.Error, match="IMMUTABLE"):
                db.execute("CREATE INDEX ON t ((uuidv7()))")
            db.execute("CREATE INDEX ON t ((casefold(email))); CREATE INDEX ON t ((crc32(email::bytea)))")
