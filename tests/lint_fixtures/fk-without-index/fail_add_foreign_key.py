"""AddForeignKey on a spec table without a covering index (a partial one does not count)."""

from dbdeploy import (
    AddColumn,
    AddForeignKey,
    Column,
    CreateIndex,
    CreateSchema,
    CreateTable,
    ForeignKey,
    Index,
    Migration,
)

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["orders_coupon_id_fkey on shop.orders (coupon_id)"]

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
        AddColumn(table="shop.orders", column=Column(name="coupon_id", type="bigint")),
        CreateIndex(table="shop.orders", index=Index(columns=["coupon_id"], where="coupon_id > 100")),
        AddForeignKey(
            table="shop.orders",
            foreign_key=ForeignKey(columns=["coupon_id"], references="shop.coupons", ref_columns=["id"]),
        ),
    ],
)
