"""RawSQL ADD COLUMN … GENERATED AS IDENTITY rewrites the table."""

from dbdeploy import Column, CreateSchema, CreateTable, Index, Migration, RawSQL

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["column shop.orders.seq with an identity"]

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
            forward=("ALTER TABLE shop.orders ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY"),
            rollback="ALTER TABLE shop.orders DROP COLUMN IF EXISTS seq",
        ),
    ],
)
