"""CreateTable with a foreign key and no index starting with its column."""

from dbdeploy import Column, CreateSchema, CreateTable, ForeignKey, Index, Migration

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["foreign key order_lines_order_id_fkey on shop.order_lines (order_id)"]

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
                Column(name="sku", type="text", nullable=False),
            ],
            primary_key=["id"],
            foreign_keys=[ForeignKey(columns=["order_id"], references="shop.orders", ref_columns=["id"])],
            indexes=[Index(columns=["sku", "order_id"])],
        ),
    ],
)
