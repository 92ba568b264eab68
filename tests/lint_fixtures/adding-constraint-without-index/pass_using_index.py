"""The index is built concurrently first; ADD PRIMARY KEY USING INDEX is catalog only."""

from dbdeploy import Check, Column, CreateSchema, CreateTable, Migration, RawSQL

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
        RawSQL(
            forward="CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS events_pkey ON shop.events (event_id)",
            rollback="DROP INDEX CONCURRENTLY IF EXISTS shop.events_pkey",
        ),
        RawSQL(
            forward="ALTER TABLE shop.events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_pkey",
            rollback="ALTER TABLE shop.events DROP CONSTRAINT IF EXISTS events_pkey",
        ),
    ],
)
