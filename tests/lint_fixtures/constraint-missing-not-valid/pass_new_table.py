"""Constraints on a table created earlier in the same RawSQL."""

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
                "CREATE TABLE shop.lines (id bigint PRIMARY KEY, order_id bigint NOT "
                "NULL, qty bigint); CREATE INDEX lines_order_idx ON shop.lines "
                "(order_id); ALTER TABLE shop.lines ADD CONSTRAINT lines_order_fk "
                "FOREIGN KEY (order_id) REFERENCES shop.orders (id), ADD CONSTRAINT "
                "lines_qty_check CHECK (qty > 0)"
            ),
            rollback="DROP TABLE shop.lines",
        ),
    ],
)
