"""setval in a RawSQL forward (inside a SELECT)."""

from dbdeploy import Column, CreateSchema, CreateTable, Index, Migration, RawSQL

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["setval(…)"]

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
                Column(name="total", type="numeric(12,2)", nullable=False, default="0"),
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
            forward="SELECT pg_catalog.setval('shop.orders_id_seq', 100000)",
            rollback="SELECT pg_catalog.setval('shop.orders_id_seq', 1, false)",
        ),
    ],
)
