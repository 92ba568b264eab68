"""A Backfill of a spec table that has no primary key."""

from dbdeploy import Backfill, Column, CreateSchema, CreateTable, Index, Migration

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["shop.log has no primary key in the specs"]

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
        CreateTable(table="shop.log", columns=[Column(name="at", type="timestamptz"), Column(name="msg", type="text")]),
    ],
)

fill = Migration(
    version="003",
    name="fill",
    operations=[
        Backfill(table="shop.log", set={"msg": "lower(msg)"}),
    ],
)
