"""An AddCheck (always validated) in an earlier migration proves it."""

from dbdeploy import AddCheck, Check, Column, CreateSchema, CreateTable, Index, Migration, RawSQL

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
        AddCheck(table="shop.orders", check=Check(name="orders_note_nn", expression="note IS NOT NULL")),
    ],
)

set_nn = Migration(
    version="003",
    name="set_nn",
    operations=[
        RawSQL(
            forward="ALTER TABLE shop.orders ALTER COLUMN note SET NOT NULL",
            rollback="ALTER TABLE shop.orders ALTER COLUMN note DROP NOT NULL",
        ),
    ],
)
