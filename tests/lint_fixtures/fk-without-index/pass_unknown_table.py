"""The table was not created by the specs: its indexes are unknown, so no finding."""

from dbdeploy import AddForeignKey, Column, CreateSchema, CreateTable, ForeignKey, Index, Migration

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
        AddForeignKey(
            table="legacy.payments",
            foreign_key=ForeignKey(columns=["order_id"], references="shop.orders", ref_columns=["id"]),
        ),
    ],
)
