"""AddPrimaryKey: the online form the rule asks for."""

from dbdeploy import AddPrimaryKey, Check, Column, CreateSchema, CreateTable, Migration

base = Migration(
    version="001",
    name="base",
    operations=[
        CreateSchema(name="shop"),
        CreateTable(
            table="shop.events",
            columns=[
                Column(name="event_id", type="bigint", nullable=False),
                Column(name="kind", type="text", nullable=False),
                Column(name="total", type="numeric(12,2)", nullable=False, default="0"),
            ],
            checks=[Check(expression="total >= 0", name="events_total_check")],
        ),
    ],
)

change = Migration(
    version="002",
    name="change",
    operations=[
        AddPrimaryKey(table="shop.events", columns=["event_id"]),
    ],
)
