"""An index on a table CreateTable made earlier in the migration."""

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
        CreateTable(
            table="shop.notes",
            columns=[Column(name="id", type="bigint"), Column(name="body", type="text")],
            primary_key=["id"],
        ),
        RawSQL(
            forward="CREATE INDEX notes_body_idx ON shop.notes (body)",
            rollback="DROP INDEX CONCURRENTLY IF EXISTS shop.notes_body_idx",
        ),
    ],
)
