"""CREATE INDEX inside a DO block is found by parsing the PL/pgSQL body."""

from dbdeploy import Column, CreateSchema, CreateTable, Index, Migration, RawSQL

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["statement 1, DO block: CREATE INDEX orders_status_idx"]

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
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE "
                "relname = 'orders_status_idx') THEN CREATE INDEX orders_status_idx ON "
                "shop.orders (status); END IF; END $$"
            ),
            rollback="DROP INDEX CONCURRENTLY IF EXISTS shop.orders_status_idx",
        ),
    ],
)
