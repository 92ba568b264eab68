"""numeric(12,2) → bigint rewrites the table."""

from dbdeploy import Column, CreateSchema, CreateTable, Index, Migration, RawSQL

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["changes shop.orders.total from numeric(12, 2) to bigint"]

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
            forward=("ALTER TABLE shop.orders ALTER COLUMN total TYPE bigint USING round(total)::bigint"),
            rollback="ALTER TABLE shop.orders ALTER COLUMN total TYPE numeric(12,2)",
        ),
    ],
)
