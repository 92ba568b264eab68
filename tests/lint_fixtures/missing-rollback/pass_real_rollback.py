"""The rollback restores what the forward changed."""

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
                "CREATE TABLE shop.orders_status_copy AS SELECT id, status FROM "
                "shop.orders WHERE status = 'done'; UPDATE shop.orders SET status = "
                "'archived' WHERE status = 'done'"
            ),
            rollback=(
                "UPDATE shop.orders o SET status = c.status FROM "
                "shop.orders_status_copy c WHERE c.id = o.id; DROP TABLE "
                "shop.orders_status_copy"
            ),
        ),
    ],
)
