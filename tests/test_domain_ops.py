"""CreateDomain (issue 13) beyond its round trip: an existing domain is compared with the spec through a
probe (PostgreSQL's spellings on both sides), accepted when equal and left by the rollback, refused when it
differs; the rollback refuses, naming it, while a column outside the migration uses the domain, and turns
the copies its own rollbacks made of domain columns into the base type."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dbdeploy import AddColumn, Column, CreateCompositeType, CreateDomain, CreateTable
from tests.bundles import write_bundles
from tests.pg import TestDatabase
from tests.roundtrip import catalog, expect_failure, run_sql_file
from tests.test_ops_roundtrip import ALTER_ROWS, mig

# The suite runs these focused tests on the primary server (the round trips of the same operations in
# tests/test_ops_roundtrip.py run on every server); DBDEPLOY_FULL=1 runs them on every server.
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

AMOUNT = CreateDomain(name="public.amount", type="numeric(12,2)", checks=["VALUE >= 0", "VALUE < 1000000"],
                      default="0", not_null=True)


def test_existing_domain_is_compared_with_the_spec(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db_each, fresh_db_each.connect()
    bundle = write_bundles([mig("001", "amount", AMOUNT)], tmp_path)["001"]
    # the same domain, written differently (CHECKs in another order, other spacing and case): accepted
    db.execute("CREATE DOMAIN public.amount AS NUMERIC(12,2) CHECK (VALUE < 1000000) DEFAULT 0"
               " CHECK (value >= 0) NOT NULL")
    s0 = catalog(conn)
    proc = run_sql_file(db, bundle.forward)
    assert "domain public.amount exists and matches the spec; left as it is" in proc.stderr, proc.stderr
    run_sql_file(db, bundle.rollback)
    assert catalog(conn) == s0
    assert db.execute("SELECT to_regtype('public.amount') IS NOT NULL") == [(True,)]

    db.execute("DROP DOMAIN public.amount; CREATE DOMAIN public.amount AS numeric(12,2) CHECK (VALUE >= 0)")
    expect_failure(db, bundle.forward, "domain public.amount exists but differs from the spec",
                   "expected numeric(12,2) | NOT NULL | DEFAULT 0")


def test_rollback_refuses_while_used_and_keeps_copies_in_the_base_type(fresh_db_each: TestDatabase,
                                                                       tmp_path: Path) -> None:
    db, conn = fresh_db_each, fresh_db_each.connect()
    db.execute(f"CREATE TABLE public.orders (id int PRIMARY KEY); INSERT INTO public.orders"
               f" SELECT g FROM generate_series(1, {ALTER_ROWS}) g")
    s0 = catalog(conn)
    bundle = write_bundles([mig("001", "amounts", AMOUNT, AddColumn(table="public.orders", column=Column(
        name="total", type="public.amount")), CreateTable(table="public.refunds", columns=[
            Column(name="id", type="integer", nullable=False), Column(name="amount", type="public.amount")],
            primary_key=["id"]))], tmp_path)["001"]
    run_sql_file(db, bundle.forward)
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE public.orders SET total = -1 WHERE id = 1")
    db.execute("UPDATE public.orders SET total = id * 1.5")
    db.execute("INSERT INTO public.refunds SELECT g, g FROM generate_series(1, 50) g")
    db.execute("CREATE TABLE public.invoices (id int, total public.amount)")
    expect_failure(db, bundle.rollback, "refusing to drop domain public.amount", "table public.invoices")
    db.execute("DROP TABLE public.invoices")
    run_sql_file(db, bundle.rollback)
    assert catalog(conn) == s0
    types = db.execute("SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a JOIN pg_class c"
                       " ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                       " WHERE n.nspname = 'dbdeploy_backup' AND a.attname IN ('total', 'amount') ORDER BY 1")
    assert types == [("numeric(12,2)",), ("numeric(12,2)",)], types


def test_composite_type_existing_and_dependants(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """CreateCompositeType: an identical existing type is accepted and kept by the rollback, a different one
    stops the forward; a type this version created is not dropped while a column outside it uses it."""
    db, conn = fresh_db_each, fresh_db_each.connect()
    op = CreateCompositeType(name="public.money_amount", attributes=[
        Column(name="amount", type="numeric(12,2)"), Column(name="currency", type="char(3)", collation="C")])
    bundle = write_bundles([mig("001", "money", op)], tmp_path)["001"]
    db.execute('CREATE TYPE public.money_amount AS (amount NUMERIC(12, 2), currency CHARACTER(3) COLLATE "C")')
    s0 = catalog(conn)
    proc = run_sql_file(db, bundle.forward)
    assert "composite type public.money_amount exists and matches the spec; left as it is" in proc.stderr
    run_sql_file(db, bundle.rollback)
    assert catalog(conn) == s0
    db.execute("DROP TYPE public.money_amount; CREATE TYPE public.money_amount AS (amount numeric, currency text)")
    expect_failure(db, bundle.forward, "composite type public.money_amount exists but differs from the spec",
                   "it is (amount numeric, currency text)")
    db.execute("DROP TYPE public.money_amount")
    run_sql_file(db, bundle.forward)
    db.execute("CREATE TABLE public.prices (id int, price public.money_amount);"
               " INSERT INTO public.prices SELECT g, ROW(g::numeric(12,2), 'EUR'::char(3))::public.money_amount"
               " FROM generate_series(1, 100) g")
    expect_failure(db, bundle.rollback, "refusing to drop type public.money_amount", "table public.prices")
    assert db.execute("SELECT count(*) FROM public.prices WHERE (price).currency = 'EUR'") == [(100,)]
    db.execute("DROP TABLE public.prices")
    run_sql_file(db, bundle.rollback)
    assert db.execute("SELECT to_regtype('public.money_amount')") == [(None,)]
