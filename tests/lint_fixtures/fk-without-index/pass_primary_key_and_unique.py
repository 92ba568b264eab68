"""A composite primary key and a unique constraint lead with the FK columns."""

from dbdeploy import Column, CreateSchema, CreateTable, ForeignKey, Index, Migration, Unique

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
            table="shop.order_tags",
            columns=[
                Column(name="order_id", type="bigint"),
                Column(name="tag", type="text"),
                Column(name="alt_order_id", type="bigint"),
            ],
            primary_key=["order_id", "tag"],
            uniques=[Unique(columns=["alt_order_id", "tag"])],
            foreign_keys=[
                ForeignKey(columns=["order_id"], references="shop.orders", ref_columns=["id"]),
                ForeignKey(columns=["alt_order_id"], references="shop.orders", ref_columns=["id"]),
            ],
        ),
    ],
)
