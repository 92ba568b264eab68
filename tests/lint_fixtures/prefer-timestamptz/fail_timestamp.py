"""timestamp and timestamp(3) without time zone."""

from dbdeploy import AddColumn, Column, CreateSchema, CreateTable, Index, Migration

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["column shop.orders.shipped_at is timestamp", "column shop.orders.paid_at is timestamp(3)"]

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
        AddColumn(table="shop.orders", column=Column(name="shipped_at", type="timestamp")),
        AddColumn(table="shop.orders", column=Column(name="paid_at", type="timestamp(3) without time zone")),
    ],
)
