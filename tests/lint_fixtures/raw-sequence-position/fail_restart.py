"""ALTER SEQUENCE … RESTART in a RawSQL forward."""

from dbdeploy import Column, CreateSchema, CreateTable, Index, Migration, RawSQL

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["ALTER SEQUENCE shop.orders_id_seq RESTART"]

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
                Column(name="total", type="numeric(12,2)", nullable=False, default="0"),
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
            forward="ALTER SEQUENCE shop.orders_id_seq INCREMENT BY 2 RESTART WITH 100000",
            rollback="ALTER SEQUENCE shop.orders_id_seq INCREMENT BY 1",
        ),
    ],
)
