"""The first-class operations, and ALTER SEQUENCE without RESTART."""

from dbdeploy import AlterSequence, Column, CreateSchema, CreateTable, Index, Migration, RawSQL, SetSequenceValue

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = []

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
        SetSequenceValue(name="shop.orders_id_seq", value=100000),
        AlterSequence(name="shop.orders_id_seq", increment=2, restart=200000),
        RawSQL(forward="ALTER SEQUENCE shop.orders_id_seq CACHE 10",
               rollback="ALTER SEQUENCE shop.orders_id_seq CACHE 1"),
    ],
)
