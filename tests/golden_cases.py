"""One small migration per operation, rendered for golden-file comparison.

Each case is a list of migrations; the golden files hold the bundle of the last one, so cases
that need an earlier migration (DropIndex, Backfill on a spec-created table) include it.
"""

from __future__ import annotations

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

ORDERS = CreateTable(
    table="shop.orders",
    columns=[
        Column(name="id", type="bigint", identity=True),
        Column(name="customer_id", type="bigint", nullable=False),
        Column(name="status", type="text", nullable=False, default="'new'"),
        Column(name="total", type="numeric(12,2)", nullable=False, default="0"),
        Column(name="note", type="text", comment="Free text from the customer."),
    ],
    primary_key=["id"],
    uniques=[Unique(columns=["customer_id", "id"])],
    checks=[Check(expression="total >= 0")],
    foreign_keys=[ForeignKey(columns=["customer_id"], references="shop.customers", ref_columns=["id"],
                             on_delete="cascade", optional=True)],
    indexes=[Index(columns=["status"], where="status <> 'done'"), Index(columns=["lower(note)"])],
    comment="Orders placed in the shop.",
)


def _m(version: str, name: str, *ops) -> Migration:
    return Migration(version=version, name=name, operations=list(ops))


BASE = _m("001", "base", CreateSchema(name="shop"), ORDERS)

# An integer key referenced by a foreign key (AlterColumnType's online form widens both columns).
LEDGER = _m("001", "ledger", CreateTable(
    table="public.ledger_accounts", columns=[Column(name="id", type="integer", nullable=False),
                                             Column(name="name", type="text", nullable=False)],
    primary_key=["id"]), CreateTable(
    table="public.ledger_entries",
    columns=[Column(name="id", type="integer", nullable=False), Column(name="account_id", type="integer"),
             Column(name="amount", type="integer", nullable=False, default="0")],
    primary_key=["id"],
    foreign_keys=[ForeignKey(columns=["account_id"], references="public.ledger_accounts", ref_columns=["id"])],
    checks=[Check(expression="amount >= 0")], indexes=[Index(columns=["account_id"])]))

ORDER_STATE = _m("002", "order_state", CreateEnum(name="shop.order_state", values=["new", "paid", "shipped", "done"]),
                 AddColumn(table="shop.orders", column=Column(name="state", type="shop.order_state", default="'new'")))

CASES: dict[str, list[Migration]] = {
    "create_schema": [_m("001", "schema", CreateSchema(name="shop"))],
    "require_extension": [_m("001", "ext", RequireExtension(name="pgcrypto"),
                             RequireExtension(name="citext", create=True))],
    "create_table": [BASE],
    "add_column": [BASE, _m("002", "cols",
                            AddColumn(table="shop.orders", column=Column(name="channel", type="text")),
                            AddColumn(table="shop.orders", column=Column(name="currency", type="char(3)",
                                                                         nullable=False, default="'EUR'")),
                            AddColumn(table="shop.orders", column=Column(name="public_id", type="uuid",
                                                                         nullable=False,
                                                                         default="gen_random_uuid()")))],
    "add_column_not_null_backfill": [BASE, _m(
        "002", "region", AddColumn(table="shop.orders", column=Column(name="region", type="text", nullable=False)),
        Backfill(table="shop.orders", set={"region": "'eu'"}, where="region IS NULL", batch_size=500))],
    "create_index": [BASE, _m("002", "idx", CreateIndex(table="shop.orders", index=Index(
        columns=["customer_id", "status"], include=["total"])))],
    "add_foreign_key": [BASE, _m("002", "fk", AddForeignKey(table="shop.orders", foreign_key=ForeignKey(
        columns=["customer_id"], references="public.customers", ref_columns=["id"], name="orders_cust_fk")))],
    "add_check": [BASE, _m("002", "chk", AddCheck(table="shop.orders", check=Check(expression="status <> ''")))],
    "add_unique": [BASE, _m("002", "uq", AddUnique(table="shop.orders", unique=Unique(columns=["note"])))],
    "backfill": [BASE, _m("002", "fill", Backfill(
        table="shop.orders", set={"note": "upper(note)", "total": "total * 2"}, where="note IS NOT NULL",
        batch_size=250))],
    "backfill_composite_key": [_m("001", "fill", Backfill(table="public.events", set={"kind": "'click'"},
                                                          key=["tenant_id", "event_id"]))],
    "seed_rows": [BASE, _m("002", "seed", SeedRows(table="shop.orders", conflict_columns=["id"], rows=[
        {"id": 1, "customer_id": 7, "status": "new", "note": "it's quoted"},
        {"id": 2, "customer_id": 8, "note": None},
    ]))],
    "drop_index": [BASE, _m("002", "dropidx", DropIndex(name="shop.orders_status_idx"))],
    "drop_column": [BASE, _m("002", "dropcol", DropColumn(table="shop.orders", column="note"))],
    # A unique index and a unique constraint on dropped columns: the rollback rebuilds both concurrently.
    "drop_column_unique": [BASE, _m("002", "uqnote", CreateIndex(table="shop.orders", index=Index(
        columns=["note"], unique=True))), _m("003", "dropuq", DropColumn(table="shop.orders", column="note"),
                                             DropColumn(table="shop.orders", column="customer_id"))],
    "drop_table": [BASE, _m("002", "droptab", DropTable(table="shop.orders"))],
    "raw_sql": [_m("001", "raw", RawSQL(forward="CREATE VIEW public.v AS SELECT 1 AS one",
                                        rollback="DROP VIEW IF EXISTS public.v"))],
    "raw_sql_concurrently": [_m("001", "rawc", RawSQL(
        forward="CREATE INDEX CONCURRENTLY IF NOT EXISTS t_x_idx ON public.t (x)",
        rollback="DROP INDEX CONCURRENTLY IF EXISTS public.t_x_idx"))],
    "rename_column": [BASE, _m("002", "rencol", RenameColumn(table="shop.orders", column="note", new_name="remark"))],
    "rename_table": [BASE, _m("002", "rentab", RenameTable(table="shop.orders", new_name="shop.purchases"))],
    # status: NOT NULL with a default and a partial index (not mirrored); total: a plain index, mirrored.
    "rename_column_online": [BASE, _m("002", "idx", CreateIndex(table="shop.orders", index=Index(columns=["total"]))),
                             _m("003", "expand", RenameColumn(table="shop.orders", column="status", new_name="state",
                                                              online=True),
                                RenameColumn(table="shop.orders", column="total", new_name="amount", online=True))],
    "rename_table_online": [BASE, _m("002", "expandtab", RenameTable(table="shop.orders", new_name="shop.purchases",
                                                                     online=True))],
    "contract": [BASE, _m("002", "idx", CreateIndex(table="shop.orders", index=Index(columns=["total"]))),
                 _m("003", "expand", RenameColumn(table="shop.orders", column="total", new_name="amount", online=True)),
                 _m("004", "contract", Contract(version="003"))],
    "contract_table": [BASE, _m("002", "expandtab", RenameTable(table="shop.orders", new_name="shop.purchases",
                                                                online=True)),
                       _m("003", "contract", Contract(version="002"))],
    # Changing NOT NULL and defaults of existing columns (issue 12): a table the specs do not know
    # (shop.customers exists before), and columns of one they created (the rollback is then checked too).
    "set_not_null": [_m("001", "nn", SetNotNull(table="shop.customers", column="name"))],
    "drop_not_null": [BASE, _m("002", "nullable", DropNotNull(table="shop.orders", column="customer_id"))],
    "column_defaults": [BASE, _m("002", "defaults", SetDefault(table="shop.orders", column="note", default="'n/a'"),
                                 DropDefault(table="shop.orders", column="status"))],
    "rename_index": [BASE, _m("002", "renidx", RenameIndex(name="shop.orders_status_idx",
                                                           new_name="orders_open_status_idx"))],
    "rename_constraint": [BASE, _m("002", "rencon", RenameConstraint(
        table="shop.orders", name="orders_customer_id_id_key", new_name="orders_customer_order_key"))],
    # Known to the specs: the unique constraint comes back through CREATE UNIQUE INDEX CONCURRENTLY.
    "drop_constraint": [BASE, _m(
        "002", "dropcon", DropConstraint(table="shop.orders", name="orders_customer_id_id_key"),
        DropConstraint(table="shop.orders", name=ORDERS.checks[0].resolved_name("shop.orders")),
        DropConstraint(table="shop.orders", name=ORDERS.foreign_keys[0].resolved_name("shop.orders")))],
    # Not known to the specs (a pre-existing table): the rollback re-adds the key from the keeper.
    "drop_constraint_preexisting": [_m("001", "dropkey", DropConstraint(table="public.customers",
                                                                        name="customers_pkey"))],
    "add_primary_key": [_m("001", "addpk", AddPrimaryKey(table="public.t", columns=["x"]))],
    "alter_column_type": [BASE, _m("002", "wider_total", AlterColumnType(
        table="shop.orders", column="total", type="numeric(14,2)"))],
    "alter_column_type_online": [LEDGER, _m("002", "bigint_accounts", AlterColumnType(
        table="public.ledger_accounts", column="id", type="bigint"))],
    "alter_column_type_expand": [BASE, _m("002", "expand_status", AlterColumnType(
        table="shop.orders", column="status", type="varchar(20)", online=True, new_name="state",
        using="upper(status)", back="lower(state)"))],
    "alter_column_type_contract": [BASE, _m("002", "expand_status", AlterColumnType(
        table="shop.orders", column="status", type="varchar(20)", online=True, new_name="state",
        using="upper(status)", back="lower(state)")), _m("003", "contract", Contract(version="002"))],
    # issue 12: constraint and column options
    "create_table_options": [_m("001", "bookings", CreateTable(
        table="public.bookings",
        columns=[Column(name="id", type="bigint", identity="always"), Column(name="customer_id", type="bigint"),
                 Column(name="during", type="int4range", nullable=False),
                 Column(name="code", type="text", collation="C"),
                 Column(name="nights", type="integer", generated="upper(during) - lower(during)")],
        primary_key=["id"], primary_key_name="bookings_pk",
        foreign_keys=[ForeignKey(columns=["customer_id"], references="public.customers", ref_columns=["id"],
                                 on_update="cascade", match="full", deferrable=True, initially_deferred=True)],
        uniques=[Unique(columns=["code"], nulls_not_distinct=True)],
        exclusions=[Exclusion(elements=[("during", "&&")], where="code IS NOT NULL")]))],
    "constraint_options": [BASE, _m(
        "002", "opts",
        AddForeignKey(table="shop.orders", foreign_key=ForeignKey(
            columns=["customer_id"], references="public.customers", ref_columns=["id"], on_update="cascade",
            deferrable=True, validate=False, name="orders_cust_fk")),
        AddUnique(table="shop.orders", unique=Unique(columns=["id", "note"], nulls_not_distinct=True)),
        CreateIndex(table="shop.orders", index=Index(columns=["status"], unique=True, nulls_not_distinct=True,
                                                     where="status = 'open'", name="orders_open_status_key")))],
    # issue 13: views on views (the second reads the first), a compatible replace, a drop
    "create_view": [BASE, _m("002", "views", CreateView(
        name="shop.open_orders",
        query="SELECT o.id, o.customer_id, o.total FROM shop.orders AS o WHERE o.status <> 'done'"),
        CreateView(name="shop.big_open_orders",
                   query="SELECT b.id, b.total FROM shop.open_orders AS b WHERE b.total > 50"))],
    "replace_view": [BASE, _m("002", "views", CreateView(
        name="shop.open_orders",
        query="SELECT o.id, o.customer_id, o.total FROM shop.orders AS o WHERE o.status <> 'done'")),
        _m("003", "note", ReplaceView(
            name="shop.open_orders",
            query="SELECT o.id, o.customer_id, o.total, o.note FROM shop.orders AS o WHERE o.status <> 'done'"))],
    "drop_view": [BASE, _m("002", "views", CreateView(
        name="shop.open_orders",
        query="SELECT o.id, o.customer_id, o.total FROM shop.orders AS o WHERE o.status <> 'done'"),
        CreateView(name="shop.big_open_orders",
                   query="SELECT b.id, b.total FROM shop.open_orders AS b WHERE b.total > 50")),
        _m("003", "drop", DropView(name="shop.big_open_orders"))],
    "create_materialized_view": [BASE, _m("002", "totals", CreateMaterializedView(
        name="shop.customer_totals",
        query="SELECT o.customer_id, count(*) AS orders, sum(o.total) AS total FROM shop.orders AS o "
              "GROUP BY o.customer_id",
        indexes=[Index(columns=["customer_id"], unique=True), Index(columns=["total"])]))],
    "refresh_materialized_view": [BASE, _m("002", "totals", CreateMaterializedView(
        name="shop.customer_totals",
        query="SELECT o.customer_id, count(*) AS orders, sum(o.total) AS total FROM shop.orders AS o "
              "GROUP BY o.customer_id",
        indexes=[Index(columns=["customer_id"], unique=True)])),
        _m("003", "refresh", RefreshMaterializedView(name="shop.customer_totals"))],
    # issue 13: enum types. A type with a column of it on shop.orders (whose rows the step-lock test fills).
    "create_enum": [BASE, ORDER_STATE],
    "add_enum_value": [BASE, ORDER_STATE, _m("003", "refunded", AddEnumValue(
        type="shop.order_state", value="refunded", after="paid"))],
    "rename_enum_value": [BASE, ORDER_STATE, _m("003", "sent", RenameEnumValue(
        type="shop.order_state", value="shipped", new_value="sent"))],
    "drop_enum": [_m("001", "dropenum", DropEnum(name="public.legacy_state"))],
    "create_domain": [BASE, _m("002", "amount_domain", CreateDomain(
        name="shop.amount", type="numeric(12,2)", checks=["VALUE >= 0", "VALUE < 1000000"], default="0",
        not_null=True))],
    "create_composite_type": [BASE, _m("002", "address_type", CreateCompositeType(
        name="shop.address", attributes=[Column(name="street", type="text"), Column(name="zip", type="varchar(10)"),
                                         Column(name="city", type="text", collation="C")]))],
    # issue 13: comments on objects of every kind the specs and a RawSQL made; the previous comments are
    # kept for the rollback (the table's and the column's replaced and removed, the others none before).
    "comment_on": [BASE, _m("002", "fn", RawSQL(
        forward="CREATE FUNCTION shop.order_weight(bigint, text) RETURNS integer LANGUAGE sql IMMUTABLE"
                " AS 'SELECT 1'",
        rollback="DROP FUNCTION shop.order_weight(bigint, text)")), _m(
        "003", "comments",
        CommentOn(object_kind="TABLE", name="shop.orders", comment="Orders: one row per checkout (was: placed)."),
        CommentOn(object_kind="COLUMN", name="shop.orders.note", comment=None),
        CommentOn(object_kind="COLUMN", name="shop.orders.status", comment="'new', 'paid' or 'done' — see docs\\x"),
        CommentOn(object_kind="INDEX", name="shop.orders_status_idx", comment="Open orders only."),
        CommentOn(object_kind="CONSTRAINT", name="shop.orders." + ORDERS.checks[0].resolved_name("shop.orders"),
                  comment="No negative totals."),
        CommentOn(object_kind="SCHEMA", name="shop", comment="The shop."),
        CommentOn(object_kind="FUNCTION", name="shop.order_weight(bigint, text)", comment="Weight of an order."))],
    # issue 13: sequences — one the version creates (owned by a column of a spec-created table) and sets,
    # one that existed before (shop.orders' identity sequence) altered and restarted.
    "sequences": [BASE, _m(
        "002", "sequences",
        CreateSequence(name="shop.order_numbers", as_type="bigint", start=5000, increment=1, cache=1,
                       owned_by="shop.orders.customer_id"),
        SetSequenceValue(name="shop.order_numbers", value=50_000),
        AlterSequence(name="shop.orders_id_seq", increment=2, cache=5, max_value=9_000_000_000, restart=100_000))],
    # issue 13: a range-partitioned table with its monthly partitions and a default one
    "create_partition": [_m("001", "page_views", CreateTable(
        table="public.page_views",
        columns=[Column(name="id", type="bigint", nullable=False), Column(name="created_at", type="timestamptz",
                                                                          nullable=False)],
        primary_key=["id", "created_at"], indexes=[Index(columns=["created_at"])], partition_by="RANGE (created_at)")),
        _m("002", "months", CreatePartition(parent="public.page_views", table="public.page_views_2026_01",
                                            bounds="FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')"),
           CreatePartition(parent="public.page_views", table="public.page_views_default", bounds="DEFAULT"))],
    # issue 13: code — a trigger function (body with quotes and $$) and its trigger on an existing table
    "create_function_trigger": [BASE, _m("002", "touch_orders", CreateFunction(
        name="shop.touch_note", returns="trigger", language="plpgsql", volatility="volatile",
        body="\nBEGIN\n    -- it's $$ kept\n    NEW.note := coalesce(NEW.note, '');\n    RETURN NEW;\nEND\n"),
        CreateTrigger(table="shop.orders", name="orders_touch_note", function="shop.touch_note", timing="BEFORE",
                      events=["INSERT", "UPDATE"], when="NEW.note IS NULL"))],
    "create_function_definer": [BASE, _m("002", "definer", CreateFunction(
        name="public.order_count", args=[("p_status", "text")], returns="bigint", language="sql", volatility="stable",
        security_definer=True, search_path="pg_catalog",
        body="SELECT count(*) FROM shop.orders WHERE status = p_status"))],
    "replace_function": [BASE, _m("002", "touch_orders", CreateFunction(
        name="shop.touch_note", returns="trigger", language="plpgsql", body="BEGIN RETURN NEW; END")),
        _m("003", "retouch", ReplaceFunction(
            name="shop.touch_note", returns="trigger", language="plpgsql",
            body="BEGIN\n    NEW.note := 'touched';\n    RETURN NEW;\nEND"))],
    "drop_trigger_function": [BASE, _m("002", "touch_orders", CreateFunction(
        name="shop.touch_note", returns="trigger", language="plpgsql", body="BEGIN RETURN NEW; END"),
        CreateTrigger(table="shop.orders", name="orders_touch_note", function="shop.touch_note", timing="BEFORE",
                      events=["UPDATE"])),
        _m("003", "untouch", DropTrigger(table="shop.orders", name="orders_touch_note"),
           DropFunction(name="shop.touch_note"))],
    "create_procedure": [BASE, _m("002", "archive", CreateProcedure(
        name="shop.archive_orders", args=[("p_status", "text")], language="plpgsql",
        body="\nBEGIN\n    DELETE FROM shop.orders WHERE status = p_status;\n    COMMIT;\nEND\n"))],
}
