"""An index built by RawSQL later in the migration covers it too."""

from dbdeploy import AddForeignKey, Column, CreateSchema, CreateTable, ForeignKey, Index, Migration, RawSQL

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
        AddForeignKey(
            table="shop.orders",
            foreign_key=ForeignKey(
                columns=["customer_id", "status"],
                references="shop.customer_statuses",
                ref_columns=["customer_id", "status"],
            ),
        ),
        RawSQL(
            forward=(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_status_customer_idx ON "
                "shop.orders (status, customer_id)"
            ),
            rollback="DROP INDEX CONCURRENTLY IF EXISTS shop.orders_status_customer_idx",
        ),
    ],
)
