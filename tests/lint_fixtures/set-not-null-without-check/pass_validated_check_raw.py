"""CHECK … NOT VALID, VALIDATE, then SET NOT NULL, each in its own RawSQL."""

from dbdeploy import Column, CreateSchema, CreateTable, Index, Migration, RawSQL

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
        RawSQL(
            forward=("ALTER TABLE shop.orders ADD CONSTRAINT orders_note_nn CHECK (note IS NOT NULL) NOT VALID"),
            rollback="ALTER TABLE shop.orders DROP CONSTRAINT IF EXISTS orders_note_nn",
        ),
        RawSQL(
            forward="ALTER TABLE shop.orders VALIDATE CONSTRAINT orders_note_nn",
            rollback="-- validating changes nothing",
        ),
        RawSQL(
            forward="ALTER TABLE shop.orders ALTER COLUMN note SET NOT NULL",
            rollback="ALTER TABLE shop.orders ALTER COLUMN note DROP NOT NULL",
        ),
    ],
)
