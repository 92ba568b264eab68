"""Renaming a column of a table the same RawSQL created."""

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
                "CREATE TABLE shop.tmp (id bigint PRIMARY KEY, v text); ALTER TABLE shop.tmp RENAME COLUMN v TO value"
            ),
            rollback="DROP TABLE shop.tmp",
        ),
    ],
)
