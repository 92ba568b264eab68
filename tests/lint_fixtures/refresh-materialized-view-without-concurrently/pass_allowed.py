"""A view nothing reads yet may be refreshed plainly, with the reason stated."""

from dbdeploy import Column, CreateSchema, CreateTable, Migration, RawSQL

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
            allow={"refresh-materialized-view-without-concurrently": "created WITH NO DATA by V002; no reader yet"},
        ),
    ],
)
