"""A Backfill of a table the specs did not create, without key=[…]."""

from dbdeploy import Backfill, Migration

# one entry per finding of the rule (a substring of its subject), in order
EXPECT = ["legacy.events was not created by the specs"]

change = Migration(
    version="002",
    name="change",
    operations=[
        Backfill(table="legacy.events", set={"kind": "'click'"}),
    ],
)
