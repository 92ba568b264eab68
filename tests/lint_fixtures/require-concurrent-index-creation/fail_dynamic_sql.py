"""Dynamic SQL built with format() in a DO block is rebuilt and parsed again."""

from dbdeploy import Column, CreateSchema, CreateTable, Index, Migration, RawSQL

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["DO block, EXECUTE: CREATE INDEX orders_status_idx ON shop.orders"]

base = Migration(
    version="001",
    name="base",
    operations=[
        CreateSchema(name="shop"),
        CreateTable(
            table="shop.orders",
            columns=[
                Column(name="id", type="bigint", identity=True),
                Column(name="customer_id", type="bigint", nullable=False),
                Column(name="status", type="text", nullable=False, default="'new'"),
                Column(name="total", type="numeric(12,2)", nullable=False, default="0"),
                Column(name="note", type="text"),
            ],
            primary_key=["id"],
            indexes=[Index(columns=["customer_id"])],
        ),
    ],
)

change = Migration(
    version="002",
    name="change",
    operations=[
        RawSQL(
            forward=(
                "DO $$ BEGIN EXECUTE format('CREATE INDEX %I ON %I.%I (status)', "
                "'orders_status_idx', 'shop', 'orders'); END $$"
            ),
            rollback="DROP INDEX CONCURRENTLY IF EXISTS shop.orders_status_idx",
        ),
    ],
)
