"""A disposable staging table may be truncated, with the reason stated."""

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
            forward="TRUNCATE shop.import_staging",
            rollback="SELECT pg_catalog.pg_notify('import', 'reload')",
            allow={"ban-truncate": "import_staging is refilled by every import run; nothing reads it in between"},
        ),
    ],
)
