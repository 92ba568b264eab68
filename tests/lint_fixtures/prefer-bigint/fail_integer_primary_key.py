"""integer primary key and integer foreign key column."""

from dbdeploy import Column, CreateSchema, CreateTable, ForeignKey, Index, Migration

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["column shop.coupons.id is integer (primary key)", "column shop.coupons.order_id is int4 (foreign key)"]

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
            table="shop.coupons",
            columns=[
                Column(name="id", type="integer"),
                Column(name="order_id", type="int4"),
                Column(name="uses", type="integer", nullable=False, default="0"),
            ],
            primary_key=["id"],
            foreign_keys=[ForeignKey(columns=["order_id"], references="shop.orders", ref_columns=["id"])],
            indexes=[Index(columns=["order_id"])],
        ),
    ],
)
