"""key=[…] names the unique column to batch by."""

from dbdeploy import Backfill, Migration

change = Migration(
    version="002",
    name="change",
    operations=[
        Backfill(table="legacy.events", set={"kind": "'click'"}, key=["event_id"]),
    ],
)
