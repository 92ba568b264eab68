"""AddForeignKey and AddCheck emit NOT VALID + VALIDATE themselves."""

from dbdeploy import AddCheck, AddForeignKey, Check, Column, CreateSchema, CreateTable, ForeignKey, Index, Migration

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
        AddCheck(table="shop.orders", check=Check(expression="total >= 0")),
        AddForeignKey(
            table="shop.orders",
            foreign_key=ForeignKey(columns=["customer_id"], references="shop.customers", ref_columns=["id"]),
        ),
    ],
)
