"""ADD EXCLUDE on an existing table: the index is built under ACCESS EXCLUSIVE, and no online form exists."""

from dbdeploy import Check, Column, CreateSchema, CreateTable, Migration, RawSQL

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["adds EXCLUDE events_kind_excl to shop.events (no online form exists)"]

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
            forward="ALTER TABLE shop.events ADD CONSTRAINT events_kind_excl EXCLUDE USING btree (kind WITH =)",
            rollback="ALTER TABLE shop.events DROP CONSTRAINT IF EXISTS events_kind_excl",
        ),
    ],
)
