"""DropConstraint saves the definition and its rollback re-adds it; a RawSQL rollback that re-adds it."""

from dbdeploy import Check, Column, CreateSchema, CreateTable, DropConstraint, Migration, RawSQL

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
        DropConstraint(table="shop.events", name="events_total_check"),
        RawSQL(
            forward="ALTER TABLE shop.events DROP CONSTRAINT IF EXISTS events_kind_check",
            rollback="ALTER TABLE shop.events ADD CONSTRAINT events_kind_check CHECK (kind <> '') NOT VALID",
        ),
    ],
)
