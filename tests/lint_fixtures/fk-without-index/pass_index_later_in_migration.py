"""The covering index is created later in the same migration."""

from dbdeploy import Column, CreateIndex, CreateSchema, CreateTable, ForeignKey, Index, Migration

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
        CreateTable(
            table="shop.order_lines",
            columns=[
                Column(name="id", type="bigint", identity=True),
                Column(name="order_id", type="bigint", nullable=False),
            ],
            primary_key=["id"],
            foreign_keys=[ForeignKey(columns=["order_id"], references="shop.orders", ref_columns=["id"])],
        ),
        CreateIndex(table="shop.order_lines", index=Index(columns=["order_id", "id"])),
    ],
)
