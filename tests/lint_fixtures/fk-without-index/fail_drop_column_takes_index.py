"""Dropping a column drops the index it is in, and with it the coverage."""

from dbdeploy import Column, CreateSchema, CreateTable, DropColumn, ForeignKey, Index, Migration

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["loses its only covering index shop.order_lines_order_sku_idx"]

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
                Column(name="sku", type="text"),
            ],
            primary_key=["id"],
            foreign_keys=[ForeignKey(columns=["order_id"], references="shop.orders", ref_columns=["id"])],
            indexes=[Index(name="order_lines_order_sku_idx", columns=["order_id", "sku"])],
        ),
    ],
)

drop_sku = Migration(
    version="003",
    name="drop_sku",
    operations=[
        DropColumn(table="shop.order_lines", column="sku"),
    ],
)
