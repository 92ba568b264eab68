"""The rollback adds the column back and restores its values from a copy."""

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
            forward=(
                "CREATE TABLE shop.orders_note_copy AS SELECT id, note FROM "
                "shop.orders; ALTER TABLE shop.orders DROP COLUMN note"
            ),
            rollback=(
                "ALTER TABLE shop.orders ADD COLUMN note text; UPDATE shop.orders o SET "
                "note = c.note FROM shop.orders_note_copy c WHERE c.id = o.id; DROP "
                "TABLE shop.orders_note_copy"
            ),
        ),
    ],
)
