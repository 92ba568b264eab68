"""Every DSL operation on a real PostgreSQL (15 and 16): forward → forward → rollback → rollback → forward.

The table-driven test renders each case's migrations exactly like ``dbdeploy generate``, runs the
bundles with ``psql -v ON_ERROR_STOP=1 -f`` and compares, at each point, the catalog snapshot
(``tests/catalog.py``) and the rows of the tables the case names:

    s0 = before; forward → s1; forward again == s1 (rows unchanged); rollback == s0 (rows as at s0);
    rollback again == s0; forward == s1.

``migrations.migration_log`` must say 'completed' after each forward and 'rolled_back' after each
rollback. Earlier migrations of a case (e.g. the one that created the index a DropIndex removes)
are applied during setup, before s0; only the last migration goes through the round trip.

The focused tests below cover behaviour a snapshot comparison cannot see: INVALID index rebuild,
optional FKs added on a later run, a missing required extension, refusal instead of CASCADE,
ownership (rollback drops only what the migration created), backup copies and their privileges,
a resumed backfill and the checksum guard.

psql runs here with ``dbdeploy.batch_time = 0`` (PGOPTIONS): every batch has ``batch_size`` rows,
so the cursor tables' batch counts and where a failing batch stops are known in advance; how
batches adapt to time is tested in tests/test_batch_time.py.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbdeploy import (
    AddCheck,
    AddColumn,
    AddEnumValue,
    AddForeignKey,
    AddPrimaryKey,
    AddUnique,
    AlterColumnType,
    AlterSequence,
    Backfill,
    Check,
    Column,
    CommentOn,
    Contract,
    CreateCompositeType,
    CreateDomain,
    CreateEnum,
    CreateFunction,
    CreateIndex,
    CreateMaterializedView,
    CreatePartition,
    CreateProcedure,
    CreateSchema,
    CreateSequence,
    CreateTable,
    CreateTrigger,
    CreateView,
    DropColumn,
    DropConstraint,
    DropDefault,
    DropEnum,
    DropFunction,
    DropIndex,
    DropNotNull,
    DropTable,
    DropTrigger,
    DropView,
    Exclusion,
    ForeignKey,
    Index,
    Migration,
    RawSQL,
    RefreshMaterializedView,
    RenameColumn,
    RenameConstraint,
    RenameEnumValue,
    RenameIndex,
    RenameTable,
    ReplaceFunction,
    ReplaceView,
    RequireExtension,
    SeedRows,
    SetDefault,
    SetNotNull,
    SetSequenceValue,
    Unique,
)
from tests.bundles import write_bundles
from tests.catalog import diff
from tests.pg import TestDatabase
from tests.roundtrip import (
    backup_tables,
    catalog,
    constraint,
    data_snapshot,
    dict_rows,
    expect_failure,
    index_valid,
    log_status,
    public_acl_entries,
    relation_exists,
    run_sql_file,
    table_public_acl_entries,
)


@pytest.fixture(autouse=True)
def _fixed_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """psql sessions run with dbdeploy.batch_time = 0 (see the module docstring)."""
    monkeypatch.setenv("PGOPTIONS", "-c dbdeploy.batch_time=0")

Rows = dict[str, list[dict[str, Any]] | None]
CaseCheck = Callable[[psycopg.Connection, Rows], None]


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One round trip.

    ``migrations``: the migrations (or a builder taking a connection, for server-dependent specs);
    all but the last are applied during setup, the last one is round-tripped.
    ``setup`` runs before the earlier migrations, ``populate`` after them; both before s0.
    ``data``: table → ORDER BY column(s) of the tables whose rows are compared.
    ``after_forward`` / ``after_rollback`` get the connection and the rows at s0.
    """

    id: str
    migrations: list[Migration] | Callable[[psycopg.Connection], list[Migration]]
    setup: str = ""
    populate: str = ""
    data: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    catalog_changes: bool = True       # s1 must differ from s0
    data_changes: bool = False         # the rows of some table in ``data`` must differ at s1
    same_rows_on_reforward: bool = True  # False when forward writes volatile values (gen_random_uuid())
    after_forward: CaseCheck | None = None
    after_rollback: CaseCheck | None = None


def mig(version: str, name: str, *operations) -> Migration:
    return Migration(version=version, name=name, operations=list(operations))


#: Rows in the populated tables of the cases that change existing objects (alter, rename, drop
#: constraint, primary key): 100,000 with DBDEPLOY_FULL=1 (the full matrix, README "Testing"),
#: 2,000 in the default suite so CI stays inside its budget.
ALTER_ROWS = 100_000 if os.environ.get("DBDEPLOY_FULL") == "1" else 2_000

ACCOUNTS = """
CREATE TABLE public.teams (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO public.teams SELECT g, 'team ' || g FROM generate_series(1, 10) g;
CREATE TABLE public.accounts (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email text,
    active boolean NOT NULL DEFAULT true,
    team_id integer,
    prefs jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
);
INSERT INTO public.accounts (id, name, email, active, team_id, prefs, created_at)
SELECT g, 'account ' || g, 'user' || g || '@example.com', g % 4 <> 0,
       CASE WHEN g % 5 = 0 THEN NULL ELSE g % 10 + 1 END,
       jsonb_build_object('n', g, 'tags', jsonb_build_array('t' || g % 3)),
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour'
FROM generate_series(1, 300) g;
"""


def _assert_all(conn: psycopg.Connection, query: str, expected: Any, params: Any = None) -> None:
    got = conn.execute(query, params).fetchall()
    assert got == expected, f"{query}\n  got {got!r}\n  expected {expected!r}"


# -- create_schema / require_extension -----------------------------------------------------------

def _schema_forward(conn, rows0):
    _assert_all(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'inventory'", [(1,)])
    _assert_all(conn, "SELECT object_type, object_name FROM migrations.migration_objects ORDER BY 1",
                [("schema", "inventory"), ("table", "inventory.bins")])


def _schema_rollback(conn, rows0):
    _assert_all(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'inventory'", [(0,)])
    _assert_all(conn, "SELECT count(*) FROM migrations.migration_objects", [(0,)])


EXTENSION_CANDIDATES = ("pg_trgm", "citext", "hstore", "btree_gin", "vector")


def _pick_extension(conn: psycopg.Connection) -> str:
    row = conn.execute(
        "SELECT name FROM pg_available_extensions WHERE name = ANY(%s) AND installed_version IS NULL"
        " ORDER BY array_position(%s, name::text) LIMIT 1",
        (list(EXTENSION_CANDIDATES), list(EXTENSION_CANDIDATES))).fetchone()
    if row is None:
        pytest.skip(f"none of {EXTENSION_CANDIDATES} is available on this server")
    return row[0]


def _extension_migrations(conn: psycopg.Connection) -> list[Migration]:
    return [mig("001", "create_extension", RequireExtension(name=_pick_extension(conn), create=True))]


def _extension_forward(conn, rows0):
    _assert_all(conn, "SELECT e.extname = o.object_name FROM pg_extension e"
                      " JOIN migrations.migration_objects o ON o.object_type = 'extension'"
                      " WHERE e.extname = ANY(%s)", [(True,)], (list(EXTENSION_CANDIDATES),))


# -- create_table --------------------------------------------------------------------------------

SHOP = """
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id bigint PRIMARY KEY, email text NOT NULL UNIQUE);
INSERT INTO shop.customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 20) g;
"""

CREATE_ORDERS = CreateTable(
    table="shop.orders",
    comment="customer orders",
    columns=[
        Column(name="id", type="bigint", identity=True, comment="surrogate key"),
        Column(name="customer_id", type="bigint", nullable=False),
        Column(name="referrer_id", type="bigint"),
        Column(name="code", type="text", nullable=False),
        Column(name="status", type="text", nullable=False, default="'new'"),
        Column(name="qty", type="integer", nullable=False, default="1"),
        Column(name="total", type="numeric(12,2)", default="0"),
        Column(name="tags", type="text[]", nullable=False, default="'{}'"),
        Column(name="attrs", type="jsonb", nullable=False, default="'{}'::jsonb"),
        Column(name="created_at", type="timestamptz", nullable=False, default="now()"),
        Column(name="note", type="text", comment="free text; 'quoted'"),
    ],
    primary_key=["id"],
    foreign_keys=[
        ForeignKey(columns=["customer_id"], references="shop.customers", ref_columns=["id"], on_delete="CASCADE"),
        # optional, target present: added NOT VALID in its own step, then validated
        ForeignKey(columns=["referrer_id"], references="shop.customers", ref_columns=["id"], optional=True,
                   name="orders_referrer_fk"),
    ],
    uniques=[Unique(columns=["code"]), Unique(columns=["customer_id", "code"], name="orders_customer_code_key")],
    checks=[Check(expression="qty > 0"), Check(expression="total >= 0", name="orders_total_nonneg")],
    indexes=[
        Index(columns=["customer_id", "created_at DESC"]),
        Index(columns=["status"], where="status <> 'done'", name="orders_open_status_idx"),
        Index(columns=["lower(code)"], unique=True, name="orders_code_lower_idx"),
        Index(columns=["attrs"], method="gin"),
        Index(columns=["tags"], method="gin"),
        Index(columns=["customer_id"], include=["total", "status"], name="orders_customer_cover_idx"),
    ],
)

CREATE_ORDER_LINES = CreateTable(
    table="shop.order_lines",
    columns=[
        Column(name="order_id", type="bigint"),
        Column(name="line_no", type="integer"),
        Column(name="sku", type="text", nullable=False),
        Column(name="parent_line", type="integer"),
    ],
    primary_key=["order_id", "line_no"],
    foreign_keys=[
        ForeignKey(columns=["order_id"], references="shop.orders", ref_columns=["id"]),
        ForeignKey(columns=["order_id", "parent_line"], references="shop.order_lines",
                   ref_columns=["order_id", "line_no"], name="order_lines_parent_fk"),
    ],
)


def _create_table_forward(conn, rows0):
    for name in ("orders_customer_id_fkey", "orders_referrer_fk", "orders_code_key", "orders_total_nonneg"):
        found = constraint(conn, "shop.orders", name)
        assert found is not None and found[1], f"{name} missing or not validated: {found}"
    assert constraint(conn, "shop.orders", "orders_customer_id_fkey")[0].endswith("ON DELETE CASCADE")
    _assert_all(conn, "SELECT attidentity FROM pg_attribute WHERE attrelid = 'shop.orders'::regclass"
                      " AND attname = 'id'", [("d",)])
    _assert_all(conn, "SELECT obj_description('shop.orders'::regclass, 'pg_class'),"
                      " col_description('shop.orders'::regclass, 11)", [("customer orders", "free text; 'quoted'")])
    # the new table works: defaults, identity, FK, partial/expression unique index
    conn.execute("BEGIN")
    try:
        conn.execute("INSERT INTO shop.orders (customer_id, code) VALUES (1, 'A-1')")
        _assert_all(conn, "SELECT id, status, qty, total, tags, attrs FROM shop.orders",
                    [(1, "new", 1, decimal.Decimal("0.00"), [], {})])
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO shop.orders (customer_id, code) VALUES (2, 'a-1')")
    finally:
        conn.execute("ROLLBACK")
    _assert_all(conn, "SELECT count(*) FROM shop.orders", [(0,)])


# -- add_column ----------------------------------------------------------------------------------

def _nullable_forward(conn, rows0):
    _assert_all(conn, "SELECT count(*) FROM public.accounts WHERE nickname IS NOT NULL", [(0,)])
    _assert_all(conn, "SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute"
                      " WHERE attrelid = 'public.accounts'::regclass AND attname = 'nickname'",
                [("character varying(40)", False)])


def _constant_default_forward(conn, rows0):
    _assert_all(conn, "SELECT tier, count(*) FROM public.accounts GROUP BY 1", [("basic", 300)])
    _assert_all(conn, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass"
                      " AND attname = 'tier'", [(True,)])


EVENTS_TABLE = CreateTable(
    table="public.events",
    columns=[Column(name="id", type="bigint", identity=True), Column(name="payload", type="text")],
    primary_key=["id"],
)


def _volatile_default_forward(conn, rows0):
    _assert_all(conn, "SELECT count(*), count(DISTINCT event_uuid), count(event_uuid) FROM public.events",
                [(2500, 2500, 2500)])
    _assert_all(conn, "SELECT attnotnull, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
                      " JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                      " WHERE a.attrelid = 'public.events'::regclass AND a.attname = 'event_uuid'",
                [(True, "gen_random_uuid()")])
    # no helper CHECK (c IS NOT NULL) left behind (PostgreSQL 18 also lists each NOT NULL as contype 'n')
    _assert_all(conn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.events'::regclass"
                      " AND contype <> 'n'", [(1,)])


ORDERS_CENTS = """
CREATE TABLE public.invoices (id integer PRIMARY KEY, amount_cents integer NOT NULL);
INSERT INTO public.invoices SELECT g, g * 7 FROM generate_series(1, 1200) g;
"""


def _not_null_backfill_forward(conn, rows0):
    _assert_all(conn, "SELECT count(*) FROM public.invoices WHERE amount IS DISTINCT FROM amount_cents / 100.0",
                [(0,)])
    _assert_all(conn, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'public.invoices'::regclass"
                      " AND attname = 'amount'", [(True,)])
    _assert_all(conn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.invoices'::regclass"
                      " AND contype = 'c'", [(0,)])


# -- add constraints / indexes -------------------------------------------------------------------

def _index_forward(conn, rows0):
    for name in ("public.accounts_active_email_idx", "public.accounts_prefs_idx", "public.accounts_recent_idx"):
        assert index_valid(conn, name) is True, name


def _fk_forward(conn, rows0):
    assert constraint(conn, "public.accounts", "accounts_team_fk") == (
        "FOREIGN KEY (team_id) REFERENCES teams(id) ON DELETE SET NULL", True)


def _check_forward(conn, rows0):
    assert constraint(conn, "public.accounts", "accounts_name_not_blank") == (
        "CHECK ((char_length(name) > 0))", True)


def _unique_forward(conn, rows0):
    assert constraint(conn, "public.accounts", "accounts_email_key") == ("UNIQUE (email)", True)
    assert index_valid(conn, "public.accounts_email_key") is True


# -- backfill ------------------------------------------------------------------------------------

SCORES = """
CREATE TABLE public.scores (
    region text NOT NULL,
    n integer NOT NULL,
    score integer NOT NULL,
    grade text,
    PRIMARY KEY (region, n)
);
INSERT INTO public.scores
SELECT r, g, (g * 37 + length(r)) % 100, CASE WHEN g % 7 = 0 THEN NULL ELSE 'g' || g % 5 END
FROM unnest(ARRAY['east', 'north', 'south', 'west']) r, generate_series(1, 250) g;
"""
SCORES_BATCH = 128


def _scores_expected(rows0: Rows) -> list[dict[str, Any]]:
    out = []
    for row in rows0["public.scores"]:
        row = dict(row)
        if row["score"] < 50:
            row["score"] *= 2
            row["grade"] = "low:" + (row["grade"] if row["grade"] is not None else "none")
        out.append(row)
    return out


def _backfill_forward(conn, rows0):
    got = dict_rows(conn, "public.scores", ("region", "n"))
    assert got == _scores_expected(rows0), "backfilled values differ from SET applied once to WHERE-matching rows"
    changed = sum(1 for r in rows0["public.scores"] if r["score"] < 50)
    assert 0 < changed < 1000
    progress = backup_tables(conn, "v001_op1_scores_progress")
    assert progress == ["v001_op1_scores_progress"]
    _assert_all(conn, "SELECT region, n, dbdeploy_rows_done, dbdeploy_batches_done"
                      " FROM dbdeploy_backup.v001_op1_scores_progress",
                [(None, None, changed, math.ceil(1000 / SCORES_BATCH))])


def _backfill_rollback(conn, rows0):
    assert dict_rows(conn, "public.scores", ("region", "n")) == rows0["public.scores"]
    assert backup_tables(conn, "v001_op1_scores%") == []


# -- seed_rows -----------------------------------------------------------------------------------

SETTINGS = """
CREATE TABLE public.settings (
    key text PRIMARY KEY,
    value jsonb,
    tags jsonb,
    note text,
    starts date,
    at timestamptz,
    amount numeric(10,2),
    enabled boolean NOT NULL DEFAULT true,
    uid uuid
);
INSERT INTO public.settings (key, value, note) VALUES ('theme', '{"color": "blue"}', 'pre-existing');
"""
SEED_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")
SEED_AT = dt.datetime(2024, 1, 1, 12, 30, tzinfo=dt.UTC)
SEEDS = [
    {"key": "theme", "value": {"color": "red"}, "note": "from the seed"},  # conflicts: must stay blue
    {"key": "limits", "value": {"max": 10, "nested": {"a": [1, 2, None]}, "s": "it's"}, "tags": ["x", "y"],
     "note": None, "starts": dt.date(2024, 2, 29), "at": SEED_AT, "amount": decimal.Decimal("12.50"),
     "enabled": False, "uid": SEED_UUID},
    {"key": "empty", "value": {}, "note": "it's quoted; -- not a comment"},
]


def _seed_forward(conn, rows0):
    got = {r["key"]: r for r in dict_rows(conn, "public.settings", "key")}
    assert set(got) == {"theme", "limits", "empty"}
    assert got["theme"] == rows0["public.settings"][0]
    assert got["limits"] == {"key": "limits", "value": {"max": 10, "nested": {"a": [1, 2, None]}, "s": "it's"},
                             "tags": ["x", "y"], "note": None, "starts": dt.date(2024, 2, 29), "at": SEED_AT,
                             "amount": decimal.Decimal("12.50"), "enabled": False, "uid": SEED_UUID}
    assert got["empty"] == {"key": "empty", "value": {}, "tags": None, "note": "it's quoted; -- not a comment",
                            "starts": None, "at": None, "amount": None, "enabled": True, "uid": None}


# -- drop_index / drop_column / drop_table -------------------------------------------------------

def _drop_index_forward(conn, rows0):
    for name in ("public.widgets_color_idx", "public.widgets_live_idx"):
        assert not relation_exists(conn, name), name
    assert relation_exists(conn, "public.widgets_size_idx")


PRODUCTS = """
CREATE TABLE public.currencies (code text PRIMARY KEY);
INSERT INTO public.currencies VALUES ('EUR'), ('USD');
CREATE TABLE public.products (
    id integer PRIMARY KEY,
    sku text NOT NULL,
    price numeric(10,2) NOT NULL DEFAULT 0,
    currency text REFERENCES public.currencies (code),
    CONSTRAINT products_price_check CHECK (price >= 0),
    CONSTRAINT products_sku_price_key UNIQUE (sku, price)
);
ALTER TABLE public.products ADD CONSTRAINT products_price_cap CHECK (price < 1000) NOT VALID;
CREATE INDEX products_price_idx ON public.products (price);
CREATE INDEX products_priced_sku_idx ON public.products (sku) WHERE price > 0;
CREATE INDEX products_price_rounded_idx ON public.products ((round(price)));
INSERT INTO public.products
SELECT g, 'sku-' || g, (g % 97) * 1.25, (ARRAY[NULL, 'EUR', 'USD'])[g % 3 + 1]
FROM generate_series(1, 1500) g;
"""


def _drop_column_forward(conn, rows0):
    _assert_all(conn, "SELECT attname FROM pg_attribute WHERE attrelid = 'public.products'::regclass"
                      " AND attnum > 0 AND NOT attisdropped ORDER BY attnum", [("id",), ("sku",)])
    for name in ("products_price_idx", "products_priced_sku_idx", "products_price_rounded_idx",
                 "products_sku_price_key"):
        assert not relation_exists(conn, f"public.{name}"), name


def _drop_column_rollback(conn, rows0):
    _assert_all(conn, "SELECT attnotnull, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
                      " JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                      " WHERE a.attrelid = 'public.products'::regclass AND a.attname = 'price'",
                [(True, "0")])
    assert constraint(conn, "public.products", "products_price_cap") == ("CHECK ((price < (1000)::numeric)) NOT VALID",
                                                                         False)
    assert constraint(conn, "public.products", "products_currency_fkey")[1] is True


LEGACY = """
CREATE TABLE public.regions (code text PRIMARY KEY);
INSERT INTO public.regions VALUES ('n'), ('s');
CREATE TABLE public.legacy_orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region text NOT NULL REFERENCES public.regions (code),
    total numeric CHECK (total >= 0),
    ref text UNIQUE,
    created timestamptz DEFAULT now()
);
COMMENT ON TABLE public.legacy_orders IS 'old orders';
COMMENT ON COLUMN public.legacy_orders.ref IS 'external reference';
CREATE INDEX legacy_orders_region_idx ON public.legacy_orders (region, created DESC);
INSERT INTO public.legacy_orders (region, total, ref, created)
SELECT CASE WHEN g % 2 = 0 THEN 'n' ELSE 's' END, g * 1.5, 'ref-' || g,
       timestamptz '2023-06-01 00:00:00+00' + g * interval '1 minute'
FROM generate_series(1, 800) g;
"""


def _drop_table_forward(conn, rows0):
    assert not relation_exists(conn, "public.legacy_orders")
    # set aside, whole, in the pre-existing backup schema that PUBLIC cannot use
    assert relation_exists(conn, "dbdeploy_backup.v001_op1_public_legacy_orders")
    _assert_all(conn, "SELECT count(*) FROM dbdeploy_backup.v001_op1_public_legacy_orders",
                [(len(rows0["public.legacy_orders"]),)])
    _assert_all(conn, "SELECT has_schema_privilege('public', 'dbdeploy_backup', 'USAGE')", [(False,)])
    # no schema of its own: a role without CREATE on the database can drop tables
    _assert_all(conn, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'dbdeploy\\_backup\\_%'", [(0,)])


def _drop_table_rollback(conn, rows0):
    _assert_all(conn, "SELECT last_value FROM pg_sequences WHERE schemaname = 'public'"
                      " AND sequencename = 'legacy_orders_id_seq'", [(800,)])
    assert backup_tables(conn, "%legacy_orders%") == []
    _assert_all(conn, "SELECT count(*) FROM dbdeploy_backup.dropped_tables", [(0,)])


# -- raw_sql -------------------------------------------------------------------------------------

def _raw_forward(conn, rows0):
    _assert_all(conn, "SELECT count(*) FROM public.active_accounts", [(225,)])
    assert index_valid(conn, "public.accounts_name_idx") is True
    _assert_all(conn, "SELECT id, name FROM public.teams WHERE id > 10", [(99, "raw team")])


# -- set/drop NOT NULL, set/drop default (issue 12) -------------------------------------------------

PROFILES = f"""
CREATE TABLE public.profiles (
    id integer PRIMARY KEY,
    handle text,
    bio text NOT NULL DEFAULT '',
    country text DEFAULT 'NL',
    score integer,
    visits integer NOT NULL,
    joined timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.profiles (id, handle, bio, country, score, visits, joined)
SELECT g, 'user_' || g, CASE WHEN g % 7 = 0 THEN '' ELSE 'bio of ' || g END,
       CASE WHEN g % 11 = 0 THEN NULL ELSE (ARRAY['NL', 'DE', 'FR'])[g % 3 + 1] END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE g % 100 END, g % 1000,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
FROM generate_series(1, {ALTER_ROWS}) g;
"""


# -- alter_column_type ------------------------------------------------------------------------------

CONTACTS = f"""
CREATE TABLE public.contacts (
    id integer PRIMARY KEY,
    email varchar(40) NOT NULL,
    amount numeric(8,2) NOT NULL DEFAULT 0 CHECK (amount >= 0),
    note varchar(20)
);
CREATE INDEX contacts_email_idx ON public.contacts (email);
INSERT INTO public.contacts SELECT g, 'c' || g || '@example.com', (g % 1000) + 0.25,
    CASE WHEN g % 7 = 0 THEN NULL ELSE 'note ' || g END
FROM generate_series(1, {ALTER_ROWS}) g;
"""


# -- constraint and column options (issue 12) ---------------------------------------------------

ROOMS = """
CREATE TABLE public.rooms (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO public.rooms SELECT g, 'room ' || g FROM generate_series(1, 50) g;
"""

CREATE_BOOKINGS = CreateTable(
    table="public.bookings",
    columns=[
        Column(name="id", type="bigint", identity="always"),
        Column(name="room_id", type="integer", nullable=False),
        Column(name="during", type="int4range", nullable=False),
        Column(name="code", type="text", collation="C"),
        Column(name="guest_email", type="text"),
        Column(name="nights", type="integer", generated="upper(during) - lower(during)"),
        Column(name="cancelled", type="boolean", nullable=False, default="false"),
    ],
    primary_key=["id"], primary_key_name="bookings_pk",
    foreign_keys=[ForeignKey(columns=["room_id"], references="public.rooms", ref_columns=["id"], on_update="cascade",
                             on_delete="restrict", match="full", deferrable=True, initially_deferred=True)],
    uniques=[Unique(columns=["code"], nulls_not_distinct=True)],
    exclusions=[Exclusion(elements=[("during", "&&")], where="NOT cancelled", name="bookings_no_overlap")],
    indexes=[Index(columns=["guest_email"], unique=True, nulls_not_distinct=True)],
)


def _bookings_forward(conn, rows0):
    assert constraint(conn, "public.bookings", "bookings_room_id_fkey") == (
        "FOREIGN KEY (room_id) REFERENCES rooms(id) MATCH FULL ON UPDATE CASCADE ON DELETE RESTRICT DEFERRABLE "
        "INITIALLY DEFERRED", True)
    assert constraint(conn, "public.bookings", "bookings_pk") == ("PRIMARY KEY (id)", True)
    assert constraint(conn, "public.bookings", "bookings_code_key") == ("UNIQUE NULLS NOT DISTINCT (code)", True)
    assert constraint(conn, "public.bookings", "bookings_no_overlap") == (
        "EXCLUDE USING gist (during WITH &&) WHERE ((NOT cancelled))", True)
    _assert_all(conn, "SELECT attname::text, attidentity, attgenerated, (SELECT collname FROM pg_collation"
                      " WHERE oid = attcollation) FROM pg_attribute WHERE attrelid = 'public.bookings'::regclass"
                      " AND attname IN ('id', 'nights', 'code') ORDER BY attnum",
                [("id", "a", "", None), ("code", "", "", "C"), ("nights", "", "s", None)])
    conn.execute("BEGIN")
    try:
        # the FK is checked at commit (INITIALLY DEFERRED): a row for a missing room is accepted until then
        conn.execute("INSERT INTO public.bookings (room_id, during, code) VALUES (999, '[1,3)', NULL)")
        conn.execute("UPDATE public.bookings SET room_id = 1")
        conn.execute("INSERT INTO public.bookings (room_id, during, code, cancelled, guest_email)"
                     " VALUES (2, '[2,9)', 'b', true, 'g@example.com')")
        _assert_all(conn, "SELECT nights FROM public.bookings ORDER BY id", [(2,), (7,)])
        for statement, error in [
                ("INSERT INTO public.bookings (room_id, during, code, guest_email) VALUES (3, '[2,4)', 'e', 'e')",
                 psycopg.errors.ExclusionViolation),
                ("INSERT INTO public.bookings (room_id, during, code, guest_email) VALUES (3, '[7,8)', NULL, 'x')",
                 psycopg.errors.UniqueViolation),
                ("INSERT INTO public.bookings (room_id, during, code) VALUES (3, '[7,8)', 'c')",
                 psycopg.errors.UniqueViolation),
                ("INSERT INTO public.bookings (id, room_id, during, code, guest_email)"
                 " VALUES (5, 3, '[8,9)', 'i', 'i')",
                 psycopg.errors.GeneratedAlways)]:
            conn.execute("SAVEPOINT s")
            with pytest.raises(error):
                conn.execute(statement)
            conn.execute("ROLLBACK TO SAVEPOINT s")
        conn.execute("UPDATE public.rooms SET id = 1001 WHERE id = 1")      # ON UPDATE CASCADE
        _assert_all(conn, "SELECT count(*) FROM public.bookings WHERE room_id = 1001", [(1,)])
    finally:
        conn.execute("ROLLBACK")


MEMBERS = f"""
CREATE TABLE public.clubs (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO public.clubs SELECT g, 'club ' || g FROM generate_series(1, 20) g;
CREATE TABLE public.members (id integer PRIMARY KEY, club_id integer, legacy_club_id integer, nick text,
                             email text);
INSERT INTO public.members
SELECT g, CASE WHEN g % 9 = 0 THEN NULL ELSE 1 + g % 20 END,
       CASE WHEN g % 7 = 0 THEN 5000 + g ELSE 1 + g % 20 END,      -- orphans: left NOT VALID on purpose
       CASE WHEN g = 1 THEN NULL ELSE 'nick' || g END, CASE WHEN g = 2 THEN NULL ELSE 'm' || g || '@example.com' END
FROM generate_series(1, {ALTER_ROWS}) g;
"""


def _column_facts(conn, column: str) -> tuple:
    return conn.execute("SELECT a.attnotnull, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
                        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                        " WHERE a.attrelid = 'public.profiles'::regclass AND a.attname = %s", [column]).fetchone()


def _no_helper_checks(conn) -> None:
    _assert_all(conn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.profiles'::regclass"
                      " AND contype = 'c'", [(0,)])


def _set_not_null_forward(conn, rows0):
    assert _column_facts(conn, "handle") == (True, None)
    assert _column_facts(conn, "visits") == (True, None)
    _no_helper_checks(conn)


def _set_not_null_rollback(conn, rows0):
    assert _column_facts(conn, "handle") == (False, None)
    assert _column_facts(conn, "visits") == (True, None)    # NOT NULL before the version: left so


def _drop_not_null_rollback(conn, rows0):
    assert _column_facts(conn, "bio") == (True, "''::text")
    _no_helper_checks(conn)


def _set_default_forward(conn, rows0):
    assert _column_facts(conn, "country") == (False, "'DE'::text")
    assert _column_facts(conn, "score") == (False, "(floor((random() * (10)::double precision)))::integer")
    assert backup_tables(conn, "v001_op%default") == ["v001_op1_profiles_country_default",
                                                      "v001_op2_profiles_score_default"]


def _set_default_rollback(conn, rows0):
    assert _column_facts(conn, "country") == (False, "'NL'::text")
    assert _column_facts(conn, "score") == (False, None)
    assert backup_tables(conn, "v001_op%default") == []


def _drop_default_forward(conn, rows0):
    assert _column_facts(conn, "joined") == (True, None)
    assert _column_facts(conn, "handle") == (False, None)


def _drop_default_rollback(conn, rows0):
    assert _column_facts(conn, "joined") == (True, "now()")
    assert _column_facts(conn, "handle") == (False, None)
    assert backup_tables(conn, "v001_op%default") == []
# -- constraints: renames, DropConstraint, AddPrimaryKey (issue 12) --------------------------------

#: Pre-existing tables (not made by the specs) with ALTER_ROWS rows: every kind of constraint, an index,
#: and a table without a primary key.
CLIENTS = f"""
CREATE TABLE public.clients (
    id integer CONSTRAINT clients_pkey PRIMARY KEY,
    email text NOT NULL CONSTRAINT clients_email_key UNIQUE,
    score integer NOT NULL CONSTRAINT clients_score_check CHECK (score >= 0),
    region text
);
INSERT INTO public.clients SELECT g, 'client' || g || '@example.com', g % 97, 'r' || g % 7
FROM generate_series(1, {ALTER_ROWS}) g;
CREATE TABLE public.client_orders (
    id integer PRIMARY KEY,
    client_id integer CONSTRAINT client_orders_client_fk REFERENCES public.clients (id) ON DELETE CASCADE,
    amount numeric(12,2) NOT NULL
);
INSERT INTO public.client_orders SELECT g, g % {ALTER_ROWS} + 1, g * 1.5 FROM generate_series(1, {ALTER_ROWS}) g;
CREATE INDEX client_orders_amount_idx ON public.client_orders (amount DESC) WITH (fillfactor = 80);
CREATE TABLE public.audit_log (
    entry_id bigint CONSTRAINT audit_log_pkey PRIMARY KEY,
    happened_at timestamptz NOT NULL,
    note text
);
INSERT INTO public.audit_log SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', 'n' || g
FROM generate_series(1, {ALTER_ROWS}) g;
CREATE TABLE public.legacy_events (event_id bigint, source text, payload text);
INSERT INTO public.legacy_events SELECT g, 's' || g % 5, 'p' || g FROM generate_series(1, {ALTER_ROWS}) g;
"""

BOOKINGS = f"""
CREATE TABLE public.bookings (
    id integer PRIMARY KEY,
    during tstzrange NOT NULL,
    cancelled boolean NOT NULL DEFAULT false,
    CONSTRAINT bookings_no_overlap EXCLUDE USING gist (during WITH &&) WHERE (NOT cancelled)
);
INSERT INTO public.bookings SELECT g, tstzrange(timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour',
    timestamptz '2024-01-01 00:00:00+00' + (g + 1) * interval '1 hour'), g % 10 = 0
FROM generate_series(1, {ALTER_ROWS}) g;
"""

CLIENT_DATA = {"public.clients": "id", "public.client_orders": "id"}

#: A table the specs create (unique constraint and primary key known to them), for the concurrent rebuild.
CREATE_MEMBERS = CreateTable(
    table="public.members",
    columns=[Column(name="id", type="bigint", nullable=False), Column(name="handle", type="text", nullable=False),
             Column(name="team", type="text")],
    primary_key=["id"], uniques=[Unique(columns=["handle"], name="members_handle_key")])
MEMBER_ROWS = f"INSERT INTO public.members SELECT g, 'h' || g, 't' || g % 9 FROM generate_series(1, {ALTER_ROWS}) g;"


def _constraints_of(conn, table: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass"
                                       " ORDER BY conname", [table]).fetchall()]


def _rename_index_forward(conn, rows0):
    assert index_valid(conn, "public.client_orders_by_amount_idx") is True
    assert not relation_exists(conn, "public.client_orders_amount_idx")


def _rename_constraint_forward(conn, rows0):
    names = _constraints_of(conn, "public.clients")
    assert "clients_email_unique" in names and "score_not_negative" in names
    assert "clients_email_key" not in names and "clients_score_check" not in names
    assert index_valid(conn, "public.clients_email_unique") is True   # the index is renamed with it


def _dropped(table: str, name: str) -> CaseCheck:
    def check(conn, rows0):
        assert name not in _constraints_of(conn, table)
        _assert_all(conn, "SELECT count(*) FROM dbdeploy_backup.dropped_constraints WHERE version = '001'"
                          " AND table_name = %s AND constraint_name = %s", [(1,)], [table, name])
    return check


def _restored(table: str, name: str, definition: str) -> CaseCheck:
    def check(conn, rows0):
        assert constraint(conn, table, name) == (definition, True)
        _assert_all(conn, "SELECT count(*) FROM dbdeploy_backup.dropped_constraints", [(0,)])
    return check


def _primary_key_forward(conn, rows0):
    assert constraint(conn, "public.legacy_events", "legacy_events_pkey") == ("PRIMARY KEY (event_id)", True)
    _assert_all(conn, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'public.legacy_events'::regclass"
                      " AND attname = 'event_id'", [(True,)])


def _primary_key_rollback(conn, rows0):
    assert constraint(conn, "public.legacy_events", "legacy_events_pkey") is None
    _assert_all(conn, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'public.legacy_events'::regclass"
                      " AND attname = 'event_id'", [(False,)])


CONSTRAINT_CASES = [
    Case("rename_index", [mig("001", "rename_amount_idx", RenameIndex(
        name="public.client_orders_amount_idx", new_name="client_orders_by_amount_idx"))],
         setup=CLIENTS, data=CLIENT_DATA, after_forward=_rename_index_forward),
    Case("rename_constraint", [mig(
        "001", "rename_client_constraints",
        RenameConstraint(table="public.clients", name="clients_email_key", new_name="clients_email_unique"),
        RenameConstraint(table="public.clients", name="clients_score_check", new_name="score_not_negative"))],
         setup=CLIENTS, data=CLIENT_DATA, after_forward=_rename_constraint_forward),
    Case("drop_constraint_check", [mig("001", "drop_score_check",
                                       DropConstraint(table="public.clients", name="clients_score_check"))],
         setup=CLIENTS, data=CLIENT_DATA, after_forward=_dropped("public.clients", "clients_score_check"),
         after_rollback=_restored("public.clients", "clients_score_check", "CHECK ((score >= 0))")),
    Case("drop_constraint_fk", [mig("001", "drop_client_fk",
                                    DropConstraint(table="public.client_orders", name="client_orders_client_fk"))],
         setup=CLIENTS, data=CLIENT_DATA, after_forward=_dropped("public.client_orders", "client_orders_client_fk"),
         after_rollback=_restored("public.client_orders", "client_orders_client_fk",
                                  "FOREIGN KEY (client_id) REFERENCES clients(id) ON DELETE CASCADE")),
    Case("drop_constraint_unique", [mig("001", "drop_email_key",
                                        DropConstraint(table="public.clients", name="clients_email_key"))],
         setup=CLIENTS, data=CLIENT_DATA, after_forward=_dropped("public.clients", "clients_email_key"),
         after_rollback=_restored("public.clients", "clients_email_key", "UNIQUE (email)")),
    Case("drop_constraint_pk", [mig("001", "drop_audit_pkey",
                                    DropConstraint(table="public.audit_log", name="audit_log_pkey"))],
         setup=CLIENTS, data={"public.audit_log": "entry_id"},
         after_forward=_dropped("public.audit_log", "audit_log_pkey"),
         after_rollback=_restored("public.audit_log", "audit_log_pkey", "PRIMARY KEY (entry_id)")),
    # Known to the specs: the rollback rebuilds the indexes with CREATE UNIQUE INDEX CONCURRENTLY.
    Case("drop_constraint_spec_unique_and_pk",
         [mig("001", "create_members", CREATE_MEMBERS),
          mig("002", "drop_member_keys", DropConstraint(table="public.members", name="members_handle_key"),
              DropConstraint(table="public.members", name="members_pkey"))],
         populate=MEMBER_ROWS, data={"public.members": "id"}),
    # A primary key with a referencing foreign key: the foreign key is dropped first; the rollback
    # re-adds the key before the foreign key.
    Case("drop_constraint_fk_then_pk", [mig(
        "001", "drop_client_keys",
        DropConstraint(table="public.client_orders", name="client_orders_client_fk"),
        DropConstraint(table="public.clients", name="clients_pkey"))],
         setup=CLIENTS, data=CLIENT_DATA),
    Case("drop_constraint_exclusion", [mig("001", "drop_booking_overlap",
                                           DropConstraint(table="public.bookings", name="bookings_no_overlap"))],
         setup=BOOKINGS, data={"public.bookings": "id"},
         after_forward=_dropped("public.bookings", "bookings_no_overlap"),
         after_rollback=_restored("public.bookings", "bookings_no_overlap",
                                  "EXCLUDE USING gist (during WITH &&) WHERE ((NOT cancelled))")),
    Case("add_primary_key", [mig("001", "key_legacy_events",
                                 AddPrimaryKey(table="public.legacy_events", columns=["event_id"]))],
         setup=CLIENTS, data={"public.legacy_events": "event_id"}, after_forward=_primary_key_forward,
         after_rollback=_primary_key_rollback),
]
def _contacts_types(conn):
    return conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                        " WHERE attrelid = 'public.contacts'::regclass AND attnum > 0 AND NOT attisdropped"
                        " ORDER BY attnum").fetchall()


def _alter_in_place_forward(conn, rows0):
    assert _contacts_types(conn) == [("id", "integer"), ("email", "character varying(120)"),
                                     ("amount", "numeric(12,2)"), ("note", "text")]


def _alter_in_place_rollback(conn, rows0):
    assert _contacts_types(conn) == [("id", "integer"), ("email", "character varying(40)"),
                                     ("amount", "numeric(8,2)"), ("note", "character varying(20)")]


def _ledger_migrations() -> list[Migration]:
    """public.ledger_accounts (integer key, referenced by public.ledger_entries.account_id) and
    public.ledger_entries (an index, a default, NOT NULL and a check on amount; code as text)."""
    return [mig("001", "ledger", CreateTable(
        table="public.ledger_accounts", columns=[Column(name="id", type="integer", nullable=False),
                                                 Column(name="name", type="text", nullable=False)],
        primary_key=["id"]), CreateTable(
        table="public.ledger_entries",
        columns=[Column(name="id", type="integer", nullable=False),
                 Column(name="account_id", type="integer", nullable=False),
                 Column(name="amount", type="integer", nullable=False, default="0"),
                 Column(name="code", type="text")],
        primary_key=["id"],
        foreign_keys=[ForeignKey(columns=["account_id"], references="public.ledger_accounts", ref_columns=["id"])],
        checks=[Check(expression="amount >= 0", name="ledger_entries_amount_check")],
        indexes=[Index(columns=["account_id"]), Index(columns=["amount"], name="ledger_entries_amount_idx")]))]


LEDGER_ROWS = f"""
INSERT INTO public.ledger_accounts SELECT g, 'account ' || g FROM generate_series(1, {ALTER_ROWS} / 10) g;
INSERT INTO public.ledger_entries SELECT g, g % ({ALTER_ROWS} / 10) + 1, g % 500, CASE WHEN g % 9 = 0 THEN NULL
    ELSE (g % 1000)::text END FROM generate_series(1, {ALTER_ROWS}) g;
"""


def _ledger_types(conn):
    return conn.execute("SELECT attrelid::regclass::text, attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                        " WHERE attrelid IN ('public.ledger_accounts'::regclass, 'public.ledger_entries'::regclass)"
                        " AND attnum > 0 AND NOT attisdropped ORDER BY 1, 2").fetchall()


def _bigint_key_forward(conn, rows0):
    types = dict(((t, c), ty) for t, c, ty in _ledger_types(conn))
    assert types[("ledger_accounts", "id")] == "bigint"
    assert types[("ledger_entries", "account_id")] == "bigint"
    conn.execute("INSERT INTO public.ledger_accounts (id, name) VALUES (3000000000, 'big')")
    conn.execute("INSERT INTO public.ledger_entries (id, account_id) VALUES (-1, 3000000000)")
    conn.execute("DELETE FROM public.ledger_entries WHERE id = -1")
    conn.execute("DELETE FROM public.ledger_accounts WHERE id = 3000000000")
    assert conn.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated"
                        ).fetchone() == (0,)


def _amount_forward(conn, rows0):
    assert ("ledger_entries", "amount", "bigint") in _ledger_types(conn)
    assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.ledger_entries'::regclass"
                        " AND NOT convalidated").fetchone() == (0,)


def _code_forward(conn, rows0):
    assert ("ledger_entries", "code", "integer") in _ledger_types(conn)
    assert conn.execute("SELECT sum(code) FROM public.ledger_entries").fetchone()[0] == sum(
        int(r["code"]) for r in rows0["public.ledger_entries"] if r["code"] is not None)
def _members_forward(conn, rows0):
    assert constraint(conn, "public.members", "members_club_fk") == (
        "FOREIGN KEY (club_id) REFERENCES clubs(id) MATCH FULL ON UPDATE CASCADE ON DELETE SET NULL DEFERRABLE",
        True)
    assert constraint(conn, "public.members", "members_legacy_club_fk") == (
        "FOREIGN KEY (legacy_club_id) REFERENCES clubs(id) NOT VALID", False)
    assert constraint(conn, "public.members", "members_nick_key") == ("UNIQUE NULLS NOT DISTINCT (nick)", True)
    _assert_all(conn, "SELECT pg_get_indexdef('public.members_email_idx'::regclass)",
                [("CREATE UNIQUE INDEX members_email_idx ON public.members USING btree (email) NULLS NOT DISTINCT",)])
    conn.execute("BEGIN")
    try:
        for statement, error in [
                ("INSERT INTO public.members (id, nick, email) VALUES (-1, NULL, 'x')", psycopg.errors.UniqueViolation),
                ("INSERT INTO public.members (id, nick, email) VALUES (-1, 'x', NULL)", psycopg.errors.UniqueViolation),
                ("INSERT INTO public.members (id, legacy_club_id, nick, email) VALUES (-1, 777, 'x', 'x')",
                 psycopg.errors.ForeignKeyViolation)]:
            conn.execute("SAVEPOINT s")
            with pytest.raises(error):
                conn.execute(statement)
            conn.execute("ROLLBACK TO SAVEPOINT s")
    finally:
        conn.execute("ROLLBACK")


GENERATED_BILLS = f"""
CREATE TABLE public.bills (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount numeric(12,2) NOT NULL,
    tax numeric(12,2) GENERATED ALWAYS AS (amount * 0.2) STORED, note text, code text COLLATE "C");
INSERT INTO public.bills (amount, note, code) SELECT g, 'n' || g, 'c' || g FROM generate_series(1, {ALTER_ROWS}) g;
CREATE TABLE public.bills_keep (id bigint PRIMARY KEY, total numeric GENERATED ALWAYS AS (id * 2) STORED);
INSERT INTO public.bills_keep (id) SELECT g FROM generate_series(1, 100) g;
"""
"""Existing tables with a generated column, an identity ALWAYS column and a collation: the operations that
copy or restore rows must leave the generated column out and override the identity."""

OPTION_CASES = [
    Case("options_seed_rows_generated", [mig("001", "s", SeedRows(
        table="public.bills", conflict_columns=["id"],
        rows=[{"id": 1, "amount": 5, "note": "x"}, {"id": 999999, "amount": 7, "note": "y"}]))],
         setup=GENERATED_BILLS, data={"public.bills": "id"}, catalog_changes=False, data_changes=True),
    Case("options_backfill_generated", [mig("001", "b", Backfill(
        table="public.bills", set={"note": "upper(note)", "amount": "amount + 1"}, key=["id"], batch_size=300))],
         setup=GENERATED_BILLS, data={"public.bills": "id"}, catalog_changes=False, data_changes=True),
    Case("options_drop_column_generated", [mig("001", "d", DropColumn(table="public.bills", column="note"),
                                               DropColumn(table="public.bills", column="code"))],
         setup=GENERATED_BILLS, data={"public.bills": "id"}, data_changes=True),
    # a NULLS NOT DISTINCT unique constraint on the dropped column comes back as it was
    Case("options_drop_column_nulls_not_distinct", [
        mig("001", "tokens", CreateTable(table="public.tokens", columns=[
            Column(name="id", type="bigint"), Column(name="code", type="text")], primary_key=["id"],
            uniques=[Unique(columns=["code"], nulls_not_distinct=True)])),
        mig("002", "drop_code", DropColumn(table="public.tokens", column="code"))],
         populate=f"INSERT INTO public.tokens SELECT g, CASE WHEN g = 7 THEN NULL ELSE 't' || g END"
                  f" FROM generate_series(1, {ALTER_ROWS}) g;",
         data={"public.tokens": "id"}, data_changes=True,
         after_rollback=lambda conn, _: _assert_all(
             conn, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'tokens_code_key'",
             [("UNIQUE NULLS NOT DISTINCT (code)",)])),
    Case("options_drop_table_generated", [mig("001", "t", DropTable(table="public.bills"),
                                              DropTable(table="public.bills_keep"))],
         setup=GENERATED_BILLS, data={"public.bills": "id", "public.bills_keep": "id"}, data_changes=True),
    Case("create_table_options", [mig("001", "create_bookings", CREATE_BOOKINGS)], setup=ROOMS,
         data={"public.rooms": "id"}, after_forward=_bookings_forward),
    Case("constraint_options_on_existing_table", [mig(
        "001", "member_options",
        AddForeignKey(table="public.members", foreign_key=ForeignKey(
            columns=["club_id"], references="public.clubs", ref_columns=["id"], on_update="CASCADE",
            on_delete="set null", match="FULL", deferrable=True, name="members_club_fk")),
        AddForeignKey(table="public.members", foreign_key=ForeignKey(
            columns=["legacy_club_id"], references="public.clubs", ref_columns=["id"], validate=False,
            name="members_legacy_club_fk")),
        AddUnique(table="public.members", unique=Unique(columns=["nick"], nulls_not_distinct=True)),
        CreateIndex(table="public.members", index=Index(columns=["email"], unique=True, nulls_not_distinct=True)))],
         setup=MEMBERS, data={"public.members": "id", "public.clubs": "id"}, after_forward=_members_forward),
]


# -- quoted mixed-case names (issue 12): existing ORM-made objects addressed by every operation ----

ASPNET = f"""
CREATE TABLE public."AspNetRoles" ("Id" integer PRIMARY KEY, "Name" text NOT NULL);
INSERT INTO public."AspNetRoles" SELECT g, 'role ' || g FROM generate_series(1, 10) g;
CREATE TABLE public."AspNetUsers" ("Id" integer PRIMARY KEY, "UserName" text NOT NULL, "Email" text,
                                  "RoleId" integer, "LegacyCode" text, "Score" integer NOT NULL DEFAULT 0);
INSERT INTO public."AspNetUsers"
SELECT g, 'user' || g, 'u' || g || '@example.com', 1 + g % 10, 'L' || g % 97, g % 50
FROM generate_series(1, {ALTER_ROWS}) g;
CREATE TABLE public."AspNetUserTokens" ("UserId" integer REFERENCES public."AspNetUsers" ("Id"), "Value" text);
INSERT INTO public."AspNetUserTokens" SELECT g, 'token ' || g FROM generate_series(1, {ALTER_ROWS} / 2) g;
"""
USERS = 'public."AspNetUsers"'


def _aspnet_forward(conn, rows0):
    _assert_all(conn, "SELECT count(*) FILTER (WHERE \"DisplayName\" = upper(\"UserName\")), count(*)"
                      " FROM public.\"AspNetUsers\"", [(ALTER_ROWS, ALTER_ROWS)])
    assert constraint(conn, 'public."AspNetUsers"', "AspNetUsers_RoleId_fkey") == (
        'FOREIGN KEY ("RoleId") REFERENCES "AspNetRoles"("Id")', True)
    assert constraint(conn, 'public."AspNetUsers"', "AspNetUsers_UserName_key") == ('UNIQUE ("UserName")', True)
    assert constraint(conn, 'public."AspNetUsers"', "ScoreNonNegative")[1] is True
    assert index_valid(conn, 'public."AspNetUsers_Email_idx"') is True
    _assert_all(conn, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.\"AspNetUsers\"'::regclass"
                      " AND attname = 'LegacyCode' AND NOT attisdropped", [(0,)])
    _assert_all(conn, "SELECT to_regclass('public.\"AspNetUserTokens\"') IS NULL", [(True,)])
    _assert_all(conn, "SELECT \"Name\" FROM public.\"AspNetRoles\" WHERE \"Id\" IN (1, 11) ORDER BY 1",
                [("Guests",), ("role 1",)])     # SeedRows inserts the missing row, keeps existing ones


QUOTED_NAME_CASES = [
    Case("quoted_mixed_case_names", [mig(
        "001", "aspnet_users",
        AddColumn(table=USERS, column=Column(name='"DisplayName"', type="text", collation="C")),
        Backfill(table=USERS, set={'"DisplayName"': 'upper("UserName")'}, key=['"Id"'], batch_size=700),
        CreateIndex(table=USERS, index=Index(columns=['"Email"'])),
        AddForeignKey(table=USERS, foreign_key=ForeignKey(columns=['"RoleId"'], references='public."AspNetRoles"',
                                                          ref_columns=['"Id"'])),
        AddUnique(table=USERS, unique=Unique(columns=['"UserName"'])),
        AddCheck(table=USERS, check=Check(expression='"Score" >= 0', name='"ScoreNonNegative"')),
        DropColumn(table=USERS, column='"LegacyCode"'),
        DropTable(table='"AspNetUserTokens"'),
        SeedRows(table='public."AspNetRoles"', conflict_columns=['"Id"'],
                 rows=[{'"Id"': 1, '"Name"': "Administrators"}, {'"Id"': 11, '"Name"': "Guests"}]))],
         setup=ASPNET,
         data={"public.AspNetUsers": "Id", "public.AspNetRoles": "Id", "public.AspNetUserTokens": "UserId"},
         data_changes=True,
         after_forward=_aspnet_forward),
    Case("quoted_mixed_case_drop_index", [
        mig("001", "aspnet_index", CreateIndex(table=USERS, index=Index(columns=['"Email"', '"UserName" DESC'],
                                                                          name='"IX_AspNetUsers_Email"'))),
        mig("002", "aspnet_drop_index", DropIndex(name='public."IX_AspNetUsers_Email"'))],
         setup=ASPNET, data={"public.AspNetUsers": "Id"},
         after_forward=lambda conn, _: _assert_all(
             conn, "SELECT to_regclass('public.\"IX_AspNetUsers_Email\"') IS NULL", [(True,)])),
]


# The issue-12 operations on an existing ORM-made schema: every table, column, constraint and index name
# needs quoting, so a name that reaches SQL or a catalog lookup unquoted (or case-folded) fails here.
ASPNET_IDENTITY = f"""
CREATE TABLE public."AspNetRoles" ("Id" integer PRIMARY KEY, "Name" text NOT NULL);
INSERT INTO public."AspNetRoles" SELECT g, 'role ' || g FROM generate_series(1, 10) g;
CREATE TABLE public."AspNetUsers" (
    "Id" integer CONSTRAINT "PK_AspNetUsers" PRIMARY KEY, "UserName" varchar(64), "Email" varchar(100),
    "NormalizedEmail" text, "LockoutEnd" timestamptz, "AccessFailedCount" integer NOT NULL DEFAULT 0,
    "PhoneNumber" text DEFAULT 'none', "SecurityStamp" text NOT NULL, "Level" text,
    "RoleId" integer CONSTRAINT "FK_AspNetUsers_AspNetRoles_RoleId" REFERENCES public."AspNetRoles" ("Id"),
    CONSTRAINT "CK_AspNetUsers_AccessFailedCount" CHECK ("AccessFailedCount" >= 0),
    CONSTRAINT "AK_AspNetUsers_Email" UNIQUE ("Email"));
CREATE INDEX "IX_AspNetUsers_NormalizedEmail" ON public."AspNetUsers" ("NormalizedEmail");
INSERT INTO public."AspNetUsers"
SELECT g, 'user' || g, 'u' || g || '@example.com', 'U' || g || '@EXAMPLE.COM',
       CASE WHEN g % 3 = 0 THEN NULL ELSE timestamptz '2024-01-01' + g * interval '1 minute' END,
       g % 5, CASE WHEN g % 4 = 0 THEN NULL ELSE '+49 ' || g END, md5(g::text), (g % 9)::text, 1 + g % 10
FROM generate_series(1, {ALTER_ROWS}) g;
CREATE TABLE public."AspNetUserClaims" (
    "Id" integer PRIMARY KEY, "UserId" integer NOT NULL
        CONSTRAINT "FK_AspNetUserClaims_AspNetUsers_UserId" REFERENCES public."AspNetUsers" ("Id") ON DELETE CASCADE,
    "ClaimType" text);
INSERT INTO public."AspNetUserClaims"
SELECT g, 1 + g % {ALTER_ROWS}, 'claim ' || g FROM generate_series(1, {ALTER_ROWS}) g;
CREATE TABLE public."AspNetUserLogins" ("LoginProvider" text, "ProviderKey" text, "UserId" integer NOT NULL);
INSERT INTO public."AspNetUserLogins"
SELECT 'provider' || g % 3, 'key' || g, g FROM generate_series(1, {ALTER_ROWS}) g;
"""
IDENTITY_DATA = {"public.AspNetUsers": "Id", "public.AspNetRoles": "Id", "public.AspNetUserClaims": "Id",
                 "public.AspNetUserLogins": ("LoginProvider", "ProviderKey")}
RENAMED_DATA = {**IDENTITY_DATA, "public.Users": "Id"}
USERS_ONLINE = RenameTable(table=USERS, new_name='public."Users"', online=True)
PHONE_ONLINE = RenameColumn(table=USERS, column='"PhoneNumber"', new_name='"Phone"', online=True, key=['"Id"'])
# The online type change rebuilds keys and indexes from the specs, so this "AspNetUsers" is made by a spec.
ASPNET_SPEC = mig("001", "aspnet_identity", CreateTable(
    table=USERS, columns=[Column(name='"Id"', type="integer", nullable=False),
                          Column(name='"UserName"', type="varchar(64)"),
                          Column(name='"AccessFailedCount"', type="integer", nullable=False, default="0"),
                          Column(name='"Level"', type="text")],
    primary_key=['"Id"'], primary_key_name='"PK_AspNetUsers"', indexes=[Index(columns=['"AccessFailedCount"', '"Id"'])],
    uniques=[Unique(columns=['"UserName"'])],
    checks=[Check(expression='"AccessFailedCount" >= 0', name='"CK_AspNetUsers_AccessFailedCount"')]), CreateTable(
    table='public."AspNetUserClaims"', columns=[Column(name='"Id"', type="integer", nullable=False),
                                               Column(name='"UserId"', type="integer", nullable=False)],
    primary_key=['"Id"'], foreign_keys=[ForeignKey(
        columns=['"UserId"'], references=USERS, ref_columns=['"Id"'], on_delete="CASCADE",
        name='"FK_AspNetUserClaims_AspNetUsers_UserId"')]))
SPEC_DATA = {"public.AspNetUsers": "Id", "public.AspNetUserClaims": "Id"}
LOGIN_ONLINE = RenameColumn(table=USERS, column='"UserName"', new_name='"Login"', online=True)
ASPNET_SPEC_ROWS = (f'''INSERT INTO public."AspNetUsers" SELECT g, 'user' || g, g % 5, (g % 9)::text
                       FROM generate_series(1, {ALTER_ROWS}) g;
                       INSERT INTO public."AspNetUserClaims" SELECT g, 1 + g % {ALTER_ROWS}
                       FROM generate_series(1, {ALTER_ROWS}) g;''')


def _users_columns(conn) -> list[tuple]:
    return conn.execute("SELECT attname, format_type(atttypid, atttypmod), attnotnull,"
                        " pg_get_expr(adbin, adrelid) FROM pg_attribute LEFT JOIN pg_attrdef"
                        " ON adrelid = attrelid AND adnum = attnum WHERE attrelid = 'public.\"AspNetUsers\"'::regclass"
                        " AND attnum > 0 AND NOT attisdropped ORDER BY attname").fetchall()


def _quoted_metadata_forward(conn, rows0) -> None:
    columns = {c[0]: c[1:] for c in _users_columns(conn)}
    assert columns["UserName"][1] is True and columns["SecurityStamp"][1] is False
    assert columns["LockoutEnd"][2] == "'infinity'::timestamp with time zone"
    assert columns["PhoneNumber"][2] is None


def _quoted_in_place_forward(conn, rows0) -> None:
    columns = {c[0]: c[1:] for c in _users_columns(conn)}
    assert columns["UserName"][0] == "character varying(256)" and columns["Email"][0] == "text"


def _quoted_online_forward(conn, rows0) -> None:
    columns = {c[0]: c[1:] for c in _users_columns(conn)}
    assert columns["Id"][0] == "bigint" and columns["AccessFailedCount"] == ("bigint", True, "0")
    assert columns["Level"][0] == "integer"
    assert constraint(conn, USERS, "CK_AspNetUsers_AccessFailedCount")[1] is True
    _assert_all(conn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid ="
                      " 'public.\"AspNetUserClaims\"'::regclass AND attname = 'UserId'", [("bigint",)])
    assert constraint(conn, 'public."AspNetUserClaims"', "FK_AspNetUserClaims_AspNetUsers_UserId")[1] is True


def _quoted_renames_forward(conn, rows0) -> None:
    _assert_all(conn, "SELECT conname FROM pg_constraint WHERE conrelid = 'public.\"AspNetUsers\"'::regclass"
                      " AND contype IN ('c', 'u') ORDER BY 1", [("AK_Users_Email",), ("CK_Users_AccessFailedCount",)])
    _assert_all(conn, "SELECT to_regclass('public.\"IX_Users_NormalizedEmail\"') IS NOT NULL,"
                      " to_regclass('public.\"IX_AspNetUsers_NormalizedEmail\"') IS NULL", [(True, True)])


def _quoted_dropped_forward(conn, rows0) -> None:
    _assert_all(conn, "SELECT count(*) FROM pg_constraint WHERE conrelid IN ('public.\"AspNetUsers\"'::regclass,"
                      " 'public.\"AspNetUserClaims\"'::regclass) AND contype <> 'n'"
                      " AND conname <> 'AspNetUserClaims_pkey'",
                [(0,)])


def _quoted_dropped_rollback(conn, rows0) -> None:
    _assert_all(conn, "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint"
                      " WHERE conrelid = 'public.\"AspNetUsers\"'::regclass AND contype <> 'n' ORDER BY 1", [
        ("AK_AspNetUsers_Email", 'UNIQUE ("Email")', True),
        ("CK_AspNetUsers_AccessFailedCount", 'CHECK (("AccessFailedCount" >= 0))', True),
        ("FK_AspNetUsers_AspNetRoles_RoleId", 'FOREIGN KEY ("RoleId") REFERENCES "AspNetRoles"("Id")', True),
        ("PK_AspNetUsers", 'PRIMARY KEY ("Id")', True)])


def _quoted_primary_key_forward(conn, rows0) -> None:
    _assert_all(conn, "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid ="
                      " 'public.\"AspNetUserLogins\"'::regclass AND contype = 'p'",
                [("PK_AspNetUserLogins", 'PRIMARY KEY ("LoginProvider", "ProviderKey")')])


QUOTED_NAME_CASES += [
    Case("quoted_aspnet_not_null_and_defaults", [mig(
        "001", "aspnet_nullability",
        SetNotNull(table=USERS, column='"UserName"'), DropNotNull(table=USERS, column='"SecurityStamp"'),
        SetDefault(table=USERS, column='"LockoutEnd"', default="'infinity'"),
        DropDefault(table=USERS, column='"PhoneNumber"'))],
         setup=ASPNET_IDENTITY, data=IDENTITY_DATA, after_forward=_quoted_metadata_forward),
    Case("quoted_aspnet_alter_type_in_place", [mig(
        "001", "aspnet_widen", AlterColumnType(table=USERS, column='"UserName"', type="varchar(256)"),
        AlterColumnType(table=USERS, column='"Email"', type="text"))],
         setup=ASPNET_IDENTITY, data=IDENTITY_DATA, after_forward=_quoted_in_place_forward),
    Case("quoted_aspnet_alter_type_online", [ASPNET_SPEC, mig(
        "002", "aspnet_bigint",
        AlterColumnType(table=USERS, column='"Id"', type="bigint", batch_size=700),
        AlterColumnType(table=USERS, column='"AccessFailedCount"', type="bigint", batch_size=700),
        AlterColumnType(table=USERS, column='"Level"', type="integer", using='"Level"::integer', batch_size=700))],
         populate=ASPNET_SPEC_ROWS, data={"public.AspNetUsers": "Id", "public.AspNetUserClaims": "Id"},
         data_changes=True, after_forward=_quoted_online_forward),
    Case("quoted_aspnet_rename_column", [mig("001", "aspnet_rename_email", RenameColumn(
        table=USERS, column='"Email"', new_name='"EmailAddress"'))],
         setup=ASPNET_IDENTITY, data=IDENTITY_DATA, data_changes=True),
    Case("quoted_aspnet_rename_column_online", [mig("001", "aspnet_expand_phone", PHONE_ONLINE)],
         setup=ASPNET_IDENTITY, data=IDENTITY_DATA, data_changes=True),
    Case("quoted_aspnet_contract_column", [mig("001", "aspnet_expand_phone", PHONE_ONLINE),
                                           mig("002", "aspnet_contract_phone", Contract(version="001"))],
         setup=ASPNET_IDENTITY, data=IDENTITY_DATA, data_changes=True),
    Case("quoted_aspnet_rename_table", [mig("001", "aspnet_rename_users", RenameTable(
        table=USERS, new_name='public."Users"'))],
         setup=ASPNET_IDENTITY, data=RENAMED_DATA, data_changes=True),
    Case("quoted_aspnet_rename_table_online", [mig("001", "aspnet_expand_users", USERS_ONLINE)],
         setup=ASPNET_IDENTITY, data=RENAMED_DATA, data_changes=True),
    Case("quoted_aspnet_contract_table", [mig("001", "aspnet_expand_users", USERS_ONLINE),
                                          mig("002", "aspnet_contract_users", Contract(version="001"))],
         setup=ASPNET_IDENTITY, data={"public.Users": "Id"}, data_changes=False),
    Case("quoted_aspnet_rename_index_and_constraints", [mig(
        "001", "aspnet_renames",
        RenameIndex(name='public."IX_AspNetUsers_NormalizedEmail"', new_name='"IX_Users_NormalizedEmail"'),
        RenameConstraint(table=USERS, name='"CK_AspNetUsers_AccessFailedCount"',
                         new_name='"CK_Users_AccessFailedCount"'),
        RenameConstraint(table=USERS, name='"AK_AspNetUsers_Email"', new_name='"AK_Users_Email"'))],
         setup=ASPNET_IDENTITY, data=IDENTITY_DATA, after_forward=_quoted_renames_forward),
    Case("quoted_aspnet_drop_constraints", [mig(
        "001", "aspnet_drop_constraints",
        DropConstraint(table=USERS, name='"CK_AspNetUsers_AccessFailedCount"'),
        DropConstraint(table=USERS, name='"AK_AspNetUsers_Email"'),
        DropConstraint(table=USERS, name='"FK_AspNetUsers_AspNetRoles_RoleId"'),
        DropConstraint(table='public."AspNetUserClaims"', name='"FK_AspNetUserClaims_AspNetUsers_UserId"'),
        DropConstraint(table=USERS, name='"PK_AspNetUsers"'))],
         setup=ASPNET_IDENTITY, data=IDENTITY_DATA, after_forward=_quoted_dropped_forward,
         after_rollback=_quoted_dropped_rollback),
    # Spec-known keys and uniques: the rollback rebuilds their indexes concurrently from models built from
    # resolved (exact) names; the online rename mirrors the unique index onto the new column.
    Case("quoted_aspnet_spec_drop_keys", [ASPNET_SPEC, mig(
        "002", "aspnet_drop_keys",
        DropConstraint(table='public."AspNetUserClaims"', name='"FK_AspNetUserClaims_AspNetUsers_UserId"'),
        DropConstraint(table=USERS, name='"AspNetUsers_UserName_key"'),
        DropConstraint(table=USERS, name='"PK_AspNetUsers"'))],
         populate=ASPNET_SPEC_ROWS, data=SPEC_DATA),
    Case("quoted_aspnet_spec_rename_online", [ASPNET_SPEC, mig("002", "aspnet_expand_login", LOGIN_ONLINE)],
         populate=ASPNET_SPEC_ROWS, data=SPEC_DATA, data_changes=True),
    Case("quoted_aspnet_spec_contract_column", [ASPNET_SPEC, mig("002", "aspnet_expand_login", LOGIN_ONLINE),
                                                mig("003", "aspnet_contract_login", Contract(version="002"))],
         populate=ASPNET_SPEC_ROWS, data=SPEC_DATA, data_changes=True),
    Case("quoted_aspnet_add_primary_key", [mig("001", "aspnet_key_logins", AddPrimaryKey(
        table='public."AspNetUserLogins"', columns=['"LoginProvider"', '"ProviderKey"'],
        name='"PK_AspNetUserLogins"'))],
         setup=ASPNET_IDENTITY, data=IDENTITY_DATA, after_forward=_quoted_primary_key_forward),
]


CASES = [
    Case("create_schema", [mig("001", "create_inventory", CreateSchema(name="inventory"), CreateTable(
        table="inventory.bins", columns=[Column(name="id", type="integer")], primary_key=["id"]))],
         after_forward=_schema_forward, after_rollback=_schema_rollback),
    Case("require_extension_plpgsql", [mig("001", "require_plpgsql", RequireExtension(name="plpgsql"))],
         catalog_changes=False),
    # The test servers ship different extensions (pgserver's PG16 has only plpgsql and vector; the
    # embedded PG18 has contrib and vector), so each server creates the first candidate it has.
    Case("require_extension_create", _extension_migrations, after_forward=_extension_forward),
    Case("create_table", [mig("001", "create_orders", CREATE_ORDERS, CREATE_ORDER_LINES)], setup=SHOP,
         data={"shop.customers": "id"}, after_forward=_create_table_forward),
    Case("create_table_optional_fk_missing", [mig("001", "create_visits", CreateTable(
        table="public.visits",
        columns=[Column(name="id", type="bigint", identity=True), Column(name="tenant_id", type="bigint")],
        primary_key=["id"],
        foreign_keys=[ForeignKey(columns=["tenant_id"], references="auth.tenants", ref_columns=["id"],
                                 optional=True)]))],
         after_forward=lambda conn, _: _assert_all(
             conn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.visits'::regclass"
                   " AND contype = 'f'", [(0,)])),
    Case("add_column_nullable", [mig("001", "add_nickname", AddColumn(
        table="public.accounts", column=Column(name="nickname", type="varchar(40)")))],
         setup=ACCOUNTS, data={"public.accounts": "id"}, data_changes=True, after_forward=_nullable_forward),
    Case("add_column_not_null_constant_default", [mig("001", "add_tier", AddColumn(
        table="public.accounts", column=Column(name="tier", type="text", nullable=False, default="'basic'")))],
         setup=ACCOUNTS, data={"public.accounts": "id"}, data_changes=True, after_forward=_constant_default_forward),
    Case("add_column_not_null_volatile_default",
         [mig("001", "create_events", EVENTS_TABLE),
          mig("002", "add_event_uuid", AddColumn(table="public.events", column=Column(
              name="event_uuid", type="uuid", nullable=False, default="gen_random_uuid()")))],
         populate="INSERT INTO public.events (payload) SELECT 'p' || g FROM generate_series(1, 2500) g;",
         data={"public.events": "id"}, data_changes=True, same_rows_on_reforward=False,
         after_forward=_volatile_default_forward),
    Case("add_column_not_null_with_backfill", [mig(
        "001", "add_amount",
        AddColumn(table="public.invoices", column=Column(name="amount", type="numeric(12,2)", nullable=False)),
        Backfill(table="public.invoices", set={"amount": "amount_cents / 100.0"}, key=["id"], batch_size=500))],
         setup=ORDERS_CENTS, data={"public.invoices": "id"}, data_changes=True,
         after_forward=_not_null_backfill_forward),
    Case("create_index", [mig(
        "001", "index_accounts",
        CreateIndex(table="public.accounts", index=Index(columns=["lower(email)"], unique=True, where="active",
                                                          name="accounts_active_email_idx")),
        CreateIndex(table="public.accounts", index=Index(columns=["prefs"], method="gin")),
        CreateIndex(table="public.accounts", index=Index(columns=["created_at DESC", "id"], include=["name"],
                                                          name="accounts_recent_idx")))],
         setup=ACCOUNTS, data={"public.accounts": "id"}, after_forward=_index_forward),
    Case("add_foreign_key", [mig("001", "fk_team", AddForeignKey(table="public.accounts", foreign_key=ForeignKey(
        columns=["team_id"], references="public.teams", ref_columns=["id"], on_delete="SET NULL",
        name="accounts_team_fk")))],
         setup=ACCOUNTS, data={"public.accounts": "id"}, after_forward=_fk_forward),
    Case("add_check", [mig("001", "check_name", AddCheck(table="public.accounts", check=Check(
        expression="char_length(name) > 0", name="accounts_name_not_blank")))],
         setup=ACCOUNTS, data={"public.accounts": "id"}, after_forward=_check_forward),
    Case("add_unique", [mig("001", "unique_email", AddUnique(table="public.accounts",
                                                             unique=Unique(columns=["email"])))],
         setup=ACCOUNTS, data={"public.accounts": "id"}, after_forward=_unique_forward),
    Case("backfill", [mig("001", "grade_low_scores", Backfill(
        table="public.scores", set={"score": "score * 2", "grade": "'low:' || coalesce(grade, 'none')"},
        where="score < 50", key=["region", "n"], batch_size=SCORES_BATCH))],
         setup=SCORES, data={"public.scores": ("region", "n")}, catalog_changes=False, data_changes=True,
         after_forward=_backfill_forward, after_rollback=_backfill_rollback),
    Case("seed_rows", [mig("001", "seed_settings",
                           SeedRows(table="public.settings", rows=SEEDS, conflict_columns=["key"]))],
         setup=SETTINGS, data={"public.settings": "key"}, catalog_changes=False, data_changes=True,
         after_forward=_seed_forward),
    Case("drop_index",
         [mig("001", "create_widgets", CreateTable(
             table="public.widgets",
             columns=[Column(name="id", type="integer"), Column(name="color", type="text"),
                      Column(name="size", type="integer"), Column(name="live", type="boolean")],
             primary_key=["id"],
             indexes=[Index(columns=["color"], include=["size"]), Index(columns=["size"])])),
          mig("002", "index_live", CreateIndex(table="public.widgets", index=Index(
              columns=["color", "size DESC"], where="live", name="widgets_live_idx"))),
          mig("003", "drop_widget_indexes", DropIndex(name="public.widgets_color_idx"),
              DropIndex(name="public.widgets_live_idx"))],
         populate="INSERT INTO public.widgets SELECT g, 'c' || g % 9, g % 13, g % 2 = 0"
                  " FROM generate_series(1, 400) g;",
         data={"public.widgets": "id"}, after_forward=_drop_index_forward),
    Case("drop_column", [mig("001", "drop_price", DropColumn(table="public.products", column="price"),
                             DropColumn(table="public.products", column="currency"))],
         setup=PRODUCTS, data={"public.products": "id", "public.currencies": "code"}, data_changes=True,
         after_forward=_drop_column_forward, after_rollback=_drop_column_rollback),
    Case("drop_table", [mig("001", "drop_legacy_orders", DropTable(table="public.legacy_orders"))],
         setup=LEGACY, data={"public.legacy_orders": "id", "public.regions": "code"}, data_changes=True,
         after_forward=_drop_table_forward, after_rollback=_drop_table_rollback),
    Case("raw_sql", [mig(
        "001", "raw_things",
        RawSQL(forward="CREATE OR REPLACE VIEW public.active_accounts AS SELECT id, name FROM public.accounts"
                       " WHERE active",
               rollback="DROP VIEW IF EXISTS public.active_accounts"),
        RawSQL(forward="CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_name_idx ON public.accounts (name)",
               rollback="DROP INDEX CONCURRENTLY IF EXISTS public.accounts_name_idx"),
        RawSQL(forward="INSERT INTO public.teams (id, name) VALUES (99, 'raw team') ON CONFLICT (id) DO NOTHING",
               rollback="DELETE FROM public.teams WHERE id = 99"))],
         setup=ACCOUNTS, data={"public.teams": "id", "public.accounts": "id"}, data_changes=True,
         after_forward=_raw_forward),
    Case("set_not_null", [mig("001", "require_handle", SetNotNull(table="public.profiles", column="handle"),
                              SetNotNull(table="public.profiles", column="visits"))],
         setup=PROFILES, data={"public.profiles": "id"}, after_forward=_set_not_null_forward,
         after_rollback=_set_not_null_rollback),
    Case("drop_not_null", [mig("001", "optional_bio", DropNotNull(table="public.profiles", column="bio"))],
         setup=PROFILES, data={"public.profiles": "id"},
         after_forward=lambda conn, _: _assert_all(conn, "SELECT count(*) FROM public.profiles WHERE bio IS NULL",
                                                   [(0,)]),
         after_rollback=_drop_not_null_rollback),
    Case("set_default", [mig("001", "defaults", SetDefault(table="public.profiles", column="country", default="'DE'"),
                             SetDefault(table="public.profiles", column="score",
                                        default="floor(random() * 10)::integer"))],
         setup=PROFILES, data={"public.profiles": "id"}, after_forward=_set_default_forward,
         after_rollback=_set_default_rollback),
    Case("drop_default", [mig("001", "no_defaults", DropDefault(table="public.profiles", column="joined"),
                              DropDefault(table="public.profiles", column="handle"))],
         setup=PROFILES, data={"public.profiles": "id"}, after_forward=_drop_default_forward,
         after_rollback=_drop_default_rollback),
]


# -- rename_column / rename_table (plain and online) / contract ----------------------------------

SPEC_MEMBERS = mig("001", "create_members", CreateTable(
    table="public.members",
    columns=[Column(name="id", type="bigint", nullable=False), Column(name="email", type="text", nullable=False),
             Column(name="handle", type="text", nullable=False, default="'anon'"),
             Column(name="score", type="integer")],
    primary_key=["id"], indexes=[Index(columns=["handle"])], uniques=[Unique(columns=["email"])]))
SPEC_MEMBER_ROWS = ("INSERT INTO public.members SELECT g, 'm' || g || '@example.com', 'h' || g,"
               f" CASE WHEN g % 7 = 0 THEN NULL ELSE g END FROM generate_series(1, {ALTER_ROWS}) g;")
MEMBER_DATA = {"public.members": "id", "public.people": "id"}
HANDLE_ONLINE = RenameColumn(table="public.members", column="handle", new_name="nick", online=True)
SCORE_ONLINE = RenameColumn(table="public.members", column="score", new_name="points", online=True)
PEOPLE_ONLINE = RenameTable(table="public.members", new_name="public.people", online=True)


def _online_column_forward(conn, rows0) -> None:
    _assert_all(conn, "SELECT count(*) FROM public.members WHERE nick IS DISTINCT FROM handle"
                      " OR points IS DISTINCT FROM score", [(0,)])
    conn.execute("INSERT INTO public.members (id, email, handle) VALUES (-1, 'old@example.com', 'old-code')")
    conn.execute("INSERT INTO public.members (id, email, nick, points) VALUES (-2, 'new@example.com', 'new-code', 5)")
    _assert_all(conn, "SELECT id, handle, nick, score, points FROM public.members WHERE id < 0 ORDER BY id",
                [(-2, "new-code", "new-code", 5, 5), (-1, "old-code", "old-code", None, None)])
    conn.execute("DELETE FROM public.members WHERE id < 0")


def _online_table_forward(conn, rows0) -> None:
    conn.execute("INSERT INTO public.members (id, email) VALUES (-1, 'view@example.com')")
    _assert_all(conn, "SELECT handle FROM public.people WHERE id = -1", [("anon",)])
    conn.execute("UPDATE public.members SET score = 42 WHERE id = -1")
    _assert_all(conn, "SELECT score FROM public.people WHERE id = -1", [(42,)])
    conn.execute("DELETE FROM public.members WHERE id = -1")
    _assert_all(conn, "SELECT count(*) FROM public.people WHERE id = -1", [(0,)])


SCORE_BIGINT = AlterColumnType(table="public.members", column="score", type="bigint", online=True,
                               new_name="score_big")
HANDLE_VARCHAR = AlterColumnType(table="public.members", column="handle", type="varchar(64)", online=True,
                                 new_name="handle_v", using="upper(handle)", back="lower(handle_v)", batch_size=700)


def _type_expand_forward(conn, rows0) -> None:
    """Both types work: every row converted; old code's writes reach the new column and new code's the
    old one, converted; a value the old type cannot hold fails the write."""
    _assert_all(conn, "SELECT count(*) FROM public.members WHERE score_big IS DISTINCT FROM score::bigint"
                      " OR handle_v IS DISTINCT FROM upper(handle)", [(0,)])
    conn.execute("INSERT INTO public.members (id, email, handle, score) VALUES (-1, 'old@example.com', 'old', 7)")
    conn.execute("INSERT INTO public.members (id, email, handle_v, score_big) VALUES (-2, 'new@example.com', 'NEW', 8)")
    conn.execute("UPDATE public.members SET score_big = 9, handle_v = 'UPD' WHERE id = -1")
    _assert_all(conn, "SELECT id, handle, handle_v, score, score_big FROM public.members WHERE id < 0 ORDER BY id",
                [(-2, "new", "NEW", 8, 8), (-1, "upd", "UPD", 9, 9)])
    _assert_all(conn, "SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute"
                      " WHERE attrelid = 'public.members'::regclass AND attname IN ('handle_v', 'score_big')"
                      " ORDER BY attname", [("character varying(64)",), ("bigint",)])
    with pytest.raises(psycopg.errors.NumericValueOutOfRange), conn.transaction():
        conn.execute("UPDATE public.members SET score_big = 3000000000 WHERE id = -2")
    conn.execute("DELETE FROM public.members WHERE id < 0")


CASES += [
    Case("rename_column", [SPEC_MEMBERS, mig("002", "rename_email", RenameColumn(
        table="public.members", column="email", new_name="email_address"))],
         populate=SPEC_MEMBER_ROWS, data=MEMBER_DATA, data_changes=True),
    Case("rename_table", [SPEC_MEMBERS, mig("002", "rename_members", RenameTable(
        table="public.members", new_name="public.people"))],
         populate=SPEC_MEMBER_ROWS, data=MEMBER_DATA, data_changes=True),
    Case("rename_column_online", [SPEC_MEMBERS, mig("002", "expand_handle", HANDLE_ONLINE, SCORE_ONLINE)],
         populate=SPEC_MEMBER_ROWS, data=MEMBER_DATA, data_changes=True, after_forward=_online_column_forward),
    Case("rename_table_online", [SPEC_MEMBERS, mig("002", "expand_members", PEOPLE_ONLINE)],
         populate=SPEC_MEMBER_ROWS, data=MEMBER_DATA, data_changes=True, after_forward=_online_table_forward),
    Case("contract_column", [SPEC_MEMBERS, mig("002", "expand_handle", HANDLE_ONLINE, SCORE_ONLINE),
                             mig("003", "contract_handle", Contract(version="002"))],
         populate=SPEC_MEMBER_ROWS, data=MEMBER_DATA, data_changes=True),
    Case("alter_column_type_expand", [SPEC_MEMBERS, mig("002", "expand_types", SCORE_BIGINT, HANDLE_VARCHAR)],
         populate=SPEC_MEMBER_ROWS, data=MEMBER_DATA, data_changes=True, after_forward=_type_expand_forward),
    Case("alter_column_type_contract", [SPEC_MEMBERS, mig("002", "expand_types", SCORE_BIGINT, HANDLE_VARCHAR),
                                        mig("003", "contract_types", Contract(version="002"))],
         populate=SPEC_MEMBER_ROWS, data=MEMBER_DATA, data_changes=True),
    Case("contract_table", [SPEC_MEMBERS, mig("002", "expand_members", PEOPLE_ONLINE),
                            mig("003", "contract_members", Contract(version="002"))],
         populate=SPEC_MEMBER_ROWS, data={"public.people": "id"}, data_changes=False),
    *CONSTRAINT_CASES,
    Case("alter_column_type_in_place", [mig(
        "001", "widen_contacts", AlterColumnType(table="public.contacts", column="email", type="varchar(120)"),
        AlterColumnType(table="public.contacts", column="amount", type="numeric(12,2)"),
        AlterColumnType(table="public.contacts", column="note", type="text"))],
         setup=CONTACTS, data={"public.contacts": "id"},
         after_forward=_alter_in_place_forward, after_rollback=_alter_in_place_rollback),
    Case("alter_column_type_bigint_key", [*_ledger_migrations(), mig(
        "002", "bigint_accounts", AlterColumnType(table="public.ledger_accounts", column="id", type="bigint",
                                                  batch_size=500))],
         populate=LEDGER_ROWS, data={"public.ledger_accounts": "id", "public.ledger_entries": "id"}, data_changes=True,
         after_forward=_bigint_key_forward),
    Case("alter_column_type_constrained", [*_ledger_migrations(), mig(
        "002", "bigint_amount", AlterColumnType(table="public.ledger_entries", column="amount", type="bigint",
                                                batch_size=500))],
         populate=LEDGER_ROWS, data={"public.ledger_entries": "id"}, data_changes=True,
         after_forward=_amount_forward),
    Case("alter_column_type_using", [*_ledger_migrations(), mig(
        "002", "code_to_int", AlterColumnType(table="public.ledger_entries", column="code", type="integer",
                                              using="code::integer", batch_size=500))],
         populate=LEDGER_ROWS, data={"public.ledger_entries": "id"}, data_changes=True,
         after_forward=_code_forward),
    *OPTION_CASES,
    *QUOTED_NAME_CASES,
]


# -- code: functions and triggers (issue 13) -------------------------------------------------------

#: A populated table with an ``updated_at`` column, not made by the specs.
DOCUMENTS = f"""
CREATE TABLE public.documents (
    id integer PRIMARY KEY,
    title text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
);
INSERT INTO public.documents SELECT g, 'doc ' || g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
FROM generate_series(1, {ALTER_ROWS}) g;
"""

#: A PL/pgSQL trigger function whose body holds $$, quotes and a backslash: kept byte for byte.
TOUCH_BODY = ("\nBEGIN\n    -- it's $$ kept $$, and a \\ too\n"
              "    NEW.updated_at := pg_catalog.clock_timestamp();\n    RETURN NEW;\nEND\n")
TOUCH = CreateFunction(name="public.touch_updated_at", returns="trigger", language="plpgsql", body=TOUCH_BODY)
TOUCH_TRIGGER = CreateTrigger(table="public.documents", name="documents_touch", function="public.touch_updated_at",
                              timing="BEFORE", events=["UPDATE"], when="NEW.title IS DISTINCT FROM OLD.title")


def _fires(conn) -> bool:
    """Whether updating a title changes updated_at (checked in a transaction that is rolled back)."""
    with conn.transaction(force_rollback=True):
        before = conn.execute("SELECT updated_at FROM public.documents WHERE id = 7").fetchone()[0]
        conn.execute("UPDATE public.documents SET title = 'renamed' WHERE id = 7")
        after = conn.execute("SELECT updated_at FROM public.documents WHERE id = 7").fetchone()[0]
    return after != before


def _touch_forward(conn, rows0):
    (body,) = conn.execute("SELECT prosrc FROM pg_proc WHERE oid = 'public.touch_updated_at()'::regprocedure"
                           ).fetchone()
    assert body == TOUCH_BODY
    assert _fires(conn)


def _touch_rollback(conn, rows0):
    assert conn.execute("SELECT to_regprocedure('public.touch_updated_at()')").fetchone()[0] is None
    assert not _fires(conn)


#: A trigger function not made by the specs, with a comment, a revoked PUBLIC grant and a trigger using it.
OLD_TOUCH = f"""
{DOCUMENTS}
CREATE FUNCTION public.touch_updated_at() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS
$old$BEGIN NEW.updated_at := '2030-01-01 00:00:00+00'; RETURN NEW; END$old$;
COMMENT ON FUNCTION public.touch_updated_at() IS 'set by hand, long ago';
REVOKE EXECUTE ON FUNCTION public.touch_updated_at() FROM PUBLIC;
CREATE TRIGGER documents_touch BEFORE UPDATE ON public.documents FOR EACH ROW
    EXECUTE FUNCTION public.touch_updated_at();
"""


def _replace_forward(conn, rows0):
    _touch_forward(conn, rows0)
    assert conn.execute("SELECT obj_description('public.touch_updated_at()'::regprocedure, 'pg_proc')"
                        ).fetchone()[0] == "set by hand, long ago"


def _replace_rollback(conn, rows0):
    (body,) = conn.execute("SELECT prosrc FROM pg_proc WHERE oid = 'public.touch_updated_at()'::regprocedure"
                           ).fetchone()
    assert body == "BEGIN NEW.updated_at := '2030-01-01 00:00:00+00'; RETURN NEW; END"
    assert backup_tables(conn, "replaced_functions") == ["replaced_functions"]
    assert conn.execute("SELECT count(*) FROM dbdeploy_backup.replaced_functions").fetchone()[0] == 0


def _dropped_forward(conn, rows0):
    assert conn.execute("SELECT to_regprocedure('public.touch_updated_at()')").fetchone()[0] is None
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'documents_touch'").fetchone()[0] == 0


def _dropped_rollback(conn, rows0):
    assert conn.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'documents_touch'").fetchone()[0] == "D"
    assert conn.execute("SELECT count(*) FROM dbdeploy_backup.dropped_functions").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM dbdeploy_backup.dropped_triggers").fetchone()[0] == 0


ARCHIVE_BODY = "\nBEGIN\n    DELETE FROM public.documents WHERE id > p_keep;\n    COMMIT;\nEND\n"


def _archive_forward(conn, rows0):
    (body,) = conn.execute("SELECT prosrc FROM pg_proc WHERE oid = 'public.archive_documents(integer)'::regprocedure"
                           " AND prokind = 'p'").fetchone()
    assert body == ARCHIVE_BODY


CASES += [
    Case("create_procedure", [mig("001", "archive", CreateProcedure(
        name="public.archive_documents", args=[("p_keep", "integer")], language="plpgsql", body=ARCHIVE_BODY))],
         populate=DOCUMENTS, data={"public.documents": "id"}, after_forward=_archive_forward),
    Case("drop_trigger_and_function", [mig(
        "001", "untouch", DropTrigger(table="public.documents", name="documents_touch"),
        DropFunction(name="public.touch_updated_at"))],
         populate=OLD_TOUCH + "GRANT EXECUTE ON FUNCTION public.touch_updated_at() TO pg_monitor;"
                              " ALTER TABLE public.documents DISABLE TRIGGER documents_touch;",
         data={"public.documents": "id"}, after_forward=_dropped_forward, after_rollback=_dropped_rollback),
    Case("replace_function_not_made_by_specs", [mig("001", "retouch", ReplaceFunction(
        name="public.touch_updated_at", returns="trigger", language="plpgsql", body=TOUCH_BODY))],
         populate=OLD_TOUCH, data={"public.documents": "id"},
         after_forward=_replace_forward, after_rollback=_replace_rollback),
    Case("create_function_and_trigger", [mig("001", "touch_documents", TOUCH, TOUCH_TRIGGER)],
         populate=DOCUMENTS, data={"public.documents": "id"},
         after_forward=_touch_forward, after_rollback=_touch_rollback),
]


# -- partitions (issue 13): a range-partitioned events table with monthly partitions ---------------

EVENTS = CreateTable(
    table="public.events",
    columns=[Column(name="id", type="bigint", nullable=False), Column(name="account_id", type="bigint", nullable=False),
             Column(name="created_at", type="timestamptz", nullable=False), Column(name="payload", type="text")],
    primary_key=["id", "created_at"], indexes=[Index(columns=["account_id", "created_at"])],
    partition_by="RANGE (created_at)")
EVENT_MONTHS = [CreatePartition(parent="public.events", table=f"public.events_2026_{m:02d}",
                                bounds=f"FOR VALUES FROM ('2026-{m:02d}-01') TO ('2026-{m + 1:02d}-01')")
                for m in (1, 2, 3)]
EVENTS_DEFAULT = CreatePartition(parent="public.events", table="public.events_default", bounds="DEFAULT")
# January to March 2026, and every tenth row in 2025 (the default partition, which holds rows when the
# April partition is created: PostgreSQL scans it for rows of April first).
EVENT_ROWS = ("INSERT INTO public.events SELECT g, g % 97, CASE WHEN g % 10 = 0 THEN timestamptz '2025-06-01 00:00+00'"
              " ELSE timestamptz '2026-01-01 00:00+00' + (g % 85) * interval '1 day' END + g * interval '1 second',"
              f" 'event ' || g FROM generate_series(1, {ALTER_ROWS}) g;")


def _new_month_forward(conn, rows0) -> None:
    """A row of April goes into the new partition (not the default one) and its index is there."""
    conn.execute("INSERT INTO public.events VALUES (-1, 1, '2026-04-15 12:00+00', 'april')")
    _assert_all(conn, "SELECT tableoid::regclass::text FROM public.events WHERE id = -1", [("events_2026_04",)])
    _assert_all(conn, "SELECT count(*) FROM pg_catalog.pg_index WHERE indrelid = 'public.events_2026_04'::regclass",
                [(2,)])
    conn.execute("DELETE FROM public.events WHERE id = -1")


CASES += [
    Case("create_partitioned_table", [mig("001", "create_events", EVENTS, *EVENT_MONTHS, EVENTS_DEFAULT)],
         data={}),
    Case("create_partition", [mig("001", "create_events", EVENTS, *EVENT_MONTHS, EVENTS_DEFAULT),
                              mig("002", "april", CreatePartition(
                                  parent="public.events", table="public.events_2026_04",
                                  bounds="FOR VALUES FROM ('2026-04-01') TO ('2026-05-01')"))],
         populate=EVENT_ROWS, data={"public.events": ("id", "created_at")}, after_forward=_new_month_forward),
]



# -- comments (issue 13): CommentOn on objects of every kind, on a populated table -----------------

#: A populated table and objects of every kind CommentOn names, some with comments to replace or remove.
TICKETS = f"""
CREATE TABLE public.tickets (
    id bigint CONSTRAINT tickets_pkey PRIMARY KEY,
    title text NOT NULL CONSTRAINT tickets_title_check CHECK (title <> ''),
    body text,
    priority integer NOT NULL DEFAULT 3
);
COMMENT ON TABLE public.tickets IS 'Support tickets';
COMMENT ON COLUMN public.tickets.title IS 'Short title';
COMMENT ON COLUMN public.tickets.priority IS 'from 1 (urgent) to 5';
INSERT INTO public.tickets SELECT g, 'ticket ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'body ' || g END, 1 + g % 5
FROM generate_series(1, {ALTER_ROWS}) g;
CREATE INDEX tickets_priority_idx ON public.tickets (priority);
CREATE VIEW public.urgent_tickets AS SELECT id, title FROM public.tickets WHERE priority = 1;
CREATE MATERIALIZED VIEW public.ticket_counts AS SELECT priority, count(*) AS n FROM public.tickets GROUP BY priority;
CREATE SEQUENCE public.ticket_numbers;
COMMENT ON SEQUENCE public.ticket_numbers IS 'old numbers';
CREATE TYPE public.ticket_state AS ENUM ('open', 'closed');
CREATE DOMAIN public.ticket_code AS text CHECK (VALUE ~ '^[A-Z]+$');
CREATE FUNCTION public.ticket_weight(integer, text) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT $1';
COMMENT ON FUNCTION public.ticket_weight(integer, text) IS 'weight v1';
CREATE FUNCTION public.tickets_touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
CREATE TRIGGER tickets_touch BEFORE UPDATE ON public.tickets FOR EACH ROW EXECUTE FUNCTION public.tickets_touch();
CREATE SCHEMA "Support";
CREATE TABLE "Support"."Queue" ("Id" integer PRIMARY KEY);
INSERT INTO "Support"."Queue" SELECT g FROM generate_series(1, 50) g;
COMMENT ON COLUMN "Support"."Queue"."Id" IS 'queue id';
"""

#: Quote-, backslash- and unicode-heavy text, kept byte for byte (tests/test_comment_sequence_ops.py too).
ODD_COMMENT = "It's a \"ticket\" \\ not a \\\\n newline; $$ $dbdeploy$ 'x'' -- /* ü 日本 🎫 \u00a0\ttab\nline 2"

COMMENTS = [
    CommentOn(object_kind="TABLE", name="public.tickets", comment="Support tickets, one per customer request"),
    CommentOn(object_kind="COLUMN", name="public.tickets.title", comment=ODD_COMMENT),
    CommentOn(object_kind="COLUMN", name="public.tickets.body", comment="Markdown"),
    CommentOn(object_kind="COLUMN", name="public.tickets.priority", comment=None),
    CommentOn(object_kind="INDEX", name="public.tickets_priority_idx", comment="for the queue view"),
    CommentOn(object_kind="VIEW", name="public.urgent_tickets", comment="priority 1"),
    CommentOn(object_kind="MATERIALIZED VIEW", name="public.ticket_counts", comment="refreshed hourly"),
    CommentOn(object_kind="SEQUENCE", name="public.ticket_numbers", comment="new numbers"),
    CommentOn(object_kind="SCHEMA", name="public", comment="the application"),
    CommentOn(object_kind="TYPE", name="public.ticket_state", comment="open or closed"),
    CommentOn(object_kind="DOMAIN", name="public.ticket_code", comment="upper-case letters"),
    CommentOn(object_kind="FUNCTION", name="public.ticket_weight(integer, text)", comment="weight v2"),
    CommentOn(object_kind="CONSTRAINT", name="public.tickets.tickets_title_check", comment="no empty titles"),
    CommentOn(object_kind="TRIGGER", name="public.tickets.tickets_touch", comment="keeps NEW"),
    CommentOn(object_kind="COLUMN", name='"Support"."Queue"."Id"', comment="Queue position"),
    # the same object twice in one version: the rollback still restores the comment from before both
    CommentOn(object_kind="TABLE", name="public.tickets", comment="Support tickets (final)"),
]


def _comments_forward(conn, rows0):
    _assert_all(conn, "SELECT col_description('public.tickets'::regclass, 2) = %s,"
                      " obj_description('public.tickets'::regclass, 'pg_class'),"
                      " col_description('public.tickets'::regclass, 4)",
                [(True, "Support tickets (final)", None)], [ODD_COMMENT])
    # the first CommentOn of the table saved the comment from before the version; the second kept it
    _assert_all(conn, "SELECT object_kind, object_name, comment FROM dbdeploy_backup.saved_comments"
                      " WHERE object_kind IN ('TABLE', 'COLUMN') ORDER BY object_name COLLATE \"C\"",
                [("COLUMN", "Support.Queue.Id", "queue id"), ("TABLE", "public.tickets", "Support tickets"),
                 ("COLUMN", "public.tickets.body", None),
                 ("COLUMN", "public.tickets.priority", "from 1 (urgent) to 5"),
                 ("COLUMN", "public.tickets.title", "Short title")])


def _comments_rollback(conn, rows0):
    _assert_all(conn, "SELECT col_description('public.tickets'::regclass, 2),"
                      " obj_description('public.tickets'::regclass, 'pg_class'),"
                      " col_description('public.tickets'::regclass, 3), col_description('public.tickets'::regclass, 4)",
                [("Short title", "Support tickets", None, "from 1 (urgent) to 5")])
    _assert_all(conn, "SELECT count(*) FROM dbdeploy_backup.saved_comments", [(0,)])
    _assert_all(conn, "SELECT count(*) FROM migrations.migration_objects WHERE object_type = 'comment'", [(0,)])


CASES += [
    Case("comment_on", [mig("001", "comments", *COMMENTS)], setup=TICKETS,
         data={"public.tickets": "id", "Support.Queue": "Id"},
         after_forward=_comments_forward, after_rollback=_comments_rollback),
]



# -- sequences (issue 13): CreateSequence, SetSequenceValue, AlterSequence on populated tables ------

#: Invoices numbered by a column that a new sequence will own; receipts with a serial key whose sequence
#: is set past max(id); a legacy sequence (no column) altered and restarted.
INVOICES = f"""
CREATE TABLE public.invoices (id bigint PRIMARY KEY, number bigint, total numeric(12,2) NOT NULL);
INSERT INTO public.invoices SELECT g, 1000 + g, g * 1.5 FROM generate_series(1, {ALTER_ROWS}) g;
CREATE TABLE public.receipts (id bigserial PRIMARY KEY, invoice_id bigint NOT NULL, note text);
INSERT INTO public.receipts (invoice_id, note) SELECT g, 'r' || g FROM generate_series(1, {ALTER_ROWS}) g;
CREATE SEQUENCE public.legacy_ids AS integer INCREMENT BY 1 MAXVALUE 100000 CACHE 1;
SELECT setval('public.legacy_ids', 500);
"""

SEQUENCE_OPS = [
    CreateSequence(name="public.invoice_numbers", as_type="bigint", start=5000 + ALTER_ROWS, cache=1,
                   owned_by="public.invoices.number"),
    SetSequenceValue(name="public.invoice_numbers", value=10_000_000),
    SetSequenceValue(name="public.receipts_id_seq", value=1_000_000),
    AlterSequence(name="public.legacy_ids", as_type="bigint", increment=5, max_value=50_000_000, cache=10,
                  restart=2000),
]


def _sequence_state(conn, name):
    return conn.execute("SELECT last_value, is_called FROM " + name).fetchone()  # noqa: S608 (test names)


def _sequences_forward(conn, rows0):
    assert _sequence_state(conn, "public.invoice_numbers") == (10_000_000, True)
    assert _sequence_state(conn, "public.receipts_id_seq") == (1_000_000, True)
    assert _sequence_state(conn, "public.legacy_ids") == (2000, False)
    _assert_all(conn, "SELECT seqtypid::regtype::text, seqincrement, seqmax, seqcache FROM pg_sequence"
                      " WHERE seqrelid = 'public.legacy_ids'::regclass", [("bigint", 5, 50_000_000, 10)])
    # the application's next insert gets a key past every existing one
    _assert_all(conn, "INSERT INTO public.receipts (invoice_id) VALUES (1) RETURNING id", [(1_000_001,)])
    conn.execute("DELETE FROM public.receipts WHERE id = 1000001")
    conn.execute("SELECT setval('public.receipts_id_seq', 1000000)")   # as the forward left it


def _sequences_rollback(conn, rows0):
    _assert_all(conn, "SELECT to_regclass('public.invoice_numbers')", [(None,)])
    assert _sequence_state(conn, "public.receipts_id_seq") == (ALTER_ROWS, True)
    assert _sequence_state(conn, "public.legacy_ids") == (500, True)
    _assert_all(conn, "SELECT count(*) FROM dbdeploy_backup.saved_sequences", [(0,)])


CASES += [
    Case("sequences", [mig("001", "sequences", *SEQUENCE_OPS)], setup=INVOICES,
         data={"public.invoices": "id", "public.receipts": "id"},
         after_forward=_sequences_forward, after_rollback=_sequences_rollback),
]


# -- views (issue 13): views on views over populated tables -------------------------------------

SALES = f"""
CREATE SCHEMA sales;
CREATE TABLE sales.customers (id integer PRIMARY KEY, name text NOT NULL, region text NOT NULL);
INSERT INTO sales.customers SELECT g, 'customer ' || g, (ARRAY['eu', 'us', 'apac'])[1 + g % 3]
FROM generate_series(1, 500) g;
CREATE TABLE sales.orders (id bigint PRIMARY KEY, customer_id integer NOT NULL REFERENCES sales.customers,
                           status text NOT NULL, total numeric(12,2) NOT NULL, note text);
INSERT INTO sales.orders SELECT g, 1 + g % 500, CASE WHEN g % 4 = 0 THEN 'done' ELSE 'open' END, (g % 250) + 0.5,
                                CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END
FROM generate_series(1, {ALTER_ROWS * 2}) g;
"""
OPEN_ORDERS = CreateView(name="sales.open_orders", query=(
    "SELECT o.id, o.customer_id, o.total FROM sales.orders AS o WHERE o.status = 'open'"))
BIG_OPEN_ORDERS = CreateView(name="sales.big_open_orders", query=(
    "SELECT b.id, c.name, b.total FROM sales.open_orders AS b JOIN sales.customers AS c ON c.id = b.customer_id "
    "WHERE b.total > 200"))
OPEN_ORDERS_WITH_NOTE = ReplaceView(name="sales.open_orders", query=(
    "SELECT o.id, o.customer_id, o.total, o.note FROM sales.orders AS o WHERE o.status = 'open'"))
VIEW_DATA = {"sales.orders": "id", "sales.open_orders": "id", "sales.big_open_orders": "id"}


def _views_forward(conn, rows0) -> None:
    open_count = conn.execute("SELECT count(*) FROM sales.orders WHERE status = 'open'").fetchone()[0]
    _assert_all(conn, "SELECT count(*) FROM sales.open_orders", [(open_count,)])
    _assert_all(conn, "SELECT count(*) = (SELECT count(*) FROM sales.orders WHERE status = 'open' AND total > 200)"
                      " FROM sales.big_open_orders", [(True,)])


def _replaced_forward(conn, rows0) -> None:
    _assert_all(conn, "SELECT count(*) FROM sales.open_orders WHERE note IS NOT NULL", conn.execute(
        "SELECT count(*) FROM sales.orders WHERE status = 'open' AND note IS NOT NULL").fetchall())
    assert relation_exists(conn, "sales.big_open_orders") is False


CASES += [
    Case("create_view_on_view", [mig("001", "open_order_views", OPEN_ORDERS, BIG_OPEN_ORDERS)], setup=SALES,
         data=VIEW_DATA, data_changes=True, after_forward=_views_forward),
    # the second view dropped first (it reads the first), then the first replaced compatibly (a column added)
    Case("replace_and_drop_view", [mig("001", "open_order_views", OPEN_ORDERS, BIG_OPEN_ORDERS),
                                   mig("002", "note_on_open_orders", DropView(name="sales.big_open_orders"),
                                       OPEN_ORDERS_WITH_NOTE)],
         setup=SALES, data=VIEW_DATA, data_changes=True, after_forward=_replaced_forward),
]

CUSTOMER_TOTALS = CreateMaterializedView(
    name="sales.customer_totals",
    query="SELECT o.customer_id, count(*) AS orders, sum(o.total) AS total FROM sales.orders AS o "
          "GROUP BY o.customer_id",
    indexes=[Index(columns=["customer_id"], unique=True), Index(columns=["total"])])
FRESH_TOTALS = ("SELECT count(*) FROM (SELECT o.customer_id, count(*) AS orders, sum(o.total) AS total"
                " FROM sales.orders AS o GROUP BY o.customer_id EXCEPT SELECT * FROM sales.customer_totals) AS stale")


def _totals_fresh(conn, rows0) -> None:
    _assert_all(conn, FRESH_TOTALS, [(0,)])
    _assert_all(conn, "SELECT count(*) FROM sales.customer_totals", [(500,)])


CASES += [
    Case("create_materialized_view", [mig("001", "customer_totals", CUSTOMER_TOTALS)], setup=SALES,
         data={"sales.orders": "id", "sales.customer_totals": "customer_id"}, data_changes=True,
         after_forward=_totals_fresh),
    # orders written after the view was filled: the refresh (concurrently) brings them in; the rollback keeps them
    Case("refresh_materialized_view", [mig("001", "customer_totals", CUSTOMER_TOTALS),
                                       mig("002", "refresh_totals", RefreshMaterializedView(
                                           name="sales.customer_totals"))],
         setup=SALES, populate="INSERT INTO sales.orders SELECT 100000 + g, 1 + g % 500, 'open', 7 FROM"
                               " generate_series(1, 1000) g;",
         data={"sales.orders": "id"}, catalog_changes=False, after_forward=_totals_fresh),
]


# -- enum types (issue 13): CreateEnum, AddEnumValue, RenameEnumValue on a populated tickets table -------

TICKETS_TEXT = f"""
CREATE TABLE public.tickets (id integer PRIMARY KEY, title text NOT NULL, status text NOT NULL);
INSERT INTO public.tickets SELECT g, 'ticket ' || g, (ARRAY['open', 'pending', 'closed'])[g % 3 + 1]
FROM generate_series(1, {ALTER_ROWS}) g;
"""
STATUS_ENUM = CreateEnum(name="public.ticket_status", values=["open", "pending", "closed"])
TICKETS_SPEC = mig("001", "create_tickets", STATUS_ENUM, CreateTable(
    table="public.tickets",
    columns=[Column(name="id", type="integer", nullable=False), Column(name="title", type="text", nullable=False),
             Column(name="status", type="public.ticket_status", nullable=False, default="'open'"),
             Column(name="history", type="public.ticket_status[]", nullable=False, default="'{}'")],
    primary_key=["id"], indexes=[Index(columns=["status"])]))
TICKET_ROWS = ("INSERT INTO public.tickets SELECT g, 'ticket ' || g,"
               " ((ARRAY['open', 'pending', 'closed'])[g % 3 + 1])::public.ticket_status,"
               " (CASE WHEN g % 4 = 0 THEN '{open,pending}' ELSE '{}' END)::public.ticket_status[]"
               f" FROM generate_series(1, {ALTER_ROWS}) g;")
MOOD_SPEC = mig("001", "create_moods", CreateEnum(name='public."Mood"', values=["sad", "ok", "happy"]), CreateTable(
    table="public.diary", columns=[Column(name="id", type="integer", nullable=False),
                                   Column(name="mood", type='public."Mood"')], primary_key=["id"]))
MOOD_ROWS = ("INSERT INTO public.diary SELECT g, ((ARRAY['sad', 'ok', 'happy'])[g % 3 + 1])::public.\"Mood\""
             f" FROM generate_series(1, {ALTER_ROWS}) g;")


def _labels(conn: psycopg.Connection, type_name: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT enumlabel::text FROM pg_enum WHERE enumtypid = %s::regtype"
                                       " ORDER BY enumsortorder", (type_name,)).fetchall()]


def _priority_forward(conn, rows0) -> None:
    assert _labels(conn, "public.ticket_priority") == ["low", "normal", "high", "urgent"]
    _assert_all(conn, "SELECT priority::text, count(*) FROM public.tickets GROUP BY 1", [("normal", ALTER_ROWS)])


def _escalated_forward(conn, rows0) -> None:
    assert _labels(conn, "public.ticket_status") == ["open", "escalated", "pending", "closed"]
    _assert_all(conn, "SELECT object_type, object_name FROM migrations.migration_objects WHERE version = '002'",
                [("enum_value", "public.ticket_status.escalated")])
    # the new label is usable at once (its step committed), and sorts where it was placed
    conn.execute("INSERT INTO public.tickets VALUES (-1, 'probe', 'escalated')")
    _assert_all(conn, "SELECT count(*) FROM public.tickets WHERE status < 'pending' AND status > 'open'", [(1,)])
    conn.execute("DELETE FROM public.tickets WHERE id = -1")


def _escalated_rollback(conn, rows0) -> None:
    assert _labels(conn, "public.ticket_status") == ["open", "pending", "closed"]
    _assert_all(conn, "SELECT count(*) FROM migrations.migration_objects WHERE version = '002'", [(0,)])


def _resolved_forward(conn, rows0) -> None:
    assert _labels(conn, 'public."Mood"') == ["sad", "fine", "happy"]
    was_ok = sum(1 for row in rows0["public.diary"] if row["mood"] == "ok")
    assert was_ok > 0
    _assert_all(conn, "SELECT count(*) FROM public.diary WHERE mood = 'fine'", [(was_ok,)])


def _legacy_state_back(conn, rows0) -> None:
    assert _labels(conn, "public.legacy_state") == ["new", "wip", "done", "won't fix"]
    _assert_all(conn, "SELECT count(*) FROM dbdeploy_backup.dropped_enum_types", [(0,)])


CASES += [
    Case("create_enum", [mig("001", "ticket_priority",
                             CreateEnum(name="public.ticket_priority", values=["low", "normal", "high", "urgent"]),
                             AddColumn(table="public.tickets", column=Column(
                                 name="priority", type="public.ticket_priority", default="'normal'")))],
         setup=TICKETS_TEXT, data={"public.tickets": "id"}, data_changes=True, after_forward=_priority_forward),
    Case("add_enum_value", [TICKETS_SPEC, mig("002", "escalated", AddEnumValue(
        type="public.ticket_status", value="escalated", after="open"))],
         populate=TICKET_ROWS, data={"public.tickets": "id"}, after_forward=_escalated_forward,
         after_rollback=_escalated_rollback),
    Case("drop_enum", [mig("001", "drop_legacy_state", DropEnum(name="public.legacy_state"))],
         setup=TICKETS_TEXT + "CREATE TYPE public.legacy_state AS ENUM ('new', 'wip', 'done', 'won''t fix');"
                              " COMMENT ON TYPE public.legacy_state IS 'states before 2024';",
         data={"public.tickets": "id"}, after_rollback=_legacy_state_back),
    Case("rename_enum_value", [MOOD_SPEC, mig("002", "fine_mood", RenameEnumValue(
        type='public."Mood"', value="ok", new_value="fine"))],
         populate=MOOD_ROWS, data={"public.diary": "id"}, data_changes=True, after_forward=_resolved_forward),
]


def _email_domain_forward(conn, rows0) -> None:
    conn.execute("UPDATE public.accounts SET backup_email = 'b' || id || '@example.org' WHERE id <= 10")
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute("UPDATE public.accounts SET backup_email = 'not an address' WHERE id = 11")
    _assert_all(conn, "SELECT count(backup_email) FROM public.accounts", [(10,)])
    conn.execute("UPDATE public.accounts SET backup_email = NULL")


def _address_forward(conn, rows0) -> None:
    conn.execute("UPDATE public.accounts SET address = ROW('Main St 1', '12345', 'Berlin') WHERE id <= 5")
    _assert_all(conn, "SELECT count(*) FROM public.accounts WHERE (address).zip = '12345'", [(5,)])
    conn.execute("UPDATE public.accounts SET address = NULL")


CASES += [
    Case("create_domain", [mig("001", "email_domain", CreateDomain(
        name="public.email_address", type="text", checks=["VALUE ~ '^[^@[:space:]]+@[^@[:space:]]+$'",
                                                          "char_length(VALUE) <= 254"]),
        AddColumn(table="public.accounts", column=Column(name="backup_email", type="public.email_address")))],
         setup=ACCOUNTS, data={"public.accounts": "id"}, data_changes=True, after_forward=_email_domain_forward),
    Case("create_composite_type", [mig("001", "address_type", CreateCompositeType(
        name="public.postal_address", attributes=[Column(name="street", type="text"),
                                                  Column(name="zip", type="varchar(10)"),
                                                  Column(name="city", type="text", collation="C")]),
        AddColumn(table="public.accounts", column=Column(name="address", type="public.postal_address")))],
         setup=ACCOUNTS, data={"public.accounts": "id"}, data_changes=True, after_forward=_address_forward),
]


# --------------------------------------------------------------------------- the round trip


def _assert_same(a: dict, b: dict, what: str) -> None:
    assert a == b, f"{what}:\n{diff(a, b)}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_round_trip(case: Case, fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    conn = db.connect()
    migrations = case.migrations(conn) if callable(case.migrations) else case.migrations
    bundles = write_bundles(migrations, tmp_path)
    *earlier, current = sorted(migrations, key=lambda m: int(m.version))
    bundle = bundles[current.version]

    if case.setup:
        db.execute(case.setup)
    for m in earlier:
        run_sql_file(db, bundles[m.version].forward)
        assert log_status(conn, m.version) == "completed"
    if case.populate:
        db.execute(case.populate)

    s0, d0 = catalog(conn), data_snapshot(conn, case.data)

    def forward() -> tuple[dict, dict]:
        run_sql_file(db, bundle.forward)
        assert log_status(conn, current.version) == "completed"
        return catalog(conn), data_snapshot(conn, case.data)

    def rollback() -> tuple[dict, dict]:
        run_sql_file(db, bundle.rollback)
        assert log_status(conn, current.version) == "rolled_back"
        return catalog(conn), data_snapshot(conn, case.data)

    # forward
    s1, d1 = forward()
    if case.catalog_changes:
        assert s1 != s0, "the forward changed nothing in the catalog"
    else:
        _assert_same(s0, s1, "this migration must not change the catalog")
    if case.data_changes:
        assert d1 != d0, "the forward changed no rows"
    else:
        _assert_same(d0, d1, "the forward changed rows")
    if case.after_forward:
        case.after_forward(conn, d0)

    # forward again: no error, no second effect
    s, d = forward()
    _assert_same(s1, s, "forward run twice changed the catalog")
    _assert_same(d1, d, "forward run twice changed rows")

    # rollback: back to s0, with every row as it was
    s, d = rollback()
    _assert_same(s0, s, "rollback did not restore the catalog")
    _assert_same(d0, d, "rollback did not restore the rows")
    if case.after_rollback:
        case.after_rollback(conn, d0)

    # rollback again: harmless
    s, d = rollback()
    _assert_same(s0, s, "rollback run twice changed the catalog")
    _assert_same(d0, d, "rollback run twice changed rows")

    # forward after the rollback: same schema (and rows, unless the forward writes volatile values)
    s, d = forward()
    _assert_same(s1, s, "forward after rollback built a different catalog")
    if case.same_rows_on_reforward:
        _assert_same(d1, d, "forward after rollback wrote different rows")
    if case.after_forward:
        case.after_forward(conn, d0)


# --------------------------------------------------------------------------- focused behaviour


def _bundle(tmp_path: Path, *operations, version: str = "001", name: str = "focused"):
    return write_bundles([mig(version, name, *operations)], tmp_path)[version]


USERS_WITH_DUPLICATES = """
CREATE TABLE public.users (id integer PRIMARY KEY, email text NOT NULL);
INSERT INTO public.users SELECT g, 'u' || (CASE WHEN g > 200 THEN g - 200 ELSE g END) || '@example.com'
FROM generate_series(1, 250) g;
"""


@pytest.mark.parametrize("kind", ["create_index", "add_unique"])
def test_invalid_index_from_failed_concurrent_build_is_rebuilt(kind: str, fresh_db: TestDatabase,
                                                               tmp_path: Path) -> None:
    """A failed CREATE UNIQUE INDEX CONCURRENTLY leaves an INVALID index that IF NOT EXISTS would
    accept; the forward must drop it and build a valid one."""
    db, conn = fresh_db, fresh_db.connect()
    db.execute(USERS_WITH_DUPLICATES)
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON public.users (email)")
    assert index_valid(conn, "public.users_email_key") is False
    (invalid_oid,) = conn.execute("SELECT 'public.users_email_key'::regclass::oid").fetchone()
    db.execute("DELETE FROM public.users WHERE id > 200")  # the data is fixed; the leftover stays INVALID

    if kind == "create_index":
        op = CreateIndex(table="public.users", index=Index(columns=["email"], unique=True, name="users_email_key"))
    else:
        op = AddUnique(table="public.users", unique=Unique(columns=["email"], name="users_email_key"))
    bundle = _bundle(tmp_path, op)
    proc = run_sql_file(db, bundle.forward)

    assert 'index "public"."users_email_key" is INVALID' in proc.stderr, proc.stderr
    assert index_valid(conn, "public.users_email_key") is True
    (new_oid,) = conn.execute("SELECT 'public.users_email_key'::regclass::oid").fetchone()
    assert new_oid != invalid_oid, "the INVALID index was kept instead of rebuilt"
    if kind == "add_unique":
        assert constraint(conn, "public.users", "users_email_key") == ("UNIQUE (email)", True)
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO public.users VALUES (999, 'u1@example.com')")
    # and the second run does not rebuild a valid index
    run_sql_file(db, bundle.forward)
    assert conn.execute("SELECT 'public.users_email_key'::regclass::oid").fetchone() == (new_oid,)


def test_optional_foreign_key_is_added_by_a_later_run(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    bundle = _bundle(tmp_path, CreateTable(
        table="public.visits",
        columns=[Column(name="id", type="bigint", identity=True), Column(name="tenant_id", type="bigint")],
        primary_key=["id"],
        foreign_keys=[ForeignKey(columns=["tenant_id"], references="auth.tenants", ref_columns=["id"],
                                 optional=True, name="visits_tenant_fk")]))

    proc = run_sql_file(db, bundle.forward)
    assert "auth.tenants does not exist yet; foreign key visits_tenant_fk skipped" in proc.stderr, proc.stderr
    assert relation_exists(conn, "public.visits")
    assert constraint(conn, "public.visits", "visits_tenant_fk") is None
    assert log_status(conn, "001") == "completed"

    db.execute("INSERT INTO public.visits (tenant_id) SELECT g % 3 + 1 FROM generate_series(1, 30) g")
    db.execute("CREATE SCHEMA auth; CREATE TABLE auth.tenants (id bigint PRIMARY KEY);"
               " INSERT INTO auth.tenants VALUES (1), (2), (3);")
    proc = run_sql_file(db, bundle.forward)
    assert "skipped" not in proc.stderr, proc.stderr
    assert constraint(conn, "public.visits", "visits_tenant_fk") == (
        "FOREIGN KEY (tenant_id) REFERENCES auth.tenants(id)", True)
    assert log_status(conn, "001") == "completed"
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute("INSERT INTO public.visits (tenant_id) VALUES (99)")

    # its rollback removes the FK and the table, and leaves the referenced table alone
    run_sql_file(db, bundle.rollback)
    assert not relation_exists(conn, "public.visits")
    assert db.execute("SELECT count(*) FROM auth.tenants") == [(3,)]


def test_missing_required_extension_aborts_before_later_steps(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    name = "dbdeploy_no_such_extension"
    assert db.execute("SELECT count(*) FROM pg_extension WHERE extname = %s", (name,)) == [(0,)]
    bundle = _bundle(tmp_path, CreateSchema(name="before_ext"), RequireExtension(name=name),
                     CreateTable(table="public.after_ext", columns=[Column(name="id", type="integer")]))
    expect_failure(db, bundle.forward, f"required extension {name} is not installed",
                   f'CREATE EXTENSION "{name}"')
    assert relation_exists(conn, "public.after_ext") is False, "a step after the failed check ran"
    assert db.execute("SELECT object_type, object_name FROM migrations.migration_objects") == [
        ("schema", "before_ext")]
    assert log_status(conn, "001") == "running", "a failed forward must not be recorded as completed"


@pytest.mark.parametrize("dependant", ["view", "foreign_key"])
def test_rollback_refuses_instead_of_cascade(dependant: str, fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    bundle = _bundle(tmp_path, CreateTable(
        table="public.items", columns=[Column(name="id", type="integer"), Column(name="name", type="text")],
        primary_key=["id"]))
    run_sql_file(db, bundle.forward)
    db.execute("INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 50) g")
    items = dict_rows(conn, "public.items", "id")
    if dependant == "view":
        db.execute("CREATE VIEW public.item_names AS SELECT name FROM public.items")
        named, undo = "item_names (view)", "DROP VIEW public.item_names"
    else:
        db.execute("CREATE TABLE public.item_refs (item_id integer REFERENCES public.items (id));"
                   " INSERT INTO public.item_refs VALUES (1), (2);")
        named, undo = "item_refs (foreign key item_refs_item_id_fkey)", "DROP TABLE public.item_refs"

    expect_failure(db, bundle.rollback, "refusing to drop table public.items", named)
    assert dict_rows(conn, "public.items", "id") == items, "the refused rollback changed the table"
    assert relation_exists(conn, "public.item_names" if dependant == "view" else "public.item_refs")
    assert log_status(conn, "001") != "rolled_back"
    assert backup_tables(conn, "r001_items%") == [], "rows were copied although nothing was dropped"

    db.execute(undo)
    run_sql_file(db, bundle.rollback)
    assert not relation_exists(conn, "public.items")
    assert log_status(conn, "001") == "rolled_back"


def test_rollback_leaves_what_existed_before(fresh_db: TestDatabase, tmp_path: Path) -> None:
    """CreateTable on an existing (identical) table, SeedRows over an existing key, RequireExtension(create=True)
    of an installed extension and AddColumn of an existing (identical) column: rollback drops none of them.
    (An existing table or column that differs from the spec stops the forward: tests/test_existing_objects.py.)"""
    db, conn = fresh_db, fresh_db.connect()
    db.execute("""
        CREATE TABLE public.items (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL);
        INSERT INTO public.items SELECT g, 'old ' || g FROM generate_series(1, 20) g;
        CREATE TABLE public.kinds (code text PRIMARY KEY, label text);
        INSERT INTO public.kinds VALUES ('a', 'existing a');
    """)
    bundle = _bundle(
        tmp_path,
        RequireExtension(name="plpgsql", create=True),
        CreateTable(table="public.items", columns=[Column(name="id", type="bigint", identity=True),
                                                   Column(name="name", type="text", nullable=False)],
                    primary_key=["id"]),
        AddColumn(table="public.kinds", column=Column(name="label", type="text")),
        SeedRows(table="public.kinds", conflict_columns=["code"],
                 rows=[{"code": "a", "label": "seeded a"}, {"code": "b", "label": "seeded b"}]),
    )
    s0 = catalog(conn)
    items0 = dict_rows(conn, "public.items", "id")

    proc = run_sql_file(db, bundle.forward)
    assert "table public.items exists and matches the spec; not created again" in proc.stderr, proc.stderr
    assert dict_rows(conn, "public.kinds", "code") == [{"code": "a", "label": "existing a"},
                                                       {"code": "b", "label": "seeded b"}]
    assert db.execute("SELECT object_type, object_name FROM migrations.migration_objects") == []

    proc = run_sql_file(db, bundle.rollback)
    for what in ("table public.items was not created by V001; left in place",
                 "extension plpgsql was not created by V001; left in place",
                 "column public.kinds.label was not created by V001; left in place"):
        assert what in proc.stderr, proc.stderr
    _assert_same(s0, catalog(conn), "rollback removed objects the migration did not create")
    assert dict_rows(conn, "public.items", "id") == items0
    assert dict_rows(conn, "public.kinds", "code") == [{"code": "a", "label": "existing a"}]
    # the copy taken before deleting holds exactly the row the migration inserted
    (copy,) = backup_tables(conn, "r001_kinds_seed_%")
    assert db.execute(f"SELECT code, label FROM dbdeploy_backup.{copy}") == [("b", "seeded b")]


def test_rollback_copies_rows_to_a_closed_backup_schema(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    # Make every new schema and table readable by PUBLIC unless dbdeploy revokes it.
    db.execute("ALTER DEFAULT PRIVILEGES GRANT USAGE, CREATE ON SCHEMAS TO PUBLIC;"
               " ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC;"
               " CREATE SCHEMA probe; CREATE TABLE probe.t (x int);")
    assert public_acl_entries(conn, "probe") == ["CREATE", "USAGE"], "default privileges did not apply"
    assert table_public_acl_entries(conn, "probe.t") == ["SELECT"]
    db.execute("DROP SCHEMA probe CASCADE")

    bundle = _bundle(tmp_path, CreateTable(
        table="public.items", columns=[Column(name="id", type="integer"), Column(name="name", type="text"),
                                       Column(name="price", type="numeric(8,2)")], primary_key=["id"]))
    run_sql_file(db, bundle.forward)
    db.execute("INSERT INTO public.items SELECT g, 'item ' || g, g * 0.5 FROM generate_series(1, 120) g")
    items = dict_rows(conn, "public.items", "id")
    proc = run_sql_file(db, bundle.rollback)

    assert not relation_exists(conn, "public.items")
    (copy,) = backup_tables(conn, "r001_items_%")
    assert f"copied the rows of public.items to dbdeploy_backup.{copy}" in proc.stderr, proc.stderr
    assert dict_rows(conn, f"dbdeploy_backup.{copy}", "id") == items
    for schema in ("dbdeploy_backup", "migrations"):
        assert public_acl_entries(conn, schema) == [], f"PUBLIC has privileges on {schema}"
        for privilege in ("USAGE", "CREATE"):
            assert db.execute("SELECT has_schema_privilege('public', %s, %s)", (schema, privilege)) == [(False,)]
    assert table_public_acl_entries(conn, f"dbdeploy_backup.{copy}") == []


def test_backfill_resumes_where_it_stopped(fresh_db: TestDatabase, tmp_path: Path) -> None:
    """Batches commit one by one: a failure in batch 6 keeps batches 1-5, and the re-run does
    only batches 6-10 (SET v = v + 100 / d is not idempotent, so a redone batch would show)."""
    db, conn = fresh_db, fresh_db.connect()
    db.execute("CREATE TABLE public.ledger (id integer PRIMARY KEY, v integer NOT NULL, d integer NOT NULL);"
               " INSERT INTO public.ledger SELECT g, g, CASE WHEN g = 537 THEN 0 ELSE 1 END"
               " FROM generate_series(1, 1000) g;")
    bundle = _bundle(tmp_path, Backfill(table="public.ledger", set={"v": "v + 100 / d"}, key=["id"],
                                        batch_size=100))
    progress = "dbdeploy_backup.v001_op1_ledger_progress"

    expect_failure(db, bundle.forward, "division by zero")
    assert log_status(conn, "001") == "running"
    assert db.execute("SELECT count(*) FILTER (WHERE v = id + 100), count(*) FILTER (WHERE v = id),"
                      " min(id) FILTER (WHERE v = id) FROM public.ledger") == [(500, 500, 501)]
    assert db.execute(f"SELECT id, dbdeploy_rows_done, dbdeploy_batches_done FROM {progress}") == [(501, 500, 5)]

    db.execute("UPDATE public.ledger SET d = 1 WHERE id = 537")
    run_sql_file(db, bundle.forward)
    assert log_status(conn, "001") == "completed"
    assert db.execute("SELECT count(*) FROM public.ledger WHERE v <> id + 100") == [(0,)], "a batch ran twice"
    assert db.execute(f"SELECT id, dbdeploy_rows_done, dbdeploy_batches_done FROM {progress}") == [
        (None, 1000, math.ceil(1000 / 100))]
    assert table_public_acl_entries(conn, progress) == []

    run_sql_file(db, bundle.forward)  # finished: a third run changes nothing
    assert db.execute("SELECT count(*) FROM public.ledger WHERE v <> id + 100") == [(0,)]

    run_sql_file(db, bundle.rollback)
    assert db.execute("SELECT count(*) FROM public.ledger WHERE v <> id") == [(0,)], "original values not restored"
    assert backup_tables(conn, "v001_op1_ledger%") == []


def test_forward_refuses_a_changed_bundle(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    bundle = _bundle(tmp_path, CreateTable(table="public.items", columns=[Column(name="id", type="integer")]))
    run_sql_file(db, bundle.forward)
    assert log_status(conn, "001") == "completed"
    db.execute("UPDATE migrations.migration_log SET checksum = 'edited' WHERE version = '001';"
               " DROP TABLE public.items; DELETE FROM migrations.migration_objects;")

    expect_failure(db, bundle.forward, "dbdeploy V001: this version was applied with a different checksum")
    assert not relation_exists(conn, "public.items"), "steps ran after the checksum guard failed"
    assert db.execute("SELECT status, checksum FROM migrations.migration_log") == [("completed", "edited")]


# --------------------------------------------------------------------------- dbdeploy bugs (strict xfail)


def test_add_column_sets_the_column_comment(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db
    db.execute("CREATE TABLE public.t (id integer PRIMARY KEY)")
    run_sql_file(db, _bundle(tmp_path, AddColumn(table="public.t", column=Column(
        name="nickname", type="text", comment="display name"))).forward)
    assert db.execute("SELECT col_description('public.t'::regclass, 2)") == [("display name",)]


PREEXISTING = {
    "create_index": ("CREATE INDEX t_a_idx ON public.t (a)",
                     CreateIndex(table="public.t", index=Index(columns=["a"], name="t_a_idx"))),
    "add_check": ("ALTER TABLE public.t ADD CONSTRAINT t_a_positive CHECK (a > 0)",
                  AddCheck(table="public.t", check=Check(expression="a > 0", name="t_a_positive"))),
    "add_unique": ("ALTER TABLE public.t ADD CONSTRAINT t_a_key UNIQUE (a)",
                   AddUnique(table="public.t", unique=Unique(columns=["a"], name="t_a_key"))),
    "add_foreign_key": ("ALTER TABLE public.t ADD CONSTRAINT t_a_fk FOREIGN KEY (a) REFERENCES public.p (id)",
                        AddForeignKey(table="public.t", foreign_key=ForeignKey(
                            columns=["a"], references="public.p", ref_columns=["id"], name="t_a_fk"))),
}


@pytest.mark.parametrize("kind", list(PREEXISTING))
def test_rollback_keeps_preexisting_index_or_constraint(kind: str, fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    ddl, op = PREEXISTING[kind]
    db.execute("CREATE TABLE public.p (id integer PRIMARY KEY); INSERT INTO public.p VALUES (1), (2);"
               "CREATE TABLE public.t (id integer PRIMARY KEY, a integer); INSERT INTO public.t VALUES (1, 1), (2, 2);"
               + ddl)
    s0 = catalog(conn)
    bundle = _bundle(tmp_path, op)
    run_sql_file(db, bundle.forward)
    _assert_same(s0, catalog(conn), "forward should have found the object already there")
    run_sql_file(db, bundle.rollback)
    _assert_same(s0, catalog(conn), "rollback dropped an object V001 did not create")


def test_drop_table_of_same_named_tables_in_two_schemas(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute("CREATE SCHEMA a; CREATE SCHEMA b;"
               " CREATE TABLE a.t (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, x text);"
               " CREATE TABLE b.t (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, x text);"
               " INSERT INTO a.t (x) VALUES ('a'); INSERT INTO b.t (x) VALUES ('b');")
    s0 = catalog(conn)
    bundle = _bundle(tmp_path, DropTable(table="a.t"), DropTable(table="b.t"))
    run_sql_file(db, bundle.forward)
    assert not relation_exists(conn, "a.t") and not relation_exists(conn, "b.t")
    run_sql_file(db, bundle.rollback)
    _assert_same(s0, catalog(conn), "rollback did not restore both tables")


DROP_COLUMN_LOSSES = {
    "comment": "CREATE TABLE public.t (id integer PRIMARY KEY, a text); COMMENT ON COLUMN public.t.a IS 'note';",
    "collation": 'CREATE TABLE public.t (id integer PRIMARY KEY, a text COLLATE "C");',
    "identity": "CREATE TABLE public.t (id integer PRIMARY KEY, a integer GENERATED BY DEFAULT AS IDENTITY);",
    "serial": "CREATE TABLE public.t (id integer PRIMARY KEY, a serial);",
}


@pytest.mark.parametrize("kind", list(DROP_COLUMN_LOSSES))
def test_drop_column_rollback_restores_the_whole_column(kind: str, fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute(DROP_COLUMN_LOSSES[kind])
    db.execute("INSERT INTO public.t (id) VALUES (1), (2)" if kind in ("identity", "serial")
               else "INSERT INTO public.t VALUES (1, 'x'), (2, 'y')")
    s0, rows0 = catalog(conn), dict_rows(conn, "public.t", "id")
    bundle = _bundle(tmp_path, DropColumn(table="public.t", column="a"))
    run_sql_file(db, bundle.forward)
    run_sql_file(db, bundle.rollback)
    _assert_same(s0, catalog(conn), "rollback of DropColumn did not bring the column back as it was")
    assert dict_rows(conn, "public.t", "id") == rows0

