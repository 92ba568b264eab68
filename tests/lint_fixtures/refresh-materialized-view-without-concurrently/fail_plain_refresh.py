"""A plain REFRESH MATERIALIZED VIEW of a view in use, in RawSQL."""

from dbdeploy import Column, CreateSchema, CreateTable, Migration, RawSQL

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["REFRESH MATERIALIZED VIEW shop.customer_totals"]

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
        ),
    ],
)

change = Migration(
    version="002",
    name="change",
    operations=[
        RawSQL(
            forward="REFRESH MATERIALIZED VIEW shop.customer_totals",
            rollback="SELECT pg_catalog.pg_notify('totals', 'refreshed')",
        ),
    ],
)
