"""serial in RawSQL CREATE TABLE (and serial is integer: prefer-bigint is allowed here)."""

from dbdeploy import Column, CreateSchema, CreateTable, Index, Migration, RawSQL

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["column shop.raw_coupons.id is bigserial (primary key)"]

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
            forward=("CREATE TABLE shop.raw_coupons (id bigserial PRIMARY KEY, code text NOT NULL)"),
            rollback="DROP TABLE IF EXISTS shop.raw_coupons",
        ),
    ],
)
